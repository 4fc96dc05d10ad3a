"""A node's named graphs: which graph holds what, and which of them the world may see.

Graph IRIs are ``{node_iri}/graphs/{kind}``: derived, never stored separately, so a node's graphs can
be found from its actor IRI alone. Only the private graph (the node's users and their listening data)
is withheld; :meth:`NodeGraphs.query_public` restricts a query's dataset so that SPARQL cannot reach it,
whatever ``FROM``/``GRAPH`` clauses the query text contains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pyoxigraph import NamedNode

from knowledge.store.base import KnowledgeStore, QueryError, QueryResult, StoreError
from knowledge.store.bindings import Term, keywords


class GraphKind(StrEnum):
    """The six graphs of a node (DESIGN.md, "A node's graphs")."""

    BLUEPRINT = "blueprint"
    """The current blueprint and its revisions."""
    CATALOGUE = "catalogue"
    """Artists, tags, public music knowledge."""
    PRIVATE = "private"
    """The node's users and their listening data: never served or sent."""
    MODELS = "models"
    """Snapshots, model cards, evaluations."""
    PEERS = "peers"
    """Cached remote actors, groups and their claims."""
    DECISIONS = "decisions"
    """Decisions with their evidence."""

    @property
    def public(self) -> bool:
        return self is not GraphKind.PRIVATE


PUBLIC_KINDS: tuple[GraphKind, ...] = tuple(kind for kind in GraphKind if kind.public)


@dataclass(frozen=True, slots=True)
class NodeGraphs:
    """The graphs of one node in a store (several nodes may share a store)."""

    node: NamedNode
    store: KnowledgeStore

    def __post_init__(self) -> None:
        if not isinstance(self.node, NamedNode):
            raise TypeError(f"node must be a NamedNode, got {type(self.node).__name__}")

    def graph(self, kind: GraphKind | str) -> NamedNode:
        """The IRI of one of the node's graphs, e.g. ``https://host/nodes/a/graphs/models``."""
        return graph_iri(self.node, GraphKind(kind))

    @property
    def public_graphs(self) -> list[NamedNode]:
        return [self.graph(kind) for kind in PUBLIC_KINDS]

    def query_public(self, query: str, *, bindings: Mapping[str, Term] | None = None) -> QueryResult:
        """Run ``query`` over the public graphs only: their union is the default graph and they are
        the only named graphs, so neither ``GRAPH ?g`` nor ``FROM <…/private>`` can see private data.
        What could widen the dataset or reach out of the store is refused (:func:`check_public_query`),
        and so is a store that does not declare ``confines_datasets`` (:class:`StoreError`)."""
        if not self.store.confines_datasets:
            raise StoreError(
                f"{self.store!r} is not known to confine queries to a dataset, so a public query could "
                "probe the private graph; see confines_datasets in docs/store.md"
            )
        check_public_query(query)
        public = self.public_graphs
        return self.store.query(query, bindings=bindings, default_graph=public, named_graphs=public)


def graph_iri(node: NamedNode, kind: GraphKind) -> NamedNode:
    """``{node}/graphs/{kind}``; a trailing slash on the node IRI is not doubled."""
    return NamedNode(f"{node.value.rstrip('/')}/graphs/{kind.value}")


def check_public_query(query: str) -> None:
    """Refuse, with :class:`QueryError`, what a query over public graphs must not contain.

    * ``SERVICE`` makes the store fetch a URL of the query's choosing (pyoxigraph does, and so does a
      remote endpoint): the node would become an SSRF proxy.
    * ``FROM``/``FROM NAMED``: the protocol's dataset should override them, but Virtuoso 7.2 merges
      them with it, which let ``FROM <…/private>`` read private data in our interop test; the dataset
      of a public query is the public graphs, so these clauses have nothing legitimate to add.
    * Virtuoso's ``DEFINE input:…`` pragmas and its ``bif:``/``sql:`` built-ins (SQL procedures
      reachable from SPARQL) reset the dataset or leave RDF altogether.
    """
    words = keywords(query)
    refused = sorted(
        {"service", "from", "define"} & words
        | {word.split(":")[0] + ":" for word in words if word.startswith(("bif:", "sql:"))}
    )
    if refused:
        listed = ", ".join(word.upper() if word.isalpha() else word for word in refused)
        raise QueryError(f"not allowed in a query over a node's public graphs: {listed}")
