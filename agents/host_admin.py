"""``POST /admin/spawn``: an operator starts a node on a running host (``spore spawn --host``).

The credential is the host's operator token, the bearer token SPARQL Update already takes
(``HostConfig.sparql_update_token``; ``spore serve --admin-token``): one secret for every write to a
host, compared in constant time. Without a configured token the route refuses everything (403),
so a host is never writable by accident.

Two bodies (documented in docs/federation.md, "Spawning on a running host"):

* ``application/json`` ``{"parent": NODE_IRI, "name": optional, "seed": optional}``: a mutated
  child of one of the host's nodes, within its caps, recorded in the parent's decisions graph;
* ``text/turtle``: a blueprint, started as it is once it passes the shapes.

Answers: 201 with the child (``Location``: its actor), 401 without or with a wrong token, 404 for a
parent the host does not serve, 409 for a cap or a taken name, 422 for a blueprint that fails the
shapes (with the first violations), 400/413/415 for a body it cannot read. Never a 500: an
unexpected failure while building the child is a 503 with its one-line reason.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from agents.host_spawning import HostSpawner

__all__ = ["admin_router", "bearer_problem"]

log = logging.getLogger(__name__)

SPAWN_PATH = "/admin/spawn"


def bearer_problem(header: str | None, token: str | None) -> tuple[int, str] | None:
    """Why ``Authorization: header`` does not grant the operator's rights (status, reason), or None."""
    if token is None:
        return 403, "this host takes no admin requests: start it with --admin-token"
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return 401, "admin requests need a bearer token (Authorization: Bearer …)"
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return 401, "the bearer token is not valid for this host"
    return None


def _error(status: int, reason: str, details: tuple[str, ...] = ()) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if details:
        body["violations"] = list(details)
    headers = {"www-authenticate": 'Bearer realm="spore"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _body(request: Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def admin_router(spawner: HostSpawner) -> APIRouter:
    """The host's admin route, answering for ``spawner``'s host."""
    from agents.host_spawning import SpawnRefused

    router = APIRouter()
    config = spawner.host.runtime.config

    @router.post(SPAWN_PATH)
    async def spawn(request: Request) -> JSONResponse:
        problem = bearer_problem(request.headers.get("authorization"), config.sparql_update_token)
        if problem is not None:
            return _error(*problem)
        body = await _body(request, config.limits.max_body_bytes)
        if body is None:
            return _error(413, f"the body is over {config.limits.max_body_bytes} bytes")
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if media == "text/turtle":
                spawned = await spawner.start_blueprint(body.decode("utf-8", errors="replace"))
            elif media == "application/json":
                try:
                    asked = json.loads(body)
                except ValueError as error:
                    return _error(400, f"the body is not JSON: {error}")
                if not isinstance(asked, dict) or not isinstance(asked.get("parent"), str):
                    return _error(400, 'the body names no parent node: {"parent": NODE_IRI}')
                name, seed = asked.get("name"), asked.get("seed", 0)
                if (name is not None and not isinstance(name, str)) or not isinstance(seed, int):
                    return _error(400, "name must be a string and seed an integer")
                spawned = await spawner.spawn_child(asked["parent"], name=name, seed=seed)
            else:
                return _error(415, "send a blueprint as text/turtle or a parent as application/json")
        except SpawnRefused as refusal:
            return _error(refusal.status, refusal.reason, refusal.details)
        except Exception as error:  # the operator gets the reason; the host goes on serving
            log.exception("spawning on request failed")
            return _error(503, f"the host could not start the node: {type(error).__name__}: {error}")
        return JSONResponse(spawned.as_json(), status_code=201, headers={"location": spawned.actor})

    return router
