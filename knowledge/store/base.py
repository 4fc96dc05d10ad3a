"""The store interface every SPORE component talks to, its errors, and helpers shared by both stores.

Terms at this interface are pyoxigraph terms, so the embedded store hands results through without
converting a single term; the remote store parses the endpoint's answer with pyoxigraph's own parsers
into the same types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol, Self, runtime_checkable

import rdflib
from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    NamedNode,
    Quad,
    QuerySolutions,
    RdfFormat,
    Triple,
    parse,
    serialize,
)

from knowledge.store.bindings import Term

GraphName = NamedNode | DefaultGraph
"""A graph of the store: a named graph, or the default graph."""

QueryResult = QuerySolutions | bool | Iterator[Triple]
"""``SELECT`` gives :class:`pyoxigraph.QuerySolutions` (iterate once; ``.variables``; ``.serialize``),
``ASK`` a plain ``bool``, ``CONSTRUCT``/``DESCRIBE`` an iterator of :class:`pyoxigraph.Triple`."""


class StoreError(Exception):
    """A store operation failed; ``message`` is the store's or the endpoint's own explanation."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status


class StoreUnavailable(StoreError):
    """The store could not be reached or opened (endpoint down, timeout, directory locked or missing)."""


class QueryError(StoreError):
    """The store rejected a query or update: syntax error, unknown binding, or an HTTP 4xx answer."""


@runtime_checkable
class KnowledgeStore(Protocol):
    """Quads in named graphs, queried and updated with SPARQL 1.1.

    ``graph=None`` means the whole dataset (all graphs) in :meth:`count` and :meth:`dump`; for
    :meth:`clear` it must be passed explicitly. ``default_graph``/``named_graphs`` restrict a query's
    dataset as SPARQL's ``FROM``/``FROM NAMED`` and the protocol's ``default-graph-uri``/
    ``named-graph-uri`` do: giving either one replaces the whole dataset, so the other is empty unless
    given too, and the query's own ``FROM`` clauses are overridden.

    ``confines_datasets`` says whether the store applies such a restriction to *every* part of a
    query (``ASK``, ``EXISTS``, constant patterns), so that data outside the dataset cannot leak even
    one bit; public queries (:class:`knowledge.graphs.NodeGraphs`) run only on stores where it holds.
    """

    confines_datasets: bool

    def query(
        self,
        query: str,
        *,
        bindings: Mapping[str, Term] | None = None,
        default_graph: GraphName | Sequence[GraphName] | None = None,
        named_graphs: Sequence[NamedNode] | None = None,
    ) -> QueryResult:
        """Evaluate a SPARQL 1.1 query; see :data:`QueryResult` for what comes back."""
        ...

    def update(self, update: str, *, bindings: Mapping[str, Term] | None = None) -> None:
        """Apply a SPARQL 1.1 update (all of it or nothing on the embedded store)."""
        ...

    def load(self, data: bytes | str, *, format: RdfFormat, graph: GraphName | None = None) -> None:
        """Add RDF text; triples go to ``graph`` (default graph if ``None``), quads keep their graphs."""
        ...

    def extend(self, quads: Iterable[Quad]) -> None:
        """Add quads."""
        ...

    def dump(self, *, format: RdfFormat, graph: GraphName | None = None) -> bytes:
        """Serialise one graph, or the whole dataset (``graph=None`` needs a dataset format)."""
        ...

    def clear(self, graph: GraphName | None) -> None:
        """Remove a named graph (or empty the default graph); ``None`` empties the whole store."""
        ...

    def named_graphs(self) -> list[NamedNode | BlankNode]:
        """The named graphs that hold at least one triple, sorted by name."""
        ...

    def count(self, graph: GraphName | None = None) -> int:
        """Number of triples in ``graph``, or of quads in the whole store."""
        ...

    def close(self) -> None:
        """Release files or connections; the store is unusable afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


def rdf_format(value: RdfFormat | str) -> RdfFormat:
    """An :class:`RdfFormat` from itself, a media type (``text/turtle``) or an extension (``ttl``)."""
    if isinstance(value, RdfFormat):
        return value
    found = RdfFormat.from_media_type(value) if "/" in value else RdfFormat.from_extension(value.lstrip("."))
    if found is None:
        raise ValueError(f"unknown RDF format: {value!r} (try ttl, nt, nq, trig, jsonld, rdf)")
    return found


def check_dump_target(graph: GraphName | None, format: RdfFormat) -> None:
    """Both stores refuse the same impossible dumps with the same message."""
    if graph is None and not format.supports_datasets:
        raise ValueError(f"dumping the whole store needs a dataset format (N-Quads, TriG), not {format.name}")


def to_rdflib(store: KnowledgeStore, graphs: GraphName | Sequence[GraphName]) -> rdflib.Graph:
    """The union of ``graphs`` as an rdflib graph, for pyshacl and owlrl.

    Goes through one N-Triples document, so blank nodes shared between the graphs stay shared, parsed
    by pyoxigraph (native code) rather than rdflib's pure-Python parser.
    """
    from knowledge.documents import rdflib_graph

    selected = [graphs] if isinstance(graphs, NamedNode | DefaultGraph) else list(graphs)
    if len(selected) == 1:
        data = store.dump(format=RdfFormat.N_TRIPLES, graph=selected[0])
    else:
        triples = store.query("CONSTRUCT WHERE { ?s ?p ?o }", default_graph=selected)
        assert not isinstance(triples, bool | QuerySolutions)
        data = serialize(triples, format=RdfFormat.N_TRIPLES) or b""
    return rdflib_graph(parse(data, format=RdfFormat.N_TRIPLES))
