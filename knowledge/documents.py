"""Reading RDF documents that people hand to SPORE: a file path or an http(s) URL.

Parsing goes through pyoxigraph because its syntax errors carry line and column, which is what a
person needs to fix a blueprint; the triples are then handed to rdflib, which pyshacl and owlrl use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node

__all__ = ["RdfDocument", "UnreadableDocument", "load_document", "rdflib_graph"]

ACCEPT = "text/turtle, application/n-triples;q=0.9, application/ld+json;q=0.8, application/rdf+xml;q=0.5"
FETCH_TIMEOUT_S = 10.0
XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


class UnreadableDocument(Exception):
    """A document could not be read or parsed; ``str()`` is one line a person can act on."""


@dataclass(frozen=True)
class RdfDocument:
    source: str
    base_iri: str
    graph: Graph


def _format_for(name: str, media_type: str | None = None) -> ox.RdfFormat:
    if media_type:
        found = ox.RdfFormat.from_media_type(media_type.split(";")[0].strip())
        if found is not None:
            return found
    suffix = Path(name.split("?")[0]).suffix.lstrip(".").lower()
    found = ox.RdfFormat.from_extension(suffix) if suffix else None
    if found is None:
        if suffix in ("", "txt"):
            return ox.RdfFormat.TURTLE  # Turtle is the blueprint language: the sensible guess
        raise UnreadableDocument(f"{name}: unknown RDF format for extension '.{suffix}'")
    return found


def _term(term: ox.NamedNode | ox.BlankNode | ox.Literal, bnodes: dict[str, BNode]) -> Node:
    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        # Fresh rdflib blank nodes per document, so two documents never share a blank node by label.
        return bnodes.setdefault(term.value, BNode())
    if term.language:
        return Literal(term.value, lang=term.language)
    if term.datatype.value == XSD_STRING:
        # RDF 1.1 has no untyped literals, but rdflib tells "x" from "x"^^xsd:string: use its plain form.
        return Literal(term.value)
    return Literal(term.value, datatype=URIRef(term.datatype.value))


def rdflib_graph(triples: Iterable[ox.Triple] | Iterable[ox.Quad], graph: Graph | None = None) -> Graph:
    """Copy pyoxigraph triples (or the triple part of quads) into an rdflib graph.

    Written out rather than parsed with oxrdflib's plugin because that keeps ``^^xsd:string`` on
    plain strings, and rdflib (so pyshacl's ``sh:in``) tells ``"x"`` from ``"x"^^xsd:string``.
    """
    target = Graph() if graph is None else graph
    bnodes: dict[str, BNode] = {}
    for triple in triples:
        target.add(
            (
                _term(triple.subject, bnodes),  # type: ignore[arg-type]
                _term(triple.predicate, bnodes),
                _term(triple.object, bnodes),  # type: ignore[arg-type]
            )
        )
    return target


def parse_bytes(data: bytes, *, source: str, base_iri: str, rdf_format: ox.RdfFormat) -> Graph:
    try:
        parsed = list(ox.parse(data, format=rdf_format, base_iri=base_iri))
    except SyntaxError as error:
        line, column = error.lineno, error.offset
        where = f" at line {line}, column {column}" if line else ""
        detail = str(error.msg if hasattr(error, "msg") else error).split(": ", 1)[-1]
        raise UnreadableDocument(f"{source}: {rdf_format.name} syntax error{where}: {detail}") from error
    except ValueError as error:
        raise UnreadableDocument(f"{source}: cannot parse: {error}") from error
    return rdflib_graph(parsed)


def load_document(source: str) -> RdfDocument:
    """Read a path or URL into an rdflib graph, or raise :class:`UnreadableDocument` with one line."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(
                source, headers={"Accept": ACCEPT}, timeout=FETCH_TIMEOUT_S, follow_redirects=True
            )
        except httpx.HTTPError as error:
            raise UnreadableDocument(f"{source}: unreachable ({type(error).__name__}: {error})") from error
        if response.status_code >= 400:
            raise UnreadableDocument(f"{source}: HTTP {response.status_code} {response.reason_phrase}")
        rdf_format = _format_for(source, response.headers.get("content-type"))
        base = str(response.url)
        return RdfDocument(
            source, base, parse_bytes(response.content, source=source, base_iri=base, rdf_format=rdf_format)
        )
    path = Path(source)
    if not path.exists():
        raise UnreadableDocument(f"{source}: no such file")
    if path.is_dir():
        raise UnreadableDocument(f"{source}: is a directory, not an RDF file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableDocument(f"{source}: cannot read ({error.strerror})") from error
    base = path.resolve().as_uri()
    graph = parse_bytes(data, source=source, base_iri=base, rdf_format=_format_for(path.name))
    return RdfDocument(source, base, graph)
