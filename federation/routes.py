"""The host's HTTP resources: one router per resource, each built around the injected runtime.

Routers hold no policy of their own: the inbox router hands requests to the verification pipeline,
whose verdict table decides the status; content negotiation is one pure function
(:mod:`federation.linked_data.negotiation`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import ontology
from federation.actors import ActorKind, LocalActor, collection, collection_page
from federation.authorized_fetch import actor_view, refusal
from federation.client import AP_CONTENT_TYPE
from federation.inbox import InboxResult, Verdict
from federation.jsonld import ACTOR_CONTEXT
from federation.linked_data.resources import LinkedData
from federation.nodeinfo import discovery, nodeinfo
from federation.runtime import HostRuntime
from federation.signatures import SignedRequest
from federation.state import Relation
from federation.vocab import id_of
from federation.webfinger import JRD_MEDIA_TYPE, WebFingerError, host_meta, jrd, lookup

__all__ = ["discovery_router", "actor_router", "object_router", "inbox_router"]


def _activity_json(document: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, media_type=AP_CONTENT_TYPE)


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

    linked = LinkedData(runtime)

    @router.get("/actor")
    async def instance_actor(request: Request) -> Response:
        instance = runtime.actors.instance
        return await linked.represent(request, instance.id, runtime.actors.document(instance))

    for kind in (ActorKind.NODE, ActorKind.GROUP):

        @router.get(f"/{kind}/{{name}}", name=f"{kind}-actor")
        async def actor_document(name: str, request: Request, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            document = await actor_view(runtime, request, runtime.actors.document(actor))
            return await linked.represent(request, actor.id, document)

        @router.get(f"/{kind}/{{name}}/followers", name=f"{kind}-followers")
        async def followers(
            name: str, request: Request, page: str | None = None, kind: str = kind
        ) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            if (refused := await refusal(runtime, request, actor.id)) is not None:
                return refused
            relation = Relation.MEMBER if kind == ActorKind.GROUP else Relation.FOLLOWER
            return relation_collection(actor, relation, actor.followers, _page_number(page))

        @router.get(f"/{kind}/{{name}}/following", name=f"{kind}-following")
        async def following(
            name: str, request: Request, page: str | None = None, kind: str = kind
        ) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            if (refused := await refusal(runtime, request, actor.id)) is not None:
                return refused
            return relation_collection(actor, Relation.FOLLOWING, actor.following, _page_number(page))

        @router.get(f"/{kind}/{{name}}/outbox", name=f"{kind}-outbox")
        async def outbox(name: str, request: Request, page: str | None = None, kind: str = kind) -> Response:
            actor = find(kind, name)
            if actor is None:
                return JSONResponse({"error": f"no {kind[:-1]} {name}"}, status_code=404)
            if (refused := await refusal(runtime, request, actor.id)) is not None:
                return refused
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

    linked = LinkedData(runtime)

    @router.get("/objects/{object_id}")
    @router.get("/activities/{object_id}")
    @router.get("/nodes/{name}/activities/{object_id}")  # a node runtime's ids: {actor}/activities/…
    async def stored_object(object_id: str, request: Request) -> Response:
        iri = runtime.config.base_url + request.url.path
        document = runtime.state.get_object(iri)
        if document is None:
            return JSONResponse({"error": "no such object"}, status_code=404)
        owner = id_of(document.get("attributedTo")) or id_of(document.get("actor"))
        if (refused := await refusal(runtime, request, owner)) is not None:
            return refused
        return await linked.represent(request, iri, document)

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
        runtime.metrics.inbox_verdict(result.verdict.value)
        payload = {"status": result.verdict.value, "detail": result.detail}
        if result.signature_failure is not None:
            payload["signature"] = result.signature_failure.value
        headers = {"retry-after": "1"} if result.status in (429, 503) else None
        return JSONResponse(payload, status_code=result.status, headers=headers)

    async def shared_inbox(request: Request) -> Response:
        return await receive(request, None)

    async def actor_inbox(request: Request) -> Response:
        kind, name = request.path_params["kind"], request.path_params["name"]
        table = {
            ActorKind.NODE.value: runtime.actors.nodes,
            ActorKind.GROUP.value: runtime.actors.groups,
        }.get(kind)
        owner = None if table is None else table.get(name)
        if owner is None:
            return JSONResponse({"error": f"no inbox {kind}/{name}"}, status_code=404)
        return await receive(request, owner)

    # Plain Starlette routes: the inbox is the hot path, and FastAPI's per-request dependency solving
    # and validation buy nothing for a handler that reads the raw body itself.
    router.add_route("/inbox", shared_inbox, methods=["POST"])
    router.add_route("/{kind}/{name}/inbox", actor_inbox, methods=["POST"])

    return router
