"""The host: ONE builder wiring a FastAPI app, one router per resource, the runtime injected.

``build_host(config, store=...)`` returns a ready app; :class:`RunningHost` serves it with uvicorn on a
pre-bound loopback socket in a thread (tests and the benchmark start hosts this way, so the port is
known before the app is built and there is no bind race).
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import ontology
from federation.actors import ActorKind, LocalActor, collection, collection_page
from federation.client import AP_CONTENT_TYPE
from federation.config import GroupSpec, HostConfig, Limits, NodeSpec
from federation.inbox import InboxResult, Verdict
from federation.jsonld import ACTOR_CONTEXT
from federation.nodeinfo import discovery, nodeinfo
from federation.processing import AdmissionPolicy, QuadSink, _default_admission
from federation.runtime import HostRuntime
from federation.signatures import SignedRequest
from federation.ssrf import Resolver, system_resolver
from federation.state import Relation
from federation.webfinger import JRD_MEDIA_TYPE, WebFingerError, host_meta, jrd, lookup

__all__ = ["build_host", "RunningHost", "start_local_host", "bind_loopback", "wants_activity_json"]

_AP_TYPES = ("application/activity+json", "application/ld+json")
_JSON_TYPES = (*_AP_TYPES, "application/json", "*/*", "application/*")


def wants_activity_json(accept: str | None) -> bool:
    """Content negotiation: AS2 JSON for AP, JSON and curl clients; False for HTML/Turtle (406 for now)."""
    if not accept:
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _JSON_TYPES:
            return True
    return False


def _activity_json(document: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, media_type=AP_CONTENT_TYPE)


def _not_acceptable() -> PlainTextResponse:
    return PlainTextResponse(
        "406 Not Acceptable: this resource is served as application/activity+json", status_code=406
    )


def _page_number(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


def discovery_router(runtime: HostRuntime) -> APIRouter:
    router = APIRouter()
    config = runtime.config

    @router.get("/.well-known/webfinger")
    async def webfinger(resource: str | None = None) -> Response:
        found = lookup(resource, runtime.actors, config.domain)
        headers = {"access-control-allow-origin": "*"}
        if isinstance(found, WebFingerError):
            status = 400 if found.failure == "malformed" else 404
            return JSONResponse({"error": found.detail}, status_code=status, headers=headers)
        return JSONResponse(jrd(found, config.domain), media_type=JRD_MEDIA_TYPE, headers=headers)

    @router.get("/.well-known/host-meta")
    async def host_meta_view() -> Response:
        return Response(host_meta(config.base_url), media_type="application/xrd+xml")

    @router.get("/.well-known/nodeinfo")
    async def nodeinfo_discovery() -> Response:
        return JSONResponse(discovery(config.base_url))

    @router.get("/nodeinfo/2.1")
    async def nodeinfo_view() -> Response:
        posts = sum(runtime.state.count_outgoing(actor.id) for actor in runtime.actors.nodes.values())
        document = nodeinfo(
            name=config.software_name,
            version=config.software_version,
            nodes=len(runtime.actors.nodes),
            local_posts=posts,
        )
        media = 'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
        return JSONResponse(document, media_type=media)

    @router.get("/contexts/spore.jsonld")
    async def spore_context() -> Response:
        return JSONResponse(ontology.load_context(), media_type="application/ld+json")

    return router


def actor_router(runtime: HostRuntime) -> APIRouter:
    """Actor documents and their collections, for nodes (``/nodes``) and groups (``/groups``)."""
    router = APIRouter()
    page_size = runtime.config.limits.page_size

    def find(kind: str, name: str) -> LocalActor | None:
        table = runtime.actors.nodes if kind == ActorKind.NODE else runtime.actors.groups
        return table.get(name)

    def relation_collection(
        actor: LocalActor, kind: str, collection_id: str, page: int | None
    ) -> JSONResponse:
        if page is None:
            return _activity_json(collection(collection_id, runtime.state.count_related(actor.id, kind)))
        items = runtime.state.related(actor.id, kind, offset=(page - 1) * page_size, limit=page_size + 1)
        return _activity_json(
            collection_page(collection_id, page, items[:page_size], has_next=len(items) > page_size)
        )

    @router.get("/actor")
    async def instance_actor(request: Request) -> Response:
        if not wants_activity_json(request.headers.get("accept")):
            return _not_acceptable()
        return _activity_json(runtime.actors.document(runtime.actors.instance))

    for kind in (ActorKind.NODE, ActorKind.GROUP):

        @router.get(f"/{kind}/{{name}}", name=f"{kind}-actor")
        async def actor_document(name: str, request: Request, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            if not wants_activity_json(request.headers.get("accept")):
                return _not_acceptable()
            return _activity_json(runtime.actors.document(actor))

        @router.get(f"/{kind}/{{name}}/followers", name=f"{kind}-followers")
        async def followers(name: str, page: str | None = None, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            relation = Relation.MEMBER if kind == ActorKind.GROUP else Relation.FOLLOWER
            return relation_collection(actor, relation, actor.followers, _page_number(page))

        @router.get(f"/{kind}/{{name}}/following", name=f"{kind}-following")
        async def following(name: str, page: str | None = None, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            return relation_collection(actor, Relation.FOLLOWING, actor.following, _page_number(page))

        @router.get(f"/{kind}/{{name}}/outbox", name=f"{kind}-outbox")
        async def outbox(name: str, page: str | None = None, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            number = _page_number(page)
            if number is None:
                return _activity_json(collection(actor.outbox, runtime.state.count_outgoing(actor.id)))
            items = runtime.state.outgoing(actor.id, offset=(number - 1) * page_size, limit=page_size + 1)
            items = [{k: v for k, v in item.items() if k != "@context"} for item in items]
            return _activity_json(
                collection_page(actor.outbox, number, items[:page_size], has_next=len(items) > page_size)
            )

    return router


def object_router(runtime: HostRuntime) -> APIRouter:
    router = APIRouter()

    @router.get("/objects/{object_id}")
    @router.get("/activities/{object_id}")
    async def stored_object(object_id: str, request: Request) -> Response:
        document = runtime.state.get_object(runtime.config.base_url + request.url.path)
        if document is None:
            return JSONResponse({"error": "no such object"}, status_code=404)
        if not wants_activity_json(request.headers.get("accept")):
            return _not_acceptable()
        return _activity_json(document)

    @router.get("/tags/{name}")
    async def hashtag(name: str, request: Request) -> Response:
        """A hashtag link's target: the learning group with that hashtag, else the Hashtag itself."""
        for group in runtime.actors.groups.values():
            if group.group is not None and group.group.hashtag.lstrip("#").lower() == name.lower():
                return Response(status_code=302, headers={"location": group.id})
        document = {
            "@context": ACTOR_CONTEXT,
            "id": runtime.config.base_url + request.url.path,
            "type": "Hashtag",
        }
        return _activity_json({**document, "name": f"#{name}"})

    return router


