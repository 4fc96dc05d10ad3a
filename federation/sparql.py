"""The public SPARQL 1.1 endpoint: ``/sparql`` for the host, ``/nodes/{name}/sparql`` for each node.

The host's endpoint answers over the union of all its nodes' public graphs, a node's over its own;
the private graph is never in the dataset (:func:`knowledge.graphs.check_public_query` and the
dataset restriction, as :meth:`knowledge.graphs.NodeGraphs.query_public` does). Queries run on a
small thread pool under a deadline and a result-size cap, so one heavy query cannot starve the
inboxes sharing the event loop; see "SPARQL endpoint" in docs/federation.md for statuses and limits.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from pyoxigraph import NamedNode

from federation.fungiverse_endpoint import answer_fungiverse, wants_fungiverse
from federation.runtime import HostRuntime
from federation.sparql_description import description_document, service_description
from federation.sparql_protocol import (
    GRAPH_FORMATS,
    RESULT_FORMATS,
    Operation,
    ProtocolError,
    ProtocolRequest,
    check_update,
    negotiate,
    parse_request,
    restrict_dataset,
    unshift_position,
    url_parameters,
    with_base,
)
from federation.sparql_results import QueryTimeout, ResultTooLarge, evaluate
from knowledge.graphs import PUBLIC_KINDS, check_public_query, graph_iri
from knowledge.store import KnowledgeStore, QueryError, StoreError

__all__ = ["install_sparql", "SparqlService", "SparqlEndpoints", "EndpointScope", "Incoming"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class EndpointScope:
    """What one endpoint serves: its URL and the public graphs that make its dataset."""

    url: str
    title: str
    public_graphs: tuple[NamedNode, ...]
    actors: tuple[str, ...] = ()  # local actors whose peers a fungiverse query reaches


FANOUT_AT_ONCE = 2
"""Fungiverse queries one host runs at a time; more get 503."""


_PREFLIGHT = {
    "access-control-allow-methods": "GET, POST",
    "access-control-allow-headers": "accept, authorization, content-type",
    "access-control-max-age": "86400",
}


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request timed out or the client went away: nobody is waiting
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _one_line(message: str, limit: int = 300) -> str:
    # pyoxigraph lists every token it expected; the position and the first of them say enough.
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_public(text: str) -> None:
    """The store's rule for public queries (no SERVICE, FROM, DEFINE …), as a 400 naming the word."""
    try:
        check_public_query(text)
    except QueryError as error:
        raise ProtocolError(400, f"refused: {error.message}") from error


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(f"{message}\n", status_code=status, headers=headers)


@dataclass(frozen=True)
class Incoming:
    """What the endpoint reads of one HTTP request: the method, URL parameters, three headers, body."""

    method: str
    url_params: list[tuple[str, str]]
    content_type: str | None = None
    accept: str | None = None
    authorization: str | None = None
    body: bytes = b""

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.url_params if key == name), None)


