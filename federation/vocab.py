"""ActivityStreams 2.0 types a fungus node sends and accepts, and small pure helpers to read documents.

Activities travel as compacted JSON-LD in the AS2 context, so handlers read plain keys; these helpers
keep the many shapes a key may take (a string, an object with ``id``, a list of either) in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ActivityType",
    "ActorType",
    "PUBLIC",
    "AS_NS",
    "ids_of",
    "id_of",
    "types_of",
    "origin_of",
    "same_origin",
    "json_depth",
    "with_as2_type",
]

AS_NS = "https://www.w3.org/ns/activitystreams#"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})


class ActivityType(enum.StrEnum):
    """The activities a node handles (all in the AS2 vocabulary)."""

    FOLLOW = "Follow"
    ACCEPT = "Accept"
    REJECT = "Reject"
    UNDO = "Undo"
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"
    ANNOUNCE = "Announce"
    BLOCK = "Block"
    JOIN = "Join"
    LEAVE = "Leave"
    INVITE = "Invite"
    LIKE = "Like"


class ActorType(enum.StrEnum):
    SERVICE = "Service"  # a fungus node: Mastodon shows Service actors as bots
    APPLICATION = "Application"  # the host's instance actor
    GROUP = "Group"  # a learning group
    PERSON = "Person"
    ORGANIZATION = "Organization"


ACTOR_TYPES = frozenset(t.value for t in ActorType)
# AS2 core object types (Activity Vocabulary section 3.3) plus the base class.
AS2_OBJECT_TYPES = frozenset(
    {"Object", "Article", "Audio", "Document", "Event", "Image", "Note", "Page", "Place", "Profile"}
    | {"Relationship", "Tombstone", "Video", "Collection", "OrderedCollection"}
)


def with_as2_type(kind: str | list[str]) -> list[str]:
    """Types for a published object, with an AS2 class first when it has none.

    Fedify (and other typed parsers) refuse an object whose types are all outside ActivityStreams
    ("Invalid type: ...#Decision"); a SPORE Decision is also an ``as:Object``, so it says so.
    """
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return kinds if any(k in AS2_OBJECT_TYPES for k in kinds) else ["Object", *kinds]


def ids_of(value: Any) -> Iterator[str]:
    """Every IRI in a property value: a string, an object with ``id``/``href``, or a list of those."""
    if isinstance(value, str):
        yield PUBLIC if value in _PUBLIC_ALIASES else value
    elif isinstance(value, dict):
        identifier = value.get("id", value.get("href"))
        if isinstance(identifier, str):
            yield identifier
    elif isinstance(value, list):
        for item in value:
            yield from ids_of(item)


def id_of(value: Any) -> str | None:
    return next(ids_of(value), None)


def types_of(document: Any) -> frozenset[str]:
    if not isinstance(document, dict):
        return frozenset()
    kind = document.get("type")
    if isinstance(kind, str):
        return frozenset([kind])
    return frozenset(k for k in kind if isinstance(k, str)) if isinstance(kind, list) else frozenset()


def origin_of(iri: object) -> str:
    """``scheme://host[:port]`` of an IRI, lower-cased: the unit of trust in ActivityPub; "" if invalid."""
    return _origin(iri) if isinstance(iri, str) else ""


@lru_cache(maxsize=65_536)  # the same actor and key IRIs recur in every activity of a peer
def _origin(iri: str) -> str:
    try:
        parts = urlsplit(iri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except (ValueError, TypeError, AttributeError):
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def same_origin(first: str, second: str) -> bool:
    """Both IRIs parse and share scheme, host and port (an unparseable IRI matches nothing)."""
    origin = origin_of(second)  # actors and keys recur: cached
    if origin != "" and first.startswith(origin) and first[len(origin) : len(origin) + 1] in ("", "/"):
        # Fast path for fresh ids (activities, objects): a URL that is the origin followed by "/" or
        # nothing splits to that same scheme and host[:port]; anything else takes the full parse.
        return True
    return origin != "" and origin == origin_of(first)


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk is itself a stack-exhaustion bug)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node)
    return deepest
