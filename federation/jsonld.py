"""JSON-LD with a frozen document loader: known contexts from local copies, any other remote context refused.

A JSON-LD processor that dereferences ``@context`` URLs lets any sender make the host fetch arbitrary
URLs (SSRF) and makes parsing depend on third-party servers being up and honest (a changed remote
context silently changes what a document means). So the contexts the Fediverse actually uses ship
with the package (copied from the W3C ActivityStreams repository and from Fedify's preloaded set) and
nothing else is ever loaded. The loader itself is ``ontology.jsonld`` (``models.privacy`` needs it
too, and must not import this layer); it is re-exported here.

Two processors share the same loader: ``pyld`` for expansion and compaction, and pyoxigraph's Rust
JSON-LD parser for the hot path (received activity -> RDF quads), which is an order of magnitude
faster; pyoxigraph has no loader hook, so known context URLs are replaced by their (cached) content
before parsing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import pyoxigraph as ox

from ontology.jsonld import (
    AS2_CONTEXT_URL,
    SECURITY_CONTEXT_URL,
    SPORE_CONTEXT_URL,
    UnknownContext,
    compact,
    expand,
    frozen_loader,
    inline_context,
    inline_contexts,
    known_context,
)

__all__ = [
    "AS2_CONTEXT_URL",
    "SECURITY_CONTEXT_URL",
    "SPORE_CONTEXT_URL",
    "ACTOR_CONTEXT",
    "OBJECT_CONTEXT",
    "UnknownContext",
    "frozen_loader",
    "known_context",
    "expand",
    "compact",
    "to_quads",
    "to_graph_quads",
]

# Terms Mastodon and Fedify read that the AS2 context document lacks.
AS2_EXTENSIONS: dict[str, Any] = {
    "Hashtag": "as:Hashtag",
    "sensitive": "as:sensitive",
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "toot": "http://joinmastodon.org/ns#",
    "discoverable": "toot:discoverable",
}
ACTOR_CONTEXT: list[Any] = [AS2_CONTEXT_URL, SECURITY_CONTEXT_URL, SPORE_CONTEXT_URL, AS2_EXTENSIONS]
OBJECT_CONTEXT: list[Any] = [AS2_CONTEXT_URL, SPORE_CONTEXT_URL, AS2_EXTENSIONS]


def to_quads(document: dict[str, Any], graph: ox.NamedNode | None = None) -> list[ox.Quad]:
    """RDF quads of a JSON-LD document in ``graph``; raises :class:`UnknownContext` or ``SyntaxError``."""
    text = json.dumps(inline_contexts(document))
    triples = ox.parse(text, format=ox.RdfFormat.JSON_LD, rename_blank_nodes=True)
    target = graph if graph is not None else ox.DefaultGraph()
    return [ox.Quad(quad.subject, quad.predicate, quad.object, target) for quad in triples]


def _strings(node: Any, found: set[str]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.add(item)


def _prune(context: Any, used: set[str]) -> Any:
    """The context restricted to terms the document can use, plus every prefix and keyword alias.

    pyoxigraph re-processes a context for every parse and the AS2 one defines ~200 terms, so parsing
    a small activity was dominated by its context. Only terms spelled somewhere in the document (as a
    key or as any string value: a superset of what JSON-LD can expand) can change the result, so
    dropping the others yields exactly the same quads.
    """
    if isinstance(context, list):
        return [_prune(item, used) for item in context]
    if not isinstance(context, dict):
        return context
    kept: dict[str, Any] = {}
    for term, definition in context.items():
        if term.startswith("@") or term in used:
            kept[term] = definition
        elif isinstance(definition, str) and (
            definition.startswith("@") or definition.endswith(("#", "/", ":"))
        ):
            kept[term] = definition  # a prefix or a keyword alias (``id``, ``type``)
    return kept


@lru_cache(maxsize=256)
def _context_terms(context_key: str) -> frozenset[str]:
    terms: set[str] = set()
    _strings(inline_context(json.loads(context_key)), terms)
    return frozenset(terms)


@lru_cache(maxsize=4096)
def _pruned_context(context_key: str, used: frozenset[str]) -> str:
    """The pruned, inlined context as JSON text, cached: most activities use the same few terms."""
    return json.dumps(_prune(inline_context(json.loads(context_key)), set(used)))


def _parse_grouped(context_key: str, wrappers: list[dict[str, Any]]) -> list[ox.Quad]:
    graph_text = json.dumps(inline_contexts(wrappers))
    if context_key == "null":
        text = f'{{"@graph": {graph_text}}}'
    else:
        used: set[str] = set()
        _strings(wrappers, used)
        context_text = _pruned_context(context_key, frozenset(used & _context_terms(context_key)))
        text = f'{{"@context": {context_text}, "@graph": {graph_text}}}'
    return list(ox.parse(text, format=ox.RdfFormat.JSON_LD, rename_blank_nodes=True))


def to_graph_quads(
    entries: Iterable[tuple[dict[str, Any], Sequence[str]]],
) -> tuple[list[ox.Quad], list[str]]:
    """Quads of many documents, each copied into its named graphs; one parse per distinct ``@context``.

    Processing a context (the AS2 one is 8 kB) costs more than the activity itself, so documents
    sharing a context are parsed together, each wrapped as a JSON-LD named graph
    (``{"@id": graph, "@graph": [document]}``). A group that fails is retried document by document so
    that one bad document costs only itself. Returns the quads and the errors of documents skipped.
    """
    groups: dict[str, tuple[Any, list[dict[str, Any]], list[tuple[dict[str, Any], Sequence[str]]]]] = {}
    for document, graphs in entries:
        context = document.get("@context")
        body = {key: value for key, value in document.items() if key != "@context"}
        key = json.dumps(context, sort_keys=True)
        group = groups.setdefault(key, (key, [], []))
        group[1].extend({"@id": graph, "@graph": [body]} for graph in graphs)
        group[2].append((document, graphs))
    quads: list[ox.Quad] = []
    errors: list[str] = []
    for context_key, wrappers, members in groups.values():
        try:
            quads.extend(_parse_grouped(context_key, wrappers))
        except (UnknownContext, SyntaxError, ValueError):
            for document, graphs in members:
                body = {key: value for key, value in document.items() if key != "@context"}
                try:
                    quads.extend(
                        _parse_grouped(context_key, [{"@id": graph, "@graph": [body]} for graph in graphs])
                    )
                except (UnknownContext, SyntaxError, ValueError) as error:
                    errors.append(f"{document.get('id')}: {error}")
    return quads, errors
