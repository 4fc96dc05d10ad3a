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
import io
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pyoxigraph import BlankNode, Literal, NamedNode, QueryResultsFormat, QuerySolutions, RdfFormat, Triple
from pyoxigraph import serialize as serialize_rdf

from federation.fungiverse_endpoint import answer_fungiverse, wants_fungiverse
from federation.jsonld import SPORE_CONTEXT_URL, compact
from federation.runtime import HostRuntime
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
    with_base,
)
from knowledge.graphs import PUBLIC_KINDS, check_public_query, graph_iri
from knowledge.store import KnowledgeStore, QueryError, StoreError

__all__ = ["sparql_router", "SparqlService", "EndpointScope", "service_description"]

SD = "http://www.w3.org/ns/sparql-service-description#"
VOID = "http://rdfs.org/ns/void#"
FORMATS = "http://www.w3.org/ns/formats/"
RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
DCTERMS_TITLE = NamedNode("http://purl.org/dc/terms/title")
# W3C's format IRIs (https://www.w3.org/ns/formats/) for sd:resultFormat.
_FORMAT_IRIS = {
    "application/sparql-results+json": "SPARQL_Results_JSON",
    "application/sparql-results+xml": "SPARQL_Results_XML",
    "text/csv": "SPARQL_Results_CSV",
    "text/tab-separated-values": "SPARQL_Results_TSV",
    "text/turtle": "Turtle",
    "application/n-triples": "N-Triples",
    "application/ld+json": "JSON-LD",
    "application/rdf+xml": "RDF_XML",
}


@dataclass(frozen=True)
class EndpointScope:
    """What one endpoint serves: its URL and the public graphs that make its dataset."""

    url: str
    title: str
    public_graphs: tuple[NamedNode, ...]
    actors: tuple[str, ...] = ()  # local actors whose peers a fungiverse query reaches


FANOUT_AT_ONCE = 2
"""Fungiverse queries one host runs at a time; more get 503."""


class ResultTooLarge(Exception):
    pass


class QueryTimeout(Exception):
    pass


class _BoundedBuffer(io.BytesIO):
    """Where results are serialised: raises once they pass the size cap or the deadline.

    pyoxigraph serialises lazily, pulling solutions from the evaluator as it writes, so checking here
    stops a runaway query between two writes even after the caller has given up waiting.
    """

    def __init__(self, max_bytes: int, deadline: float) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.deadline = deadline

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.max_bytes:
            raise ResultTooLarge
        if time.monotonic() > self.deadline:
            raise QueryTimeout
        return super().write(data)

    def value(self) -> bytes:
        return self.getvalue()


def _boolean(value: bool, format: QueryResultsFormat) -> bytes:
    # An ASK result reaches us as a plain bool (the store interface), and pyoxigraph cannot build a
    # QueryBoolean from one; the formats are two lines each (sparql11-results-json 3.2.2, XMLres 2.4).
    word = "true" if value else "false"
    if format == QueryResultsFormat.JSON:
        return json.dumps({"head": {}, "boolean": value}).encode()
    if format == QueryResultsFormat.XML:
        return (
            '<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">'
            f"<head/><boolean>{word}</boolean></sparql>\n"
        ).encode()
    return f"{word}\n".encode()


def _graph_document(triples: Any, media: str, buffer: _BoundedBuffer) -> bytes:
    format = GRAPH_FORMATS[media]
    serialize_rdf(triples, buffer, format=format)
    if format != RdfFormat.JSON_LD:
        return buffer.value()
    # pyoxigraph writes expanded JSON-LD; compacting with the SPORE context gives the short names
    # the rest of SPORE's JSON uses (the context is served locally, never fetched).
    expanded = json.loads(buffer.value() or b"[]")
    compacted = compact({"@graph": expanded}, SPORE_CONTEXT_URL)
    text = json.dumps(compacted, ensure_ascii=False).encode()
    if len(text) > buffer.max_bytes:
        raise ResultTooLarge
    return text


