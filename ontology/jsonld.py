"""JSON-LD with a frozen document loader: known contexts from local copies, any other remote context refused.

A JSON-LD processor that dereferences ``@context`` URLs lets any sender make the host fetch arbitrary
URLs (SSRF) and makes parsing depend on third-party servers being up and honest (a changed remote
context silently changes what a document means). So the contexts the Fediverse actually uses ship
with the package (``ontology/contexts``: copied from the W3C ActivityStreams repository and from
Fedify's preloaded set) and nothing else is ever loaded.

It lives beside the ontology, the layer everything else may import, because both the federation
layer (parsing received activities) and ``models.privacy`` (expanding outgoing JSON-LD before it
looks for listener IRIs) need it, and ``models`` must not import ``federation``.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from pyld import jsonld

import ontology

__all__ = [
    "AS2_CONTEXT_URL",
    "SECURITY_CONTEXT_URL",
    "SPORE_CONTEXT_URL",
    "UnknownContext",
    "compact",
    "expand",
    "frozen_loader",
    "inline_contexts",
    "inline_context",
    "known_context",
]

AS2_CONTEXT_URL = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT_URL = "https://w3id.org/security/v1"
# The public URL of ontology/context.jsonld; the host also serves it at /contexts/spore.jsonld.
SPORE_CONTEXT_URL = ontology.CONTEXT_URL

_LOCAL_FILES = {
    AS2_CONTEXT_URL: "activitystreams.jsonld",
    SECURITY_CONTEXT_URL: "security-v1.jsonld",
    "https://w3id.org/security/data-integrity/v1": "security-data-integrity-v1.jsonld",
    "https://w3id.org/security/data-integrity/v2": "security-data-integrity-v2.jsonld",
    "https://w3id.org/security/multikey/v1": "security-multikey-v1.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
    "https://w3id.org/identity/v1": "identity-v1.jsonld",
    "https://purl.archive.org/socialweb/webfinger": "webfinger.jsonld",
    "https://gotosocial.org/ns": "gotosocial.jsonld",
    "https://w3id.org/fep/5711": "fep-5711.jsonld",
    "https://w3id.org/fep/7aa9": "fep-7aa9.jsonld",
    "https://w3id.org/fep/ef61": "fep-ef61.jsonld",
    "https://join-lemmy.org/context.json": "join-lemmy.jsonld",
    "http://joinmastodon.org/ns": "joinmastodon.jsonld",
    "https://purl.archive.org/miscellany": "miscellany.jsonld",
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
    text = resources.files("ontology").joinpath("contexts", filename).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def frozen_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``pyld`` document loader that never touches the network."""
    return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(known_context(url))}


_PYLD_OPTIONS: dict[str, Any] = {"documentLoader": frozen_loader}


def expand(document: dict[str, Any]) -> list[dict[str, Any]]:
    """pyld expansion; an unknown remote context raises :class:`UnknownContext` (not pyld's wrapper)."""
    inline_contexts(document)  # pyld wraps loader errors; check first so callers see the real reason
    return jsonld.expand(document, dict(_PYLD_OPTIONS))


def compact(document: dict[str, Any], context: Any) -> dict[str, Any]:
    inline_contexts(document)
    return jsonld.compact(document, {"@context": context}, dict(_PYLD_OPTIONS))


def inline_context(context: Any) -> Any:
    if isinstance(context, str):
        return known_context(context)["@context"]
    if isinstance(context, list):
        return [inline_context(item) for item in context]
    return context  # an inline object (scoped contexts inside are rare; pyoxigraph refuses them if remote)


def inline_contexts(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: inline_context(value) if key == "@context" else inline_contexts(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [inline_contexts(item) for item in node]
    return node
