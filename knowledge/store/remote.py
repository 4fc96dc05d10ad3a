"""Any SPARQL 1.1 Query/Update endpoint as a :class:`~knowledge.store.KnowledgeStore`.

Speaks only the standard protocols, so it works with Oxigraph server, Virtuoso, Fuseki, GraphDB:

* queries and updates: SPARQL 1.1 Protocol, POST with form-encoded ``query``/``update``
  (https://www.w3.org/TR/sparql11-protocol/#query-via-post-urlencoded), the dataset restriction as
  ``default-graph-uri``/``named-graph-uri``;
* bulk load and dump of one graph: SPARQL 1.1 Graph Store HTTP Protocol (``?graph=`` / ``?default``,
  https://www.w3.org/TR/sparql11-http-rdf-update/) when a Graph Store URL is given; otherwise
  ``INSERT DATA`` in chunks and ``CONSTRUCT``.

Answers are parsed by pyoxigraph, so callers get the same types as from the embedded store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby, islice
from typing import Self

import httpx
from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    Literal,
    NamedNode,
    Quad,
    QueryResultsFormat,
    QuerySolutions,
    RdfFormat,
    Triple,
    parse,
    parse_query_results,
    serialize,
)

from knowledge.store.base import (
    GraphName,
    QueryError,
    QueryResult,
    StoreError,
    StoreUnavailable,
    check_dump_target,
)
from knowledge.store.bindings import BindingError, Term, bind, query_form

# What to ask for, by query form: some endpoints (Virtuoso) answer a CONSTRUCT with a solutions table
# when results formats are acceptable at all. The answer's Content-Type still picks the parser.
_ACCEPT_SOLUTIONS = "application/sparql-results+json, application/sparql-results+xml;q=0.8"
_ACCEPT_TRIPLES = "application/n-triples, text/turtle;q=0.9, application/rdf+xml;q=0.5"
_ALL_QUADS = "SELECT ?s ?p ?o ?g WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"
_COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
_COUNT_ALL = "SELECT (COUNT(*) AS ?n) WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"
# Not GRAPH ?g {}: Virtuoso answers that with unbound rows.
_GRAPHS = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"
_MESSAGE_LIMIT = 500
_VIRTUOSO_BNODE = re.compile(rb'("type"\s*:\s*"bnode"\s*,\s*"value"\s*:\s*")nodeID://')


class SparqlEndpointStore:
    """A remote store at ``query_url``.

    ``update_url`` defaults to ``query_url`` (Virtuoso and Fuseki serve both at one address; Oxigraph
    uses ``/query`` and ``/update``, see :meth:`oxigraph`). ``graph_store_url`` enables fast bulk
    load/dump. Credentials are HTTP basic (``user``/``password``) or a bearer ``token``; ``timeout``
    is in seconds for each request.

    ``confines_datasets=True`` declares that the endpoint applies the protocol's dataset to every part
    of a query. It is off unless verified: Virtuoso 7.2 answers ``ASK``, ``FILTER EXISTS`` and fully
    constant ``GRAPH <g> {…}`` patterns from all graphs (tests/test_store_virtuoso.py), which would
    let a public query probe a node's private graph. Oxigraph server passes the suite and
    :meth:`oxigraph` sets it.
    """

    def __init__(
        self,
        query_url: str,
        *,
        update_url: str | None = None,
        graph_store_url: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        insert_chunk: int = 10_000,
        confines_datasets: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if token is not None and user is not None:
            raise ValueError("give either user/password or a bearer token, not both")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.query_url = query_url
        self.update_url = update_url or query_url
        self.graph_store_url = graph_store_url
        self.insert_chunk = insert_chunk
        self.confines_datasets = confines_datasets
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        auth = httpx.BasicAuth(user, password) if user is not None and password is not None else None
        self._client = httpx.Client(timeout=timeout, headers=headers, auth=auth, transport=transport)

    @classmethod
    def oxigraph(cls, base_url: str, **options: object) -> SparqlEndpointStore:
        """An Oxigraph server at ``base_url`` (``/query``, ``/update`` and ``/store``)."""
        base = base_url.rstrip("/")
        options.setdefault("confines_datasets", True)
        return cls(f"{base}/query", update_url=f"{base}/update", graph_store_url=f"{base}/store", **options)  # type: ignore[arg-type]

    # --- SPARQL ---------------------------------------------------------------------------------

    def query(
        self,
        query: str,
        *,
        bindings: Mapping[str, Term] | None = None,
        default_graph: GraphName | Sequence[GraphName] | None = None,
        named_graphs: Sequence[NamedNode] | None = None,
    ) -> QueryResult:
        try:
            form: dict[str, str | list[str]] = {"query": bind(query, bindings)}
        except BindingError as error:
            raise QueryError(str(error), endpoint=self.query_url) from error
        form.update(_dataset_parameters(default_graph, named_graphs))
        kind = query_form(query)
        accept = _ACCEPT_TRIPLES if kind in {"construct", "describe"} else _ACCEPT_SOLUTIONS
        answer = _parse_answer(self._send("POST", self.query_url, data=form, headers={"Accept": accept}))
        if kind == "ask" and isinstance(answer, QuerySolutions):
            return _ask_from_table(answer)
        return answer

    def update(self, update: str, *, bindings: Mapping[str, Term] | None = None) -> None:
        try:
            text = bind(update, bindings, update=True)
        except BindingError as error:
            raise QueryError(str(error), endpoint=self.update_url) from error
        self._send("POST", self.update_url, data={"update": text})

    # --- bulk data ------------------------------------------------------------------------------

    def load(self, data: bytes | str, *, format: RdfFormat, graph: GraphName | None = None) -> None:
        if graph is not None and format.supports_datasets:
            raise ValueError(f"{format.name} carries its own graph names; load it without graph=")
        if self.graph_store_url is not None and not format.supports_datasets:
            body = data.encode() if isinstance(data, str) else data
            self._send(
                "POST",
                self.graph_store_url,
                params=_graph_parameter(graph or DefaultGraph()),
                content=body,
                headers={"Content-Type": format.media_type},
            )
            return
        try:
            quads = list(parse(data, format))
        except SyntaxError as error:
            raise QueryError(f"cannot parse {format.name}: {error}") from error
        if graph is not None and not isinstance(graph, DefaultGraph):
            quads = [Quad(q.subject, q.predicate, q.object, graph) for q in quads]
        self.extend(quads)

    def extend(self, quads: Iterable[Quad]) -> None:
        """Add quads with ``INSERT DATA``, ``insert_chunk`` quads per request.

        Not through the Graph Store Protocol: it takes one graph per request, and SPARQL makes the
        blank nodes of every request fresh, so a blank node used in two graphs would become two.
        The same holds across chunks: raise ``insert_chunk`` for data whose blank nodes span more.
        """
        iterator = iter(quads)
        while chunk := list(islice(iterator, self.insert_chunk)):
            self._send("POST", self.update_url, data={"update": _insert_data(chunk)})

    def dump(self, *, format: RdfFormat, graph: GraphName | None = None) -> bytes:
        check_dump_target(graph, format)
        if graph is None:
            rows = self.query(_ALL_QUADS)
            assert isinstance(rows, QuerySolutions)
            quads = (Quad(r["s"], r["p"], r["o"], r["g"] or DefaultGraph()) for r in rows)
            return serialize(quads, format=format) or b""
        if self.graph_store_url is not None and not format.supports_datasets:
            response = self._send(
                "GET",
                self.graph_store_url,
                params=_graph_parameter(graph),
                headers={"Accept": format.media_type},
                missing_ok=True,
            )
            if response.status_code == 404:  # the Graph Store Protocol's answer for an empty graph
                return serialize([], format=format) or b""
            if _media_type(response) == format.media_type:
                return response.content
            triples: Iterable[Triple] = (q.triple for q in parse(response.content, _rdf_format(response)))
        else:
            # The protocol cannot name the default graph; left unrestricted, the default graph is it.
            only = None if isinstance(graph, DefaultGraph) else graph
            answer = self.query("CONSTRUCT WHERE { ?s ?p ?o }", default_graph=only)
            assert not isinstance(answer, bool | QuerySolutions)
            triples = answer
        if format.supports_datasets:
            return (
                serialize((Quad(t.subject, t.predicate, t.object, graph) for t in triples), format=format)
                or b""
            )
        return serialize(triples, format=format) or b""

    def clear(self, graph: GraphName | None) -> None:
        if graph is None:
            self.update("DROP SILENT ALL")
        elif isinstance(graph, DefaultGraph):
            self.update("DROP SILENT DEFAULT")
        else:
            self.update(f"DROP SILENT GRAPH {graph}")  # str() of a NamedNode is an escaped <IRI>

    def named_graphs(self) -> list[NamedNode | BlankNode]:
        rows = self.query(_GRAPHS)
        assert isinstance(rows, QuerySolutions)
        return sorted((row["g"] for row in rows if row["g"] is not None), key=str)

    def count(self, graph: GraphName | None = None) -> int:
        if graph is None:
            rows = self.query(_COUNT_ALL)
        elif isinstance(graph, DefaultGraph):
            rows = self.query(_COUNT)
        else:
            rows = self.query(_COUNT, default_graph=graph)
        assert isinstance(rows, QuerySolutions)
        return int(next(iter(rows))["n"].value)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SparqlEndpointStore({self.query_url})"

    # --- HTTP -----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, missing_ok: bool = False, **request: object) -> httpx.Response:
        try:
            response = self._client.request(method, url, **request)  # type: ignore[arg-type]
        except httpx.TimeoutException as error:
            raise StoreUnavailable(f"{url} did not answer in time ({error})", endpoint=url) from error
        except httpx.HTTPError as error:
            raise StoreUnavailable(f"cannot reach {url}: {error}", endpoint=url) from error
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        message = _error_message(response)
        error_type = QueryError if 400 <= response.status_code < 500 else StoreError
        raise error_type(
            f"{url} answered {response.status_code}: {message}", endpoint=url, status=response.status_code
        )


def _dataset_parameters(
    default_graph: GraphName | Sequence[GraphName] | None, named_graphs: Sequence[NamedNode] | None
) -> dict[str, list[str]]:
    if default_graph is None and named_graphs is None:
        return {}
    defaults = [default_graph] if isinstance(default_graph, NamedNode | DefaultGraph) else default_graph
    if any(not isinstance(graph, NamedNode) for graph in defaults or []):
        raise ValueError("the SPARQL protocol can only name named graphs in default_graph")
    parameters = {
        "default-graph-uri": [graph.value for graph in defaults or []],  # type: ignore[union-attr]
        "named-graph-uri": [graph.value for graph in named_graphs or []],
    }
    if not any(parameters.values()):
        # The protocol cannot say "empty dataset"; a named graph nobody uses says it.
        parameters["named-graph-uri"] = ["urn:spore:empty-dataset"]
    return parameters


def _graph_parameter(graph: GraphName | BlankNode) -> dict[str, str]:
    if isinstance(graph, DefaultGraph):
        return {"default": ""}
    if isinstance(graph, BlankNode):
        raise ValueError("a blank-node graph name cannot be addressed over the Graph Store Protocol")
    return {"graph": graph.value}


def _insert_data(quads: list[Quad]) -> str:
    """``INSERT DATA`` with every term in pyoxigraph's escaped N-Triples form.

    With blank nodes, ``INSERT {…} WHERE {}`` instead: the same effect in SPARQL 1.1 (one solution,
    one fresh blank node per label), and Virtuoso refuses blank nodes in ``INSERT DATA``.
    """
    has_blank = any(isinstance(q.subject, BlankNode) or isinstance(q.object, BlankNode) for q in quads)
    parts = ["INSERT {" if has_blank else "INSERT DATA {"]
    ordered = sorted(quads, key=lambda q: str(q.graph_name))
    for graph, group in groupby(ordered, key=lambda q: q.graph_name):
        lines = "\n".join(f"{q.subject} {q.predicate} {q.object} ." for q in group)
        parts.append(lines if isinstance(graph, DefaultGraph) else f"GRAPH {graph} {{\n{lines}\n}}")
    parts.append("} WHERE {}" if has_blank else "}")
    return "\n".join(parts)


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower()


def _rdf_format(response: httpx.Response) -> RdfFormat:
    found = RdfFormat.from_media_type(_media_type(response))
    if found is None:
        raise StoreError(f"unexpected answer type {_media_type(response)!r}", endpoint=str(response.url))
    return found


def _parse_answer(response: httpx.Response) -> QueryResult:
    """The answer as pyoxigraph types, read completely here so that a malformed answer is a
    :class:`StoreError` now rather than a ``SyntaxError`` in the middle of the caller's loop."""
    media_type = _media_type(response)
    results_format = QueryResultsFormat.from_media_type(media_type) if media_type else None
    content = response.content
    try:
        if results_format is not None:
            content = _virtuoso_blank_nodes(content)
            answer = parse_query_results(content, results_format)
            if not isinstance(answer, QuerySolutions):
                return bool(answer)
            for _ in answer:  # validation pass; pyoxigraph offers no way to rewind solutions
                pass
            return parse_query_results(content, results_format)  # type: ignore[return-value]
        return iter([quad.triple for quad in parse(content, _rdf_format(response))])
    except SyntaxError as error:
        raise StoreError(f"unreadable answer: {error}", endpoint=str(response.url)) from error


def _virtuoso_blank_nodes(content: bytes) -> bytes:
    """Virtuoso names result blank nodes ``nodeID://b10001``, which is not a blank node label."""
    if b"nodeID://" not in content:
        return content
    return _VIRTUOSO_BNODE.sub(rb"\1", content)


def _ask_from_table(solutions: QuerySolutions) -> bool:
    """Virtuoso 7 answers ASK with a one-cell table (``__ASK_RETVAL`` = 1 or 0), not a boolean."""
    for row in solutions:
        value = next(iter(row), None)
        return isinstance(value, Literal) and value.value not in {"0", "false"}
    return False


def _error_message(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:_MESSAGE_LIMIT] or response.reason_phrase