def evaluate(
    store: KnowledgeStore,
    text: str,
    defaults: list[NamedNode],
    named: list[NamedNode],
    accept: str | None,
    *,
    deadline: float,
    max_bytes: int,
) -> tuple[bytes, str]:
    """Run a query over the given dataset and serialise its answer as the client prefers.

    Returns (body, media type); raises :class:`ProtocolError` 406 when the answer's kind (results or
    a graph) has no format the client accepts.
    """
    result = store.query(text, default_graph=defaults, named_graphs=named)
    buffer = _BoundedBuffer(max_bytes, deadline)
    if isinstance(result, bool | QuerySolutions):
        media = negotiate(accept, list(RESULT_FORMATS))
        if media is None:
            raise ProtocolError(406, f"results are served as {', '.join(RESULT_FORMATS)}")
        if isinstance(result, bool):
            return _boolean(result, RESULT_FORMATS[media]), media
        result.serialize(buffer, RESULT_FORMATS[media])
        return buffer.value(), media
    media = negotiate(accept, list(GRAPH_FORMATS))
    if media is None:
        raise ProtocolError(406, f"graphs are served as {', '.join(GRAPH_FORMATS)}")
    return _graph_document(result, media, buffer), media


def service_description(scope: EndpointScope, *, update: bool) -> list[Triple]:
    """SPARQL 1.1 Service Description of an endpoint, with its dataset also described in VoID."""
    endpoint = NamedNode(scope.url)
    dataset, default_graph = BlankNode(), BlankNode()
    sd = {name: NamedNode(SD + name) for name in ("Service", "Dataset", "Graph", "NamedGraph")}
    triples = [
        Triple(endpoint, RDF_TYPE, sd["Service"]),
        Triple(endpoint, NamedNode(SD + "endpoint"), endpoint),
        Triple(endpoint, NamedNode(SD + "supportedLanguage"), NamedNode(SD + "SPARQL11Query")),
        Triple(endpoint, NamedNode(SD + "feature"), NamedNode(SD + "UnionDefaultGraph")),
        Triple(endpoint, NamedNode(SD + "defaultDataset"), dataset),
        Triple(dataset, RDF_TYPE, sd["Dataset"]),
        Triple(dataset, RDF_TYPE, NamedNode(VOID + "Dataset")),
        Triple(dataset, NamedNode(VOID + "sparqlEndpoint"), endpoint),
        Triple(dataset, DCTERMS_TITLE, Literal(scope.title)),
        Triple(dataset, NamedNode(SD + "defaultGraph"), default_graph),
        Triple(default_graph, RDF_TYPE, sd["Graph"]),
    ]
    if update:
        triples.append(
            Triple(endpoint, NamedNode(SD + "supportedLanguage"), NamedNode(SD + "SPARQL11Update"))
        )
    for name in _FORMAT_IRIS.values():
        triples.append(Triple(endpoint, NamedNode(SD + "resultFormat"), NamedNode(FORMATS + name)))
    for graph in scope.public_graphs:
        entry = BlankNode()
        triples += [
            Triple(dataset, NamedNode(SD + "namedGraph"), entry),
            Triple(entry, RDF_TYPE, sd["NamedGraph"]),
            Triple(entry, NamedNode(SD + "name"), graph),
        ]
    return triples


