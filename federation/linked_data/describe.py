"""What a dereferenced IRI says: its statements in the host's public graphs, as RDF triples.

A resource is described the way linked-data servers usually do (a symmetric concise bounded
description, capped): its own statements with the blank nodes and ``#fragment`` resources they point
to, plus the statements pointing at it, so a crawler can walk from a group to its members and from a
snapshot to its evaluations. Only public graphs are read, through the store's dataset restriction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyoxigraph import NamedNode, Quad, Triple

import queries
from knowledge.graphs import PUBLIC_KINDS, graph_iri
from knowledge.store import KnowledgeStore

__all__ = ["public_graphs", "describe", "as_triples"]


def public_graphs(node_ids: Iterable[str]) -> list[NamedNode]:
    """The public graphs of the given nodes: the dataset every description is read from."""
    return [graph_iri(NamedNode(node), kind) for node in node_ids for kind in PUBLIC_KINDS]


def describe(store: KnowledgeStore, iri: str, graphs: Sequence[NamedNode]) -> list[Triple]:
    """The description of ``iri`` from ``graphs`` (empty when the host knows nothing about it)."""
    if not graphs or not store.confines_datasets:
        return []
    resource = NamedNode(iri)
    found: dict[Triple, None] = {}
    for name in ("resource-description", "resource-backlinks"):
        result = store.query(
            queries.load(name),
            bindings={"resource": resource},
            default_graph=list(graphs),
            named_graphs=list(graphs),
        )
        found.update(dict.fromkeys(result))  # type: ignore[arg-type]
    return list(found)


def as_triples(quads: Iterable[Quad | Triple]) -> list[Triple]:
    """Quads with their graph names dropped (a representation is one graph)."""
    return [q.triple if isinstance(q, Quad) else q for q in quads]
