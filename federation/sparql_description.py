"""The SPARQL 1.1 Service Description an endpoint answers to a plain GET, with its dataset in VoID.

Clients and crawlers read it to learn what the endpoint speaks (query, and update when a token is
configured), which formats it returns and which named graphs make its dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyoxigraph import BlankNode, Literal, NamedNode, RdfFormat, Triple
from pyoxigraph import serialize as serialize_rdf

__all__ = ["service_description", "description_document"]

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


def service_description(
    url: str, title: str, public_graphs: Sequence[NamedNode], *, update: bool
) -> list[Triple]:
    """SPARQL 1.1 Service Description of the endpoint at ``url``, its dataset also described in VoID."""
    endpoint = NamedNode(url)
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
        Triple(dataset, DCTERMS_TITLE, Literal(title)),
        Triple(dataset, NamedNode(SD + "defaultGraph"), default_graph),
        Triple(default_graph, RDF_TYPE, sd["Graph"]),
    ]
    if update:
        triples.append(
            Triple(endpoint, NamedNode(SD + "supportedLanguage"), NamedNode(SD + "SPARQL11Update"))
        )
    for name in _FORMAT_IRIS.values():
        triples.append(Triple(endpoint, NamedNode(SD + "resultFormat"), NamedNode(FORMATS + name)))
    for graph in public_graphs:
        entry = BlankNode()
        triples += [
            Triple(dataset, NamedNode(SD + "namedGraph"), entry),
            Triple(entry, RDF_TYPE, sd["NamedGraph"]),
            Triple(entry, NamedNode(SD + "name"), graph),
        ]
    return triples


def description_document(triples: list[Triple], format: RdfFormat) -> bytes:
    """The description in ``format``, with readable prefixes where the syntax has them."""
    prefixes = {"sd": SD, "void": VOID, "formats": FORMATS, "dcterms": "http://purl.org/dc/terms/"}
    return (
        serialize_rdf(triples, format=format, prefixes=prefixes if format == RdfFormat.TURTLE else None)
        or b""
    )
