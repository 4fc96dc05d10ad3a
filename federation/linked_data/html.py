"""The generic HTML view of any described resource: a properties table and the links around it.

The web page's richer views come first (:func:`federation.linked_data.resources.render_html` asks
``federation.web.render_resource``); this renderer is the fallback, so every IRI still opens in a
browser. Everything from the graph is escaped; nothing in it is interpreted as markup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from pyoxigraph import BlankNode, Literal, NamedNode, Triple

from federation.linked_data.serialise import RDF_PREFIXES
from ontology import CONTEXT_URL

__all__ = ["render_resource_page", "local_href", "short_name", "page"]

W3ID_BASE = CONTEXT_URL.rsplit("/", 1)[0] + "/"  # https://w3id.org/spore/
_LABELS = (
    "http://www.w3.org/2000/01/rdf-schema#label",
    "https://schema.org/name",
    "https://www.w3.org/ns/activitystreams#name",
    "https://www.w3.org/ns/activitystreams#preferredUsername",
    "http://purl.org/dc/terms/title",
    "http://www.w3.org/2004/02/skos/core#prefLabel",
)
_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{width:16rem;font-weight:600}code{font-size:.9em}
.iri{color:#777;word-break:break-all}nav a{margin-right:1rem}"""


def local_href(iri: str, base_url: str) -> str:
    """Where a link should point: SPORE's w3id.org IRIs resolve on this host, as w3id.org would redirect."""
    if iri.startswith(W3ID_BASE):
        return f"{base_url}/{iri[len(W3ID_BASE) :]}"
    return iri


def short_name(iri: str) -> str:
    """``spore:FungusNode`` for a term in a known namespace, the IRI otherwise."""
    for prefix, namespace in sorted(RDF_PREFIXES.items(), key=lambda item: -len(item[1])):
        if iri.startswith(namespace) and len(iri) > len(namespace):
            return f"{prefix}:{iri[len(namespace) :]}"
    return iri


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` (already escaped markup)."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style>'
        f"</head><body>{body}</body></html>\n"
    )


def _term(term: object, base_url: str, nested: dict[BlankNode, list[Triple]], depth: int) -> str:
    if isinstance(term, NamedNode):
        return f'<a href="{escape(local_href(term.value, base_url))}">{escape(short_name(term.value))}</a>'
    if isinstance(term, Literal):
        suffix = f" <small>@{escape(term.language)}</small>" if term.language else ""
        return f"{escape(term.value)}{suffix}"
    if isinstance(term, BlankNode) and term in nested and depth < 3:
        return _table(nested[term], base_url, nested, depth + 1)
    return escape(str(term))


def _table(
    triples: Sequence[Triple], base_url: str, nested: dict[BlankNode, list[Triple]], depth: int
) -> str:
    rows = defaultdict(list)
    for triple in triples:
        rows[triple.predicate.value].append(_term(triple.object, base_url, nested, depth))
    body = "".join(
        f'<tr><th><a href="{escape(local_href(p, base_url))}">{escape(short_name(p))}</a></th>'
        f"<td>{'<br>'.join(sorted(values))}</td></tr>"
        for p, values in sorted(rows.items(), key=lambda item: short_name(item[0]))
    )
    return f"<table>{body}</table>"


def label_of(iri: str, triples: Sequence[Triple]) -> str:
    """A human name for ``iri`` from its description, else the last segment of the IRI."""
    subject = NamedNode(iri)
    for predicate in _LABELS:
        for triple in triples:
            named = triple.subject == subject and triple.predicate.value == predicate
            if named and isinstance(triple.object, Literal | NamedNode):
                return triple.object.value
    return iri.rstrip("/").rsplit("/", 1)[-1] or iri


def render_resource_page(iri: str, triples: Sequence[Triple], *, base_url: str) -> str:
    """The resource's page: what it says (with nested blank nodes), what points at it, other formats."""
    subject = NamedNode(iri)
    own = [t for t in triples if t.subject == subject]
    nested: dict[BlankNode, list[Triple]] = defaultdict(list)
    others: dict[str, list[Triple]] = defaultdict(list)
    for triple in triples:
        if isinstance(triple.subject, BlankNode):
            nested[triple.subject].append(triple)
        elif isinstance(triple.subject, NamedNode) and triple.subject != subject:
            others[triple.subject.value].append(triple)
    pointing = sorted(
        {t.subject.value for t in triples if t.object == subject and isinstance(t.subject, NamedNode)} - {iri}
    )
    title = label_of(iri, triples)
    formats = " ".join(
        f'<a href="{escape(local_href(iri, base_url))}?format={name}" rel="alternate" '
        f'type="{media}">{label}</a>'
        for name, media, label in (
            ("turtle", "text/turtle", "Turtle"),
            ("jsonld", "application/ld+json", "JSON-LD"),
            ("ntriples", "application/n-triples", "N-Triples"),
        )
    )
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="iri">{escape(iri)}</p>',
        f"<nav>{formats}</nav>",
        "<h2>Statements</h2>",
        _table(own, base_url, nested, 0) if own else "<p>No statements about this resource.</p>",
    ]
    fragments = [name for name in sorted(others) if name.startswith(iri + "#")]
    for name in fragments:
        parts += [f'<h3 id="{escape(name.split("#", 1)[1])}">{escape(label_of(name, others[name]))}</h3>']
        parts.append(_table(others[name], base_url, nested, 0))
    linked = [name for name in pointing if not name.startswith(iri + "#")]
    if linked:
        items = "".join(
            f'<li><a href="{escape(local_href(name, base_url))}">{escape(short_name(name))}</a></li>'
            for name in linked
        )
        parts += ["<h2>Pointing here</h2>", f"<ul>{items}</ul>"]
    return page(title, "".join(parts))
