"""Asking a node from the Fediverse: "@node recommend Radiohead, Portishead" gets a public reply.

A person on Mastodon (or any ActivityPub server) mentions a node, or posts with the node's hashtag,
naming artists they like. The node answers with a public ``Create(Note)`` that is ``inReplyTo`` their
post, mentions them (a ``Mention`` tag and an ``@handle`` link, so their server notifies them), lists
its recommendations and links to the ``spore:Recommendation`` it stored as RDF in its public models
graph. Unknown artists get "did you mean" suggestions, not silence; a flood of asks from one account
gets one polite reply and then nothing until its bucket refills.

This module holds the pure part: reading the ask (:func:`parse_ask`), matching names
(:func:`resolve_names`) and writing the reply (:func:`reply_html`, :func:`reply_note`).
:mod:`federation.answering` does the I/O and is hooked into the inbox worker with
``install_asking``. The model side is any :class:`ArtistRecommender`
(``agents.asking.SnapshotRecommender`` serves a node's latest snapshot).
"""

from __future__ import annotations

import html
import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nh3

from federation.actors import LocalActor
from federation.vocab import PUBLIC, id_of, ids_of, types_of
from knowledge.music.names import NameIndex

__all__ = [
    "Ask",
    "Asker",
    "ArtistRecommender",
    "Matched",
    "Ranked",
    "Resolved",
    "asker_card",
    "describe_url",
    "mention_html",
    "note_text",
    "parse_ask",
    "reply_html",
    "reply_note",
    "requested_names",
    "resolve_names",
]

log = logging.getLogger(__name__)

