"""Writing a description in the negotiated RDF syntax (pure: triples in, bytes out)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pyoxigraph import Literal, NamedNode, RdfFormat, Triple, serialize

from federation.jsonld import SPORE_CONTEXT_URL, compact
from federation.linked_data.negotiation import Representation
from ontology import PREFIXES

__all__ = ["serialise", "used_prefixes", "RDF_PREFIXES"]

RDF_PREFIXES: dict[str, str] = {
    **PREFIXES,
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "void": "http://rdfs.org/ns/void#",
    "sd": "http://www.w3.org/ns/sparql-service-description#",
    "dcterms": "http://purl.org/dc/terms/",
    "owl": "http://www.w3.org/2002/07/owl#",
}


def used_prefixes(triples: Sequence[Triple]) -> dict[str, str]:
    """The prefixes whose namespace some IRI in ``triples`` starts with (a header of only those)."""
    iris = {
        term.value
        for triple in triples
        for term in (triple.subject, triple.predicate, triple.object)
        if isinstance(term, NamedNode)
    }
    iris |= {t.object.datatype.value for t in triples if isinstance(t.object, Literal)}
    return {p: ns for p, ns in RDF_PREFIXES.items() if any(iri.startswith(ns) for iri in iris)}


def serialise(triples: Sequence[Triple], representation: Representation) -> bytes:
    """``triples`` as Turtle (with SPORE's prefixes), N-Triples, or JSON-LD compacted with SPORE's context.

    JSON-LD is compacted because pyoxigraph writes expanded JSON-LD, and the short names of the SPORE
    context are what every other SPORE JSON document uses; the context is resolved locally.
    """
    if representation is Representation.TURTLE:
        return serialize(triples, format=RdfFormat.TURTLE, prefixes=used_prefixes(triples)) or b""
    if representation is Representation.N_TRIPLES:
        return serialize(triples, format=RdfFormat.N_TRIPLES) or b""
    if representation in (Representation.JSON_LD, Representation.ACTIVITY_JSON):
        expanded = json.loads(serialize(triples, format=RdfFormat.JSON_LD) or b"[]")
        return json.dumps(compact({"@graph": expanded}, SPORE_CONTEXT_URL), ensure_ascii=False).encode()
    raise ValueError(f"{representation.value} is not an RDF syntax")