def inbox_router(runtime: HostRuntime) -> APIRouter:
    """The shared inbox and the per-actor inboxes: body read with a cap, then the pipeline decides."""
    router = APIRouter()
    limit = runtime.config.limits.max_body_bytes

    async def read_capped(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def receive(request: Request, owner: LocalActor | None) -> Response:
        body = await read_capped(request)
        if body is None:
            result = InboxResult(Verdict.TOO_LARGE, f"body over {limit} bytes")
        else:
            signed = SignedRequest(
                method=request.method,
                url=runtime.config.base_url
                + request.url.path
                + (f"?{request.url.query}" if request.url.query else ""),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
            )
            result = await runtime.pipeline.receive(signed, inbox_owner=owner.id if owner else None)
        payload = {"status": result.verdict.value, "detail": result.detail}
        if result.signature_failure is not None:
            payload["signature"] = result.signature_failure.value
        headers = {"retry-after": "1"} if result.status in (429, 503) else None
        return JSONResponse(payload, status_code=result.status, headers=headers)

    @router.post("/inbox")
    async def shared_inbox(request: Request) -> Response:
        return await receive(request, None)

    @router.post("/{kind}/{name}/inbox")
    async def actor_inbox(kind: str, name: str, request: Request) -> Response:
        table = {
            ActorKind.NODE.value: runtime.actors.nodes,
            ActorKind.GROUP.value: runtime.actors.groups,
        }.get(kind)
        owner = None if table is None else table.get(name)
        if owner is None:
            return JSONResponse({"error": f"no inbox {kind}/{name}"}, status_code=404)
        return await receive(request, owner)

    return router


def build_host(
    config: HostConfig,
    *,
    store: QuadSink,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    admission: AdmissionPolicy = _default_admission,
    resolver: Resolver = system_resolver,
) -> FastAPI:
    """Build a host app; ``app.state.runtime`` is its :class:`HostRuntime` (workers start with the app)."""
    runtime = HostRuntime(
        config=config,
        store=store,
        clock=clock,
        rng=rng or random.Random(),
        admission=admission,
        resolver=resolver,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"SPORE host {config.domain}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    for router in (
        discovery_router(runtime),
        actor_router(runtime),
        object_router(runtime),
        inbox_router(runtime),
    ):
        app.include_router(router)
    return app


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one), to learn the URL before building the host."""
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
    # every keep-alive response stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass
class RunningHost:
    """A host app served by uvicorn in a background thread; use as a context manager."""

    app: FastAPI
    sock: socket.socket
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def runtime(self) -> HostRuntime:
        runtime: HostRuntime = self.app.state.runtime
        return runtime

    def start(self) -> RunningHost:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("host did not start")
            time.sleep(0.01)
        return self

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the host's event loop from another thread (e.g. ``runtime.follow(...)``)."""
        loop = self.runtime.loop
        assert loop is not None, "host not started"
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def settle(self, timeout: float = 10.0) -> None:
        self.call(self.runtime.settle(timeout=timeout), timeout + 5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()

    def __enter__(self) -> RunningHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_local_host(
    data_dir: Path,
    *,
    nodes: tuple[NodeSpec, ...] = (),
    groups: tuple[GroupSpec, ...] = (),
    store: QuadSink | None = None,
    limits: Limits | None = None,
    tls: tuple[Path, Path] | None = None,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    admission: AdmissionPolicy = _default_admission,
) -> RunningHost:
    """Start a loopback host in a thread (a local fungiverse, tests, the benchmark); loopback fetches allowed.

    With ``tls=(cert, key)`` it serves ``https://localhost:PORT`` and trusts that certificate for its
    own outgoing fetches.
    """
    from knowledge.store import EmbeddedStore

    sock = bind_loopback()
    port = sock.getsockname()[1]
    base_url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    config = HostConfig(
        base_url=base_url,
        data_dir=data_dir,
        nodes=nodes,
        groups=groups,
        allow_loopback=True,
        limits=limits or Limits(),
        tls_verify=str(tls[0]) if tls else True,
    )
    app = build_host(
        config,
        store=store if store is not None else EmbeddedStore(),
        clock=clock,
        rng=rng,
        admission=admission,
    )
    cert, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
    return RunningHost(app, sock, ssl_certfile=cert, ssl_keyfile=key).start()