class SparqlService:
    """Evaluates protocol requests for any scope of one host: the thread pool, limits and credentials."""

    def __init__(self, runtime: HostRuntime) -> None:
        limits = runtime.config.limits
        self.store = runtime.store if isinstance(runtime.store, KnowledgeStore) else None
        self.timeout = limits.sparql_timeout_seconds
        self.max_bytes = limits.sparql_max_result_bytes
        self.max_body = limits.max_body_bytes
        self.token = runtime.config.sparql_update_token
        self.runtime = runtime
        # A fungiverse query makes the host send one request per peer: few at a time, so the endpoint
        # cannot be used to flood the network (each also caps its peers, FANOUT_MAX_PEERS).
        self.fanouts = threading.BoundedSemaphore(FANOUT_AT_ONCE)
        # Slots are released by the worker thread when it actually finishes, so queries the client
        # stopped waiting for still count: a burst of runaway queries gets 503, not a growing backlog.
        self.slots = threading.BoundedSemaphore(limits.sparql_workers)
        self.executor = ThreadPoolExecutor(limits.sparql_workers, thread_name_prefix="spore-sparql")

    async def _run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.slots.acquire(blocking=False):
            raise ProtocolError(503, "the endpoint is busy with other queries; retry shortly")

        # The worker settles an asyncio future itself rather than through run_in_executor and
        # wait_for, whose wrapped and chained futures cost ~20 µs of a ~0.1 ms hop a request.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def work() -> None:
            try:
                result = function(*args, **kwargs)
            except BaseException as error:
                # The traceback's frames hold pyoxigraph results, which must be freed on this thread.
                error.__traceback__ = None
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
            finally:
                self.slots.release()

        self.executor.submit(work)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except (TimeoutError, QueryTimeout) as error:
            raise ProtocolError(503, f"the query ran past the {self.timeout:g} s limit") from error
        except ResultTooLarge as error:
            limit = f"{self.max_bytes:,} bytes"
            raise ProtocolError(422, f"the result is larger than {limit}; add a LIMIT") from error

    async def answer(self, request: Incoming, scope: EndpointScope) -> Response:
        """Answer one request; every answer allows any origin, so browser tools can query."""
        if request.method == "OPTIONS":  # a CORS preflight for a POST with a SPARQL media type
            response: Response = Response(status_code=204, headers=_PREFLIGHT)
        else:
            response = await self._answer(request, scope)
        response.headers["access-control-allow-origin"] = "*"
        return response

    async def _answer(self, request: Incoming, scope: EndpointScope) -> Response:
        operation = "request"
        try:
            parsed = parse_request(request.method, request.url_params, request.content_type, request.body)
            if parsed is None:
                return self._describe(scope, request.accept)
            operation = parsed.operation.value
            if self.store is None or not self.store.confines_datasets:
                raise ProtocolError(503, "this host's store cannot confine queries to public graphs")
            if parsed.operation is Operation.UPDATE:
                return await self._update(parsed, scope, request.authorization)
            _check_public(parsed.text)
            if wants_fungiverse(request.param("fungiverse")):
                return await self._fungiverse(parsed, scope, request)
            defaults, named = restrict_dataset(parsed, scope.public_graphs)
            if negotiate(request.accept, _ALL_FORMATS) is None:
                raise ProtocolError(406, "no SPARQL results or RDF format matches Accept")
            content, media = await self._run(
                evaluate,
                self.store,
                with_base(parsed.text, scope.url),
                defaults,
                named,
                request.accept,
                deadline=time.monotonic() + self.timeout,
                max_bytes=self.max_bytes,
            )
            return Response(content, media_type=media, headers={"vary": "accept"})
        except ProtocolError as error:
            headers = {"allow": "GET, POST"} if error.status == 405 else None
            if error.status == 503:
                headers = {"retry-after": "5"}
            if error.status == 401:
                headers = {"www-authenticate": 'Bearer realm="SPARQL Update"'}
            return _error(error.status, error.message, headers)
        except QueryError as error:
            # The parser's message names the line and column; one line of it is enough for a client.
            return _error(400, f"malformed {operation}: {_one_line(unshift_position(error.message))}")
        except StoreError as error:
            return _error(500, f"the store failed: {_one_line(error.message)}")

    async def _fungiverse(self, parsed: ProtocolRequest, scope: EndpointScope, request: Incoming) -> Response:
        if parsed.dataset_given:
            raise ProtocolError(400, "a fungiverse query cannot name graphs: each peer has its own")
        if not self.fanouts.acquire(blocking=False):
            raise ProtocolError(503, "the endpoint is busy with other fungiverse queries; retry shortly")
        assert self.store is not None
        try:
            return await answer_fungiverse(
                self.runtime,
                self.store,
                text=parsed.text,
                endpoint=scope.url,
                public_graphs=scope.public_graphs,
                actors=scope.actors,
                accept=request.accept,
                peer_timeout=request.param("peer-timeout"),
                limit=self.timeout,
            )
        finally:
            self.fanouts.release()

    def _describe(self, scope: EndpointScope, accept: str | None) -> Response:
        media = negotiate(accept, tuple(GRAPH_FORMATS))
        if media is None:
            return _error(406, f"the service description is served as {', '.join(GRAPH_FORMATS)}")
        update = self.token is not None
        triples = service_description(scope.url, scope.title, scope.public_graphs, update=update)
        content = description_document(triples, GRAPH_FORMATS[media])
        return Response(content, media_type=media, headers={"vary": "accept"})

    async def _update(
        self, parsed: ProtocolRequest, scope: EndpointScope, authorization: str | None
    ) -> Response:
        if self.token is None:
            raise ProtocolError(403, "SPARQL Update is disabled on this host")
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise ProtocolError(401, "SPARQL Update needs a bearer token (Authorization: Bearer …)")
        if not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
            raise ProtocolError(403, "the bearer token is not valid for SPARQL Update")
        if parsed.dataset_given:
            raise ProtocolError(
                400, "using-graph-uri/using-named-graph-uri are not supported: write USING clauses"
            )
        _check_public(parsed.text)
        text = with_base(parsed.text, scope.url)
        check_update(text, scope.public_graphs)
        assert self.store is not None
        await self._run(self.store.update, text)
        return Response(status_code=204)


