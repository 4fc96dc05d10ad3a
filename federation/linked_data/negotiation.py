"""Content negotiation for dereferenced IRIs: which representation a request gets, as pure functions.

The media types are the W3C's for each syntax (RDF 1.1 Turtle section 7, N-Triples section 5, JSON-LD
1.1 appendix C) and ActivityPub's (section 3.2). Quality values are read as RFC 9110 section 12.5.1
says: the most specific matching range gives an offer its quality, and ties go to the server's order,
so ``*/*`` or no ``Accept`` gets the first offer.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Representation",
    "ACTIVITY_OFFERS",
    "RESOURCE_OFFERS",
    "MEDIA_TYPES",
    "choose",
    "not_acceptable_message",
]


class Representation(StrEnum):
    """The forms one resource can take; the value is the media type sent in Content-Type."""

    ACTIVITY_JSON = "application/activity+json"
    JSON_LD = "application/ld+json"
    TURTLE = "text/turtle"
    N_TRIPLES = "application/n-triples"
    HTML = "text/html"


# Accept ranges that select a representation; aliases are what older clients send (``text/plain``
# was N-Triples' media type before RDF 1.1, ``application/json`` is what fetch() users type).
MEDIA_TYPES: dict[str, Representation] = {
    "application/activity+json": Representation.ACTIVITY_JSON,
    "application/ld+json": Representation.JSON_LD,
    "application/json": Representation.JSON_LD,
    "text/turtle": Representation.TURTLE,
    "application/x-turtle": Representation.TURTLE,
    "application/n-triples": Representation.N_TRIPLES,
    "text/plain": Representation.N_TRIPLES,
    "text/html": Representation.HTML,
    "application/xhtml+xml": Representation.HTML,
}

# An ActivityPub object keeps AS2 JSON first: Mastodon and curl (``*/*``) must get what they got before
# linked data existed, and the AS2 document is itself JSON-LD.
ACTIVITY_OFFERS: tuple[Representation, ...] = (
    Representation.ACTIVITY_JSON,
    Representation.JSON_LD,
    Representation.TURTLE,
    Representation.N_TRIPLES,
    Representation.HTML,
)
# Other resources: Turtle first, for RDF tools that send ``*/*``; browsers list text/html explicitly.
RESOURCE_OFFERS: tuple[Representation, ...] = (
    Representation.TURTLE,
    Representation.JSON_LD,
    Representation.N_TRIPLES,
    Representation.HTML,
)


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def _quality(representation: Representation, ranges: list[tuple[str, float]]) -> float:
    """The quality the client gives a representation (RFC 9110 section 12.5.1).

    Its own media type takes the quality of the most specific matching range; an alias counts only
    where the client names it, so ``text/turtle;q=0, */*`` does not sneak Turtle back in through
    ``application/x-turtle`` matching the wildcard.
    """
    media = representation.value
    for specificity in (media, media.split("/")[0] + "/*", "*/*"):
        matching = [q for name, q in ranges if name == specificity]
        if matching:
            quality = max(matching)
            break
    else:
        quality = 0.0
    aliases = {name for name, r in MEDIA_TYPES.items() if r is representation and name != media}
    named = [q for name, q in ranges if name in aliases]
    return max([quality, *named]) if quality > 0 or named else quality


def choose(accept: str | None, *, activity: bool) -> Representation | None:
    """The representation to send, or ``None`` when nothing offered is acceptable (406).

    ``activity`` says the resource is an ActivityPub object, which adds AS2 JSON to the offers. Ties
    go to the order of the offers; no ``Accept`` gets the first.
    """
    offers = ACTIVITY_OFFERS if activity else RESOURCE_OFFERS
    if not accept or not accept.strip():
        return offers[0]
    ranges = _ranges(accept)
    best, best_quality = None, 0.0
    for offer in offers:
        quality = _quality(offer, ranges)
        if quality > best_quality:
            best, best_quality = offer, quality
    return best


def not_acceptable_message(*, activity: bool) -> str:
    """The one line of a 406: what this resource is served as, so the client can ask again."""
    offers = ACTIVITY_OFFERS if activity else RESOURCE_OFFERS
    return "406 Not Acceptable: this resource is served as " + ", ".join(r.value for r in offers)
