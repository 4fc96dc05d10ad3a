"""The host's VoID description (W3C Interest Group Note "Describing Linked Datasets with VoID").

One ``void:Dataset`` for the host, with one subset per fungus node: each names its SPARQL endpoint,
its root resource (the node's actor IRI), the URI space its IRIs live in, the vocabularies it uses and
how many triples its public graphs hold, so a crawler or a federated query engine can plan before it
asks anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyoxigraph import Literal, NamedNode, Triple

import ontology

__all__ = ["NodeDataset", "void_description", "VOID"]

VOID = "http://rdfs.org/ns/void#"
DCTERMS = "http://purl.org/dc/terms/"
FORMATS = "http://www.w3.org/ns/formats/"
XSD_INTEGER = NamedNode("http://www.w3.org/2001/XMLSchema#integer")
RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
VOCABULARIES = (
    ontology.NAMESPACE,
    "https://www.w3.org/ns/activitystreams#",
    "http://www.w3.org/ns/prov#",
    "https://schema.org/",
    "http://www.w3.org/ns/mls#",
    "http://www.w3.org/ns/dcat#",
    "http://www.w3.org/2004/02/skos/core#",
)
_SERVED_FORMATS = ("Turtle", "JSON-LD", "N-Triples")


@dataclass(frozen=True)
class NodeDataset:
    """One node's public data: its actor IRI, endpoint and public graphs with their sizes."""

    name: str
    actor: str
    sparql_endpoint: str
    graph_sizes: Mapping[str, int]


def _v(name: str) -> NamedNode:
    return NamedNode(VOID + name)


def void_description(
    document: str,
    *,
    base_url: str,
    title: str,
    sparql_endpoint: str,
    nodes: Sequence[NodeDataset],
    groups: Sequence[str],
) -> list[Triple]:
    """The VoID triples; ``document`` is the IRI the description is served at (datasets hang off it)."""
    host = NamedNode(f"{document}#host")
    triples = [
        Triple(host, RDF_TYPE, _v("Dataset")),
        Triple(host, NamedNode(DCTERMS + "title"), Literal(title)),
        Triple(host, _v("sparqlEndpoint"), NamedNode(sparql_endpoint)),
        Triple(host, _v("uriSpace"), Literal(f"{base_url}/")),
        Triple(
            host,
            _v("triples"),
            Literal(str(sum(sum(n.graph_sizes.values()) for n in nodes)), datatype=XSD_INTEGER),
        ),
    ]
    triples += [Triple(host, _v("vocabulary"), NamedNode(v)) for v in VOCABULARIES]
    triples += [Triple(host, _v("feature"), NamedNode(FORMATS + f)) for f in _SERVED_FORMATS]
    triples += [Triple(host, _v("rootResource"), NamedNode(group)) for group in groups]
    for node in nodes:
        subset = NamedNode(f"{document}#node-{node.name}")
        triples += [
            Triple(host, _v("subset"), subset),
            Triple(subset, RDF_TYPE, _v("Dataset")),
            Triple(
                subset, NamedNode(DCTERMS + "title"), Literal(f"Public graphs of the fungus node {node.name}")
            ),
            Triple(subset, _v("rootResource"), NamedNode(node.actor)),
            Triple(host, _v("rootResource"), NamedNode(node.actor)),
            Triple(subset, _v("sparqlEndpoint"), NamedNode(node.sparql_endpoint)),
            Triple(subset, _v("uriSpace"), Literal(f"{node.actor}/")),
            Triple(
                subset,
                _v("triples"),
                Literal(str(sum(node.graph_sizes.values())), datatype=XSD_INTEGER),
            ),
        ]
        for graph, size in sorted(node.graph_sizes.items()):
            part = NamedNode(f"{document}#graph-{node.name}-{graph.rsplit('/', 1)[-1]}")
            triples += [
                Triple(subset, _v("subset"), part),
                Triple(part, RDF_TYPE, _v("Dataset")),
                Triple(
                    part, NamedNode("http://www.w3.org/ns/sparql-service-description#name"), NamedNode(graph)
                ),
                Triple(part, _v("triples"), Literal(str(size), datatype=XSD_INTEGER)),
            ]
    return triples
