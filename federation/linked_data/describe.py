"""What a dereferenced IRI says: its statements in the host's public graphs, as RDF triples.

A resource is described the way linked-data servers usually do (a symmetric concise bounded
description, capped): its own statements with the blank nodes and ``#fragment`` resources they point
to, plus the statements pointing at it, so a crawler can walk from a group to its members and from a
snapshot to its evaluations. Only public graphs are read, through the store's dataset restriction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyoxigraph import Literal, NamedNode, Quad, Triple

import queries
from knowledge.graphs import PUBLIC_KINDS, graph_iri
from knowledge.store import KnowledgeStore

__all__ = ["public_graphs", "describe", "describe_graph", "as_triples", "GRAPH_DUMP_LIMIT"]


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


GRAPH_DUMP_LIMIT = 20_000
"""A public graph up to this many triples dereferences to its contents; a larger one (a catalogue of a
million triples) to its description only, which names the SPARQL endpoint to query it with."""
_XSD_INTEGER = NamedNode("http://www.w3.org/2001/XMLSchema#integer")
_RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_VOID = "http://rdfs.org/ns/void#"


def describe_graph(store: KnowledgeStore, graph: NamedNode, endpoint: str) -> list[Triple]:
    """A node's public graph as linked data: what it is (VoID) and, when small enough, what it holds.

    The graph names that a SPARQL Service Description lists then lead somewhere for a crawler.
    """
    size = store.count(graph)
    triples = [
        Triple(graph, _RDF_TYPE, NamedNode(_VOID + "Dataset")),
        Triple(graph, _RDF_TYPE, NamedNode("http://www.w3.org/ns/sparql-service-description#Graph")),
        Triple(graph, NamedNode(_VOID + "triples"), Literal(str(size), datatype=_XSD_INTEGER)),
        Triple(graph, NamedNode(_VOID + "sparqlEndpoint"), NamedNode(endpoint)),
    ]
    if 0 < size <= GRAPH_DUMP_LIMIT:
        contents = store.query("CONSTRUCT WHERE { ?s ?p ?o }", default_graph=[graph], named_graphs=[graph])
        triples += list(contents)  # type: ignore[arg-type]
    return triples


def as_triples(quads: Iterable[Quad | Triple]) -> list[Triple]:
    """Quads with their graph names dropped (a representation is one graph)."""
    return [q.triple if isinstance(q, Quad) else q for q in quads]
