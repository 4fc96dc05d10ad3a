"""The SPORE ontology as a host serves it at its namespace path: HTML documentation, Turtle, JSON-LD.

``https://w3id.org/spore/ns#FungusNode`` lands on the ``#FungusNode`` anchor of the HTML page, as a
hash namespace should (Best Practice Recipes for Publishing RDF Vocabularies, recipe 3). The page is
generated from ``ontology/spore.ttl`` itself, so it can never describe terms the Turtle lacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from html import escape

from pyoxigraph import RdfFormat, Triple, parse
from rdflib import OWL, RDF, RDFS, Graph, URIRef
from rdflib.namespace import DCTERMS

import ontology
from federation.linked_data.html import local_href, page, short_name

__all__ = ["ontology_triples", "ontology_turtle", "ontology_html"]

_SECTIONS = (
    ("Classes", (OWL.Class,)),
    ("Object properties", (OWL.ObjectProperty,)),
    ("Datatype properties", (OWL.DatatypeProperty, OWL.AnnotationProperty, RDF.Property)),
    ("Individuals", (OWL.NamedIndividual,)),
)


@cache
def ontology_turtle() -> bytes:
    return ontology.ONTOLOGY_PATH.read_bytes()


@cache
def ontology_triples() -> tuple[Triple, ...]:
    return tuple(parse(ontology_turtle(), format=RdfFormat.TURTLE, base_iri=ontology.ONTOLOGY_IRI))


def _links(graph: Graph, subject: URIRef, predicate: URIRef, base_url: str) -> str:
    values = sorted(str(o) for o in graph.objects(subject, predicate) if isinstance(o, URIRef))
    return ", ".join(
        f'<a href="{escape(local_href(v, base_url))}">{escape(short_name(v))}</a>' for v in values
    )


def _entry(graph: Graph, term: URIRef, base_url: str) -> str:
    name = str(term)[len(ontology.NAMESPACE) :]
    rows = [
        ("IRI", f"<code>{escape(str(term))}</code>"),
        ("definition", escape(str(graph.value(term, RDFS.comment) or ""))),
    ]
    for label, predicate in (
        ("subclass of", RDFS.subClassOf),
        ("subproperty of", RDFS.subPropertyOf),
        ("domain", RDFS.domain),
        ("range", RDFS.range),
        ("type", RDF.type),
    ):
        links = _links(graph, term, predicate, base_url)
        if links:
            rows.append((label, links))
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    title = escape(str(graph.value(term, RDFS.label) or name))
    heading = f"<h3>{title} <code>spore:{escape(name)}</code></h3>"
    return f'<section id="{escape(name)}">{heading}<table>{table}</table></section>'


def _terms(graph: Graph, types: Iterable[URIRef], seen: set[URIRef]) -> list[URIRef]:
    found = {
        s
        for t in types
        for s in graph.subjects(RDF.type, t)
        if isinstance(s, URIRef) and str(s).startswith(ontology.NAMESPACE) and s not in seen
    }
    seen |= found
    return sorted(found, key=str)


@cache
def ontology_html(base_url: str) -> str:
    """The documentation page: the ontology's header, then one anchored entry per term."""
    graph = ontology.load_ontology()
    root = URIRef(ontology.ONTOLOGY_IRI)
    title = str(graph.value(root, DCTERMS.title) or "SPORE ontology")
    version = str(graph.value(root, OWL.versionInfo))
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="iri">{escape(ontology.ONTOLOGY_IRI)} (prefix <code>spore:</code>, namespace '
        f"<code>{escape(ontology.NAMESPACE)}</code>), version {escape(version)}</p>",
        '<nav><a href="?format=turtle" rel="alternate" type="text/turtle">Turtle</a>'
        '<a href="?format=jsonld" rel="alternate" type="application/ld+json">JSON-LD</a>'
        f'<a href="{escape(base_url)}/context.jsonld">JSON-LD context</a></nav>',
        f"<p>{escape(str(graph.value(root, DCTERMS.description) or ''))}</p>",
    ]
    seen: set[URIRef] = set()
    for heading, types in _SECTIONS:
        terms = _terms(graph, types, seen)
        if not terms:
            continue
        index = ", ".join(
            f'<a href="#{escape(str(t)[len(ontology.NAMESPACE) :])}">{escape(short_name(str(t)))}</a>'
            for t in terms
        )
        parts += [f"<h2>{heading}</h2>", f"<p>{index}</p>"]
        parts += [_entry(graph, term, base_url) for term in terms]
    return page(title, "".join(parts))