_PREFLIGHT = {
    "access-control-allow-methods": "GET, POST",
    "access-control-allow-headers": "accept, authorization, content-type",
    "access-control-max-age": "86400",
}


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

    async def _read_body(self, request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise ProtocolError(413, f"request body over {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.slots.acquire(blocking=False):
            raise ProtocolError(503, "the endpoint is busy with other queries; retry shortly")

        def work() -> Any:
            try:
                return function(*args, **kwargs)
            except BaseException as error:
                # The traceback's frames hold pyoxigraph results, which must be freed on this thread.
                error.__traceback__ = None
                raise
            finally:
                self.slots.release()

        future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except (TimeoutError, QueryTimeout) as error:
            raise ProtocolError(503, f"the query ran past the {self.timeout:g} s limit") from error
        except ResultTooLarge as error:
            limit = f"{self.max_bytes:,} bytes"
            raise ProtocolError(422, f"the result is larger than {limit}; add a LIMIT") from error

    async def answer(self, request: Request, scope: EndpointScope) -> Response:
        """Answer one request; every answer allows any origin, so browser tools can query."""
        if request.method == "OPTIONS":  # a CORS preflight for a POST with a SPARQL media type
            response: Response = Response(status_code=204, headers=_PREFLIGHT)
        else:
            response = await self._answer(request, scope)
        response.headers["access-control-allow-origin"] = "*"
        return response

    async def _answer(self, request: Request, scope: EndpointScope) -> Response:
        operation = "request"
        try:
            body = await self._read_body(request) if request.method == "POST" else b""
            parsed = parse_request(
                request.method, request.url.query, request.headers.get("content-type"), body
            )
            if parsed is None:
                return self._describe(scope, request.headers.get("accept"))
            operation = parsed.operation.value
            if self.store is None or not self.store.confines_datasets:
                raise ProtocolError(503, "this host's store cannot confine queries to public graphs")
            if parsed.operation is Operation.UPDATE:
                return await self._update(parsed, scope, request.headers.get("authorization"))
            _check_public(parsed.text)
            if wants_fungiverse(request.query_params.get("fungiverse")):
                if parsed.dataset_given:
                    raise ProtocolError(400, "a fungiverse query cannot name graphs: each peer has its own")
                if not self.fanouts.acquire(blocking=False):
                    raise ProtocolError(
                        503, "the endpoint is busy with other fungiverse queries; retry shortly"
                    )
                try:
                    return await answer_fungiverse(
                        self.runtime,
                        self.store,
                        text=parsed.text,
                        endpoint=scope.url,
                        public_graphs=scope.public_graphs,
                        actors=scope.actors,
                        accept=request.headers.get("accept"),
                        peer_timeout=request.query_params.get("peer-timeout"),
                        limit=self.timeout,
                    )
                finally:
                    self.fanouts.release()
            defaults, named = restrict_dataset(parsed, scope.public_graphs)
            accept = request.headers.get("accept")
            if negotiate(accept, [*RESULT_FORMATS, *GRAPH_FORMATS]) is None:
                raise ProtocolError(406, "no SPARQL results or RDF format matches Accept")
            content, media = await self._run(
                evaluate,
                self.store,
                with_base(parsed.text, scope.url),
                defaults,
                named,
                accept,
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

    def _describe(self, scope: EndpointScope, accept: str | None) -> Response:
        media = negotiate(accept, list(GRAPH_FORMATS))
        if media is None:
            return _error(406, f"the service description is served as {', '.join(GRAPH_FORMATS)}")
        triples = service_description(scope, update=self.token is not None)
        prefixes = {"sd": SD, "void": VOID, "formats": FORMATS, "dcterms": "http://purl.org/dc/terms/"}
        format = GRAPH_FORMATS[media]
        content = serialize_rdf(
            triples, format=format, prefixes=prefixes if format == RdfFormat.TURTLE else None
        )
        return Response(content or b"", media_type=media, headers={"vary": "accept"})

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


def _public_graphs(node_ids: Sequence[str]) -> tuple[NamedNode, ...]:
    return tuple(graph_iri(NamedNode(node), kind) for node in node_ids for kind in PUBLIC_KINDS)


def sparql_router(runtime: HostRuntime) -> APIRouter:
    """``/sparql`` (every node's public graphs) and ``/nodes/{name}/sparql`` (one node's)."""
    router = APIRouter()
    service = SparqlService(runtime)
    base = runtime.config.base_url
    nodes = runtime.actors.nodes
    host_scope = EndpointScope(
        f"{base}/sparql",
        f"Public graphs of the SPORE host {runtime.config.domain}",
        _public_graphs([actor.id for actor in nodes.values()]),
        tuple(actor.id for actor in [*nodes.values(), *runtime.actors.groups.values()]),
    )
    node_scopes = {
        name: EndpointScope(
            f"{actor.id}/sparql",
            f"Public graphs of the fungus node {name}",
            _public_graphs([actor.id]),
            (actor.id,),
        )
        for name, actor in nodes.items()
    }
    # Every method reaches the handler, so a PUT gets the protocol's 405 with a message and Allow.
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    async def host_endpoint(request: Request) -> Response:
        return await service.answer(request, host_scope)

    async def node_endpoint(request: Request) -> Response:
        scope = node_scopes.get(request.path_params["name"])
        if scope is None:
            return _error(404, f"no node {request.path_params['name']}")
        return await service.answer(request, scope)

    router.add_route("/sparql", host_endpoint, methods=methods)
    router.add_route("/nodes/{name}/sparql", node_endpoint, methods=methods)
    return router