MAX_NAMES = 20  # a longer list is almost certainly not a person asking
_KEYWORD = re.compile(
    r"\brecommend(?:ations?)?\b(?:\s+(?:me|us))?(?:\s+(?:something|some\s+music|artists?|bands?))?"
    r"(?:\s+(?:like|for|from|similar\s+to))?\s*[:\-\u2013\u2014]?\s*",
    re.IGNORECASE,
)
_HANDLE = re.compile(r"(?<![\w@])@[\w.\-]+(?:@[\w.\-]+(?::\d+)?)?")
_HASHTAG = re.compile(r"(?<![\w#&])#\w+")
_URL = re.compile(r"https?://\S+")
_SEPARATORS = re.compile(r"[,;\n]+|\s+/\s+")
_BREAKS = re.compile(r"<br\s*/?>|</p>|</li>", re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb "


# -- reading the ask ------------------------------------------------------------------------------


def note_text(content: str) -> str:
    """Plain text of a Note's HTML ``content``: tags dropped by nh3, entities decoded, breaks kept."""
    with_breaks = _BREAKS.sub("\n", content)
    return html.unescape(nh3.clean(with_breaks, tags=set()))


def requested_names(text: str) -> tuple[list[str], bool]:
    """Artist names after the word "recommend", and whether the word was there.

    Handles, hashtags and links are removed first, so "@ada@spore.example recommend Björk #music"
    asks for Björk alone. Names are separated by commas, semicolons, new lines or " / "; "and" is
    left inside names here ("Florence and the Machine") and only split by :func:`resolve_names`
    when the whole does not name an artist.
    """
    cleaned = _URL.sub(" ", _HASHTAG.sub(" ", _HANDLE.sub(" ", text)))
    keyword = _KEYWORD.search(cleaned)
    if keyword is None:
        return [], False
    names: list[str] = []
    for part in _SEPARATORS.split(cleaned[keyword.end() :]):
        name = " ".join(part.split()).strip(_QUOTES).rstrip(".!?").strip(_QUOTES)
        name = re.sub(r"^(?:and|&)\s+", "", name, flags=re.IGNORECASE)
        if name and name.casefold() not in {normal.casefold() for normal in names}:
            names.append(name)
    return names[:MAX_NAMES], True


@dataclass(frozen=True)
class Ask:
    """A Note that asks one local node: who asked, in reply to what, naming which artists."""

    node: LocalActor
    asker: str
    note_id: str
    names: tuple[str, ...]
    has_keyword: bool
    by_mention: bool  # mentioned (answer even without the keyword) rather than only hashtagged


def parse_ask(
    note: Mapping[str, Any], asker: str, nodes: Iterable[LocalActor], hashtags: Mapping[str, str]
) -> list[Ask]:
    """The asks a Note makes of local nodes: those it mentions (a ``Mention`` tag whose ``href`` is
    the node) or whose hashtag it carries (``hashtags``: node name -> "#tag").

    Only the Note's author can ask (``attributedTo`` must be the signer, checked by the caller's
    origin rule too); a hashtag alone asks only with the word "recommend", so ordinary posts that
    happen to carry the tag get no reply.
    """
    if "Note" not in types_of(note) or not isinstance(note.get("id"), str):
        return []
    if asker not in ids_of(note.get("attributedTo")):
        return []
    tags = note.get("tag", [])
    tags = tags if isinstance(tags, list) else [tags]
    mentioned = {
        id_of(tag.get("href")) for tag in tags if isinstance(tag, dict) and "Mention" in types_of(tag)
    }
    tagged = {
        str(tag.get("name", "")).lstrip("#").casefold()
        for tag in tags
        if isinstance(tag, dict) and "Hashtag" in types_of(tag)
    }
    content = note.get("content")
    text = note_text(content) if isinstance(content, str) else ""
    names, has_keyword = requested_names(text)
    asks = []
    for node in nodes:
        by_mention = node.id in mentioned
        hashtag = hashtags.get(node.name, f"#{node.name}").lstrip("#").casefold()
        if by_mention or (hashtag in tagged and has_keyword):
            asks.append(Ask(node, asker, note["id"], tuple(names), has_keyword, by_mention))
    return asks


# -- matching names -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matched:
    query: str
    iri: str
    name: str
    corrected: bool  # found through a typo correction, said so in the reply


@dataclass(frozen=True)
class Resolved:
    matched: tuple[Matched, ...]
    unknown: tuple[tuple[str, tuple[str, ...]], ...]  # typed name, "did you mean" suggestions


def resolve_names(names: Sequence[str], index: NameIndex, *, typo_cutoff: float = 0.85) -> Resolved:
    """Catalogue artists for typed names, tolerant of case, accents and typos.

    Exact (normalised) names match first; a name that matches nothing but has exactly one catalogue
    name within ``typo_cutoff`` (difflib ratio) is taken as a typo of it ("Radiohed"); a name joined
    with "and"/"&" that is not itself an artist is tried as two names. The rest are unknown, with up
    to three close names as suggestions.
    """
    matched: dict[str, Matched] = {}
    unknown: list[tuple[str, tuple[str, ...]]] = []

    def exact_or_typo(query: str) -> Matched | None:
        hit = index.lookup(query)
        if hit is not None:
            return Matched(query, hit.iri, hit.name, corrected=False)
        close = index.suggest(query, limit=2, cutoff=typo_cutoff)
        if len(close) == 1:
            corrected = index.lookup(close[0])
            if corrected is not None:
                return Matched(query, corrected.iri, corrected.name, corrected=True)
        return None

    for query in names:
        found = exact_or_typo(query)
        pieces = re.split(r"\s+(?:and|&)\s+", query, flags=re.IGNORECASE)
        split = [exact_or_typo(piece) for piece in pieces] if found is None and len(pieces) > 1 else []
        if found is not None:
            matched.setdefault(found.iri, found)
        elif split and all(split):
            for piece in split:
                assert piece is not None
                matched.setdefault(piece.iri, piece)
        else:
            unknown.append((query, index.suggest(query, limit=3, cutoff=0.6)))
    return Resolved(tuple(matched.values()), tuple(unknown))


# -- the model side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """One recommended artist (the fields :func:`models.recommend.recommendation_graph` reads)."""

    position: int
    iri: str
    name: str
    score: float


class ArtistRecommender(Protocol):
    """What the asking service needs from a node's model: its catalogue names and a ranked list."""

    @property
    def names(self) -> NameIndex: ...

    @property
    def snapshot(self) -> str:
        """IRI of the snapshot that makes the recommendations (``spore:madeWith``)."""
        ...

    def recommend(self, artist_iris: Sequence[str], k: int) -> Sequence[Ranked]: ...


# -- writing the reply ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asker:
    id: str
    handle: str  # "@user@host", as Mastodon writes mentions
    username: str
    url: str


def asker_card(document: Mapping[str, Any]) -> Asker:
    actor_id = str(document["id"])
    username = str(document.get("preferredUsername") or actor_id.rstrip("/").rsplit("/", 1)[-1])
    domain = urllib.parse.urlsplit(actor_id).netloc
    url = id_of(document.get("url")) or actor_id
    if not url.startswith(("https://", "http://")):
        url = actor_id  # a peer's "url" goes into our HTML: no javascript: or data: links
    return Asker(actor_id, f"@{username}@{domain}", username, url)


def mention_html(asker: Asker) -> str:
    """The h-card link Mastodon writes for a mention (and recognises when it renders one)."""
    return (
        f'<span class="h-card"><a href="{html.escape(asker.url)}" class="u-url mention">'
        f"@<span>{html.escape(asker.username)}</span></a></span>"
    )


def reply_html(
    asker: Asker,
    resolved: Resolved,
    ranked: Sequence[Ranked],
    *,
    recommendation: str | None,
    problem: str | None = None,
) -> str:
    """The reply's HTML: every name from the catalogue or the asker escaped, never interpreted."""
    lead = mention_html(asker)
    paragraphs: list[str] = []
    corrected = [m for m in resolved.matched if m.corrected]
    if corrected:
        read_as = ", ".join(f"\u201c{html.escape(m.query)}\u201d as {html.escape(m.name)}" for m in corrected)
        paragraphs.append(f"(I read {read_as}.)")
    if ranked:
        liked = ", ".join(html.escape(m.name) for m in resolved.matched)
        lines = "<br>".join(f"{entry.position}. {html.escape(entry.name)}" for entry in ranked)
        paragraphs.insert(0, f"{lead} Because you like {liked}, you might enjoy:")
        paragraphs.append(lines)
    else:
        paragraphs.insert(0, f"{lead} {html.escape(problem or 'I could not find any of those artists.')}")
    for query, suggestions in resolved.unknown:
        hint = (
            "did you mean " + " or ".join(html.escape(s) for s in suggestions) + "?"
            if suggestions
            else "I do not know that name."
        )
        paragraphs.append(f"\u201c{html.escape(query)}\u201d is not in my catalogue; {hint}")
    if recommendation:
        # The IRI dereferences with content negotiation (HTML for people, Turtle/JSON-LD for tools).
        link = html.escape(recommendation)
        paragraphs.append(f'This list as linked data (spore:Recommendation): <a href="{link}">{link}</a>')
    return "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)


def reply_note(
    *,
    note_id: str,
    node: LocalActor,
    asker: Asker,
    in_reply_to: str,
    content: str,
    published: str,
    attachments: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A public Note replying to the ask, addressed to and mentioning the asker."""
    note: dict[str, Any] = {
        "id": note_id,
        "type": "Note",
        "attributedTo": node.id,
        "inReplyTo": in_reply_to,
        "content": content,
        "published": published,
        "to": [PUBLIC, asker.id],
        "cc": [node.followers],
        "tag": [{"type": "Mention", "href": asker.id, "name": asker.handle}],
        "url": note_id,
    }
    if attachments:
        note["attachment"] = list(attachments)
    return note


def describe_url(node: LocalActor, iri: str) -> str:
    """The recommendation's RDF, items included, from the node's SPARQL endpoint: a second link for
    tools that query rather than dereference (a plain DESCRIBE would leave out the items)."""
    query = (
        f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ {{ BIND(<{iri}> AS ?s) ?s ?p ?o }} UNION "
        f"{{ <{iri}> <https://schema.org/itemListElement> ?s . ?s ?p ?o }} }}"
    )
    return f"{node.id}/sparql?" + urllib.parse.urlencode({"query": query})