_ALL_FORMATS = (*RESULT_FORMATS, *GRAPH_FORMATS)


def _public_graphs(node_ids: Sequence[str]) -> tuple[NamedNode, ...]:
    return tuple(graph_iri(NamedNode(node), kind) for node in node_ids for kind in PUBLIC_KINDS)


class _Scopes:
    """The host's scope and each node's, rebuilt when a node is spawned on the running host."""

    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime
        self.key: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self.host, self.nodes = self._build()

    def _build(self) -> tuple[EndpointScope, dict[str, EndpointScope]]:
        base, actors = self.runtime.config.base_url, self.runtime.actors
        self.key = (tuple(actors.nodes), tuple(actors.groups))
        host = EndpointScope(
            f"{base}/sparql",
            f"Public graphs of the SPORE host {self.runtime.config.domain}",
            _public_graphs([actor.id for actor in actors.nodes.values()]),
            tuple(actor.id for actor in [*actors.nodes.values(), *actors.groups.values()]),
        )
        nodes = {
            name: EndpointScope(
                f"{actor.id}/sparql",
                f"Public graphs of the fungus node {name}",
                _public_graphs([actor.id]),
                (actor.id,),
            )
            for name, actor in actors.nodes.items()
        }
        return host, nodes

    def current(self) -> tuple[EndpointScope, dict[str, EndpointScope]]:
        actors = self.runtime.actors
        if self.key != (tuple(actors.nodes), tuple(actors.groups)):
            self.host, self.nodes = self._build()
        return self.host, self.nodes


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class SparqlEndpoints:
    """ASGI middleware answering ``/sparql`` and ``/nodes/{name}/sparql`` before the app's router.

    Hand-written rather than a route because a route pays for the matching of every route before it
    and for Starlette's request objects, ~0.3 ms a request: more than a point lookup costs the store
    (see "SPARQL endpoint" in docs/benchmarks.md). Everything else passes through untouched.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], runtime: HostRuntime) -> None:
        self.app = app
        self.service = SparqlService(runtime)
        self.scopes = _Scopes(runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        path = path.removeprefix(scope.get("root_path", ""))  # as the router matches, behind a proxy
        if path != "/sparql" and not (path.startswith("/nodes/") and path.endswith("/sparql")):
            await self.app(scope, receive, send)
            return
        host, nodes = self.scopes.current()
        name = path[len("/nodes/") : -len("/sparql")]
        if path == "/sparql":
            endpoint: EndpointScope | None = host
        elif not name or "/" in name:
            await self.app(scope, receive, send)
            return
        else:
            endpoint = nodes.get(name)
        response = await self._respond(scope, receive, endpoint, name)
        await response(scope, receive, send)

    async def _respond(
        self, scope: Scope, receive: Receive, endpoint: EndpointScope | None, name: str
    ) -> Response:
        if endpoint is None:
            return _error(404, f"no node {name}")
        headers = {key: value for key, value in scope["headers"] if key in _READ_HEADERS}
        method = scope["method"]
        try:
            body = await _read_body(receive, self.service.max_body) if method == "POST" else b""
        except ProtocolError as error:
            return _error(error.status, error.message)

        def header(key: bytes) -> str | None:
            value = headers.get(key)
            return None if value is None else value.decode("latin-1")

        request = Incoming(
            method,
            url_parameters(scope["query_string"].decode("latin-1")),
            header(b"content-type"),
            header(b"accept"),
            header(b"authorization"),
            body,
        )
        return await self.service.answer(request, endpoint)


_READ_HEADERS = frozenset((b"content-type", b"accept", b"authorization"))


def install_sparql(app: FastAPI, runtime: HostRuntime) -> None:
    """Serve the host's and its nodes' SPARQL endpoints on ``app`` (every method reaches them, so a
    PUT gets the protocol's 405 with a message and ``Allow``)."""
    app.add_middleware(SparqlEndpoints, runtime=runtime)
