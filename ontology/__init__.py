"""The SPORE ontology, its JSON-LD context, and the term constants generated from it.

The files ship inside the installed package, so an installed ``spore`` finds them without the source
tree.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from rdflib import Graph

from ontology.terms import SPORE

__all__ = [
    "CONTEXT_PATH",
    "CONTEXT_URL",
    "NAMESPACE",
    "ONTOLOGY_IRI",
    "ONTOLOGY_PATH",
    "PREFIXES",
    "SPORE",
    "load_context",
    "load_ontology",
]

HERE = Path(__file__).parent
ONTOLOGY_PATH = HERE / "spore.ttl"
CONTEXT_PATH = HERE / "context.jsonld"
NAMESPACE = "https://w3id.org/spore/ns#"
ONTOLOGY_IRI = "https://w3id.org/spore/ns"
# Where documents reference the JSON-LD context; SPORE's loaders serve it from CONTEXT_PATH, and a
# deployment must make the URL resolve (w3id.org redirect) for software such as Fedify that loads it.
CONTEXT_URL = "https://w3id.org/spore/context.jsonld"

# Prefixes used in SPORE data; Turtle output and the CLI bind these so that people read short names.
PREFIXES: dict[str, str] = {
    "spore": NAMESPACE,
    "as": "https://www.w3.org/ns/activitystreams#",
    "dcat": "http://www.w3.org/ns/dcat#",
    "dcterms": "http://purl.org/dc/terms/",
    "mls": "http://www.w3.org/ns/mls#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "prov": "http://www.w3.org/ns/prov#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "schema": "https://schema.org/",
    "sh": "http://www.w3.org/ns/shacl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "void": "http://rdfs.org/ns/void#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


@cache
def load_ontology() -> Graph:
    """The ontology as an rdflib graph, parsed once per process (callers must not mutate it)."""
    graph = Graph()
    graph.parse(ONTOLOGY_PATH, format="turtle")
    return graph


@cache
def _context_text() -> str:
    return CONTEXT_PATH.read_text(encoding="utf-8")


def load_context() -> dict[str, Any]:
    """A fresh copy of the SPORE JSON-LD context document (``{"@context": {...}}``)."""
    document: dict[str, Any] = json.loads(_context_text())
    return document
