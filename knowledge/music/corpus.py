"""One in-memory shape for a music data set, whatever its source.

The Last.fm reader, the KGCN reader and the synthetic generator all produce a :class:`MusicCorpus`,
and one RDF writer turns any corpus into quads, so real and synthetic data cannot drift apart in
shape. Records hold source-local keys (``"707"``); IRIs are minted only by the :class:`IriScheme`
when writing, which keeps the readers free of RDF and the writer free of file formats.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "Artist",
    "Friendship",
    "IriScheme",
    "KnowledgeTriple",
    "Listening",
    "MusicCorpus",
    "ReadReport",
    "Tag",
    "Tagging",
]

DATA_BASE = "https://w3id.org/spore/data/"


@dataclass(frozen=True)
class IriScheme:
    """Mints the global IRIs of one data set.

    Catalogue IRIs are global on purpose: every node that imports the same data names the same
    artist with the same IRI, so item embeddings line up when nodes co-train.
    """

    catalogue_base: str
    knowledge_base: str

    @classmethod
    def lastfm(cls) -> IriScheme:
        return cls(DATA_BASE + "lastfm/", DATA_BASE + "kgcn/")

    @classmethod
    def synthetic(cls, seed: int) -> IriScheme:
        base = f"{DATA_BASE}synth/{seed}/"
        return cls(base, base)

    def artist(self, key: str) -> str:
        return f"{self.catalogue_base}artist/{key}"

    def tag(self, key: str) -> str:
        return f"{self.catalogue_base}tag/{key}"

    def tag_scheme(self) -> str:
        return f"{self.catalogue_base}tags"

    def listener(self, key: str) -> str:
        return f"{self.catalogue_base}listener/{key}"

    def listening(self, listener: str, artist: str) -> str:
        return f"{self.listener(listener)}/listening/{artist}"

    def tagging(self, listener: str, artist: str, tag: str) -> str:
        return f"{self.listener(listener)}/tagging/{artist}/{tag}"

    def entity(self, key: str) -> str:
        return f"{self.knowledge_base}entity/{key}"

    def relation(self, name: str) -> str:
        return f"{self.knowledge_base}relation/{name}"


@dataclass(frozen=True)
class Artist:
    key: str
    name: str
    url: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class Tag:
    key: str
    label: str


class Listening(NamedTuple):
    listener: str
    artist: str
    plays: int


class Tagging(NamedTuple):
    listener: str
    artist: str
    tag: str
    date: datetime.date


class Friendship(NamedTuple):
    listener: str
    friend: str


class KnowledgeTriple(NamedTuple):
    """``head relation tail`` between knowledge-graph entity keys (not yet artist keys)."""

    head: str
    relation: str
    tail: str


@dataclass
class ReadReport:
    """What a reader kept, skipped (by reason) and re-decoded, per file."""

    kept: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, Counter[str]] = field(default_factory=dict)
    recoded: Counter[str] = field(default_factory=Counter)

    def skip(self, source: str, reason: str, count: int = 1) -> None:
        self.skipped.setdefault(source, Counter())[reason] += count

    def total_skipped(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.skipped.values())

    def merge(self, other: ReadReport) -> None:
        self.kept.update(other.kept)
        self.recoded.update(other.recoded)
        for source, reasons in other.skipped.items():
            self.skipped.setdefault(source, Counter()).update(reasons)

    def warn(self, logger: logging.Logger) -> None:
        """One warning per file with skipped or re-decoded rows, so bad data is never silent."""
        for source, reasons in sorted(self.skipped.items()):
            detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            logger.warning("%s: skipped %d rows (%s)", source, sum(reasons.values()), detail)
        for source, count in sorted(self.recoded.items()):
            logger.warning("%s: %d rows were not in the file's encoding and were re-decoded", source, count)

    def lines(self) -> list[str]:
        """Human-readable summary lines for the command line."""
        out = [f"{source}: {count} rows" for source, count in sorted(self.kept.items())]
        for source, reasons in sorted(self.skipped.items()):
            for reason, count in sorted(reasons.items()):
                out.append(f"{source}: skipped {count} ({reason})")
        out.extend(f"{source}: re-decoded {count}" for source, count in sorted(self.recoded.items()))
        return out


@dataclass
class MusicCorpus:
    """A whole music data set: public catalogue plus private listening, keyed by source ids.

    ``artist_entities`` maps an artist key to its knowledge-graph entity key; ``knowledge`` holds
    triples between entity keys, and ``relation_labels`` the human label of each relation name.
    """

    scheme: IriScheme
    title: str
    artists: list[Artist] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    listenings: list[Listening] = field(default_factory=list)
    taggings: list[Tagging] = field(default_factory=list)
    friendships: list[Friendship] = field(default_factory=list)
    artist_entities: dict[str, str] = field(default_factory=dict)
    knowledge: list[KnowledgeTriple] = field(default_factory=list)
    entity_labels: dict[str, str] = field(default_factory=dict)
    report: ReadReport = field(default_factory=ReadReport)

    def listener_keys(self) -> list[str]:
        """Every listener that listened, tagged or befriended, sorted numerically where possible."""
        keys = {row.listener for row in self.listenings}
        keys.update(row.listener for row in self.taggings)
        keys.update(row.listener for row in self.friendships)
        keys.update(row.friend for row in self.friendships)
        return sorted(keys, key=_natural)

    def counts(self) -> dict[str, int]:
        return {
            "artists": len(self.artists),
            "tags": len(self.tags),
            "listeners": len(self.listener_keys()),
            "listenings": len(self.listenings),
            "taggings": len(self.taggings),
            "friendships": len(self.friendships),
            "artist entities": len(self.artist_entities),
            "knowledge triples": len(self.knowledge),
        }


def _natural(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)
