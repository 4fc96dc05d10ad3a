"""JSON-LD with a frozen document loader: known contexts from local copies, any other remote context refused.

A JSON-LD processor that dereferences ``@context`` URLs lets any sender make the host fetch arbitrary
URLs (SSRF) and makes parsing depend on third-party servers being up and honest (a changed remote
context silently changes what a document means). So the contexts the Fediverse actually uses ship
with the package (copied from the W3C ActivityStreams repository and from Fedify's preloaded set) and
nothing else is ever loaded.

Two processors share the same loader: ``pyld`` for expansion and compaction, and pyoxigraph's Rust
JSON-LD parser for the hot path (received activity -> RDF quads), which is an order of magnitude
faster; pyoxigraph has no loader hook, so known context URLs are replaced by their (cached) content
before parsing.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import pyoxigraph as ox
from pyld import jsonld

import ontology

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
]

AS2_CONTEXT_URL = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT_URL = "https://w3id.org/security/v1"
# The public URL of ontology/context.jsonld; the host also serves it at /contexts/spore.jsonld.
SPORE_CONTEXT_URL = "https://w3id.org/spore/context.jsonld"

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

_LOCAL_FILES = {
    AS2_CONTEXT_URL: "activitystreams.jsonld",
    SECURITY_CONTEXT_URL: "security-v1.jsonld",
    "https://w3id.org/security/data-integrity/v1": "security-data-integrity-v1.jsonld",
    "https://w3id.org/security/multikey/v1": "security-multikey-v1.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
}


class UnknownContext(ValueError):
    """A document names a remote context that is not among the frozen local copies."""


def _normalise_url(url: str) -> str:
    # Senders write the same context with and without a trailing slash, .jsonld or http scheme.
    normal = url.strip().rstrip("/")
    if normal.startswith("http://www.w3.org/ns/activitystreams"):
        normal = "https" + normal[len("http") :]
    return normal.removesuffix(".jsonld") if normal.startswith(AS2_CONTEXT_URL) else normal


@cache
def known_context(url: str) -> dict[str, Any]:
    """The ``{"@context": ...}`` document for a known context URL (parsed once per process)."""
    normal = _normalise_url(url)
    if normal == SPORE_CONTEXT_URL:
        return ontology.load_context()
    filename = _LOCAL_FILES.get(normal)
    if filename is None:
        raise UnknownContext(f"remote context {url!r} is not allowed (only frozen local copies are loaded)")
    text = resources.files("federation").joinpath("contexts", filename).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def frozen_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``pyld`` document loader that never touches the network."""
    return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(known_context(url))}


_PYLD_OPTIONS: dict[str, Any] = {"documentLoader": frozen_loader}


def expand(document: dict[str, Any]) -> list[dict[str, Any]]:
    """pyld expansion; an unknown remote context raises :class:`UnknownContext` (not pyld's wrapper)."""
    _inline_contexts(document)  # pyld wraps loader errors; check first so callers see the real reason
    return jsonld.expand(document, dict(_PYLD_OPTIONS))


def compact(document: dict[str, Any], context: Any) -> dict[str, Any]:
    _inline_contexts(document)
    return jsonld.compact(document, {"@context": context}, dict(_PYLD_OPTIONS))


def _inline(context: Any) -> Any:
    if isinstance(context, str):
        return known_context(context)["@context"]
    if isinstance(context, list):
        return [_inline(item) for item in context]
    return context  # an inline object (scoped contexts inside are rare; pyoxigraph refuses them if remote)


def _inline_contexts(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _inline(value) if key == "@context" else _inline_contexts(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_inline_contexts(item) for item in node]
    return node


def to_quads(document: dict[str, Any], graph: ox.NamedNode | None = None) -> list[ox.Quad]:
    """RDF quads of a JSON-LD document in ``graph``; raises :class:`UnknownContext` or ``SyntaxError``."""
    text = json.dumps(_inline_contexts(document))
    triples = ox.parse(text, format=ox.RdfFormat.JSON_LD, rename_blank_nodes=True)
    target = graph if graph is not None else ox.DefaultGraph()
    return [ox.Quad(quad.subject, quad.predicate, quad.object, target) for quad in triples]
