"""Matching artist names typed by a person to the catalogue, with suggestions for typos.

A person who is not in the data says which artists they like (``--artists "Name, Name"``). Names
are compared after NFKC normalisation, case folding and whitespace collapsing, so "ＡＢＢＡ",
"abba" and " ABBA " all find ABBA, while combining marks and other characters are kept (NFKC
composes "é" written as e + U+0301 into one character, so both spellings match). Unmatched names
that differ only in accents match when that is unambiguous ("Beyonce" finds "Beyoncé"); the rest
get close matches from :func:`difflib.get_close_matches` (standard library, ratio-based).
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ArtistMatch", "NameIndex", "NameMatches", "fold_accents", "normalize_name", "split_names"]


def normalize_name(name: str) -> str:
    """The comparison key of a name: NFKC, case-folded, inner whitespace collapsed, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def fold_accents(key: str) -> str:
    """A normalised key without combining marks, so "beyonce" can find "Beyoncé"."""
    decomposed = unicodedata.normalize("NFKD", key)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def split_names(text: str) -> list[str]:
    """Split a comma-separated list of names, dropping empty entries.

    Names that themselves contain commas cannot be typed this way; the caller can pass a list.
    """
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class ArtistMatch:
    """A typed name and the catalogue artist it matched."""

    query: str
    iri: str
    name: str


@dataclass(frozen=True)
class NameMatches:
    """Which typed names matched an artist and which did not (with suggestions, best first)."""

    matched: tuple[ArtistMatch, ...]
    unmatched: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def iris(self) -> list[str]:
        return [match.iri for match in self.matched]

    def explain(self) -> list[str]:
        """One line per unmatched name, for the command line."""
        lines = []
        for query, suggestions in self.unmatched:
            hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
            lines.append(f"no artist named {query!r}{hint}")
        return lines


class NameIndex:
    """Catalogue names by comparison key; built once, queried per request.

    When two artists share a key (the data has such pairs), the smallest IRI wins so the choice is
    stable across runs.
    """

    def __init__(self, artists: Mapping[str, str] | Iterable[tuple[str, str]]):
        """``artists``: IRI -> display name (or pairs of them)."""
        pairs = artists.items() if isinstance(artists, Mapping) else artists
        self._by_key: dict[str, tuple[str, str]] = {}
        for iri, name in sorted(pairs):
            self._by_key.setdefault(normalize_name(name), (iri, name))
        folded: dict[str, list[str]] = {}
        for key in self._by_key:
            folded.setdefault(fold_accents(key), []).append(key)
        # only unambiguous foldings: "Ólafur" and "Olafur" as two artists must not be guessed between
        self._by_folded = {fold: keys[0] for fold, keys in folded.items() if len(keys) == 1}

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, query: str) -> ArtistMatch | None:
        key = normalize_name(query)
        hit = self._by_key.get(key)
        if hit is None and (unaccented := self._by_folded.get(fold_accents(key))) is not None:
            hit = self._by_key[unaccented]
        return None if hit is None else ArtistMatch(query, hit[0], hit[1])

    def suggest(self, query: str, *, limit: int = 3, cutoff: float = 0.75) -> tuple[str, ...]:
        """Display names of the closest catalogue names, best first."""
        keys = difflib.get_close_matches(normalize_name(query), self._by_key, n=limit, cutoff=cutoff)
        return tuple(self._by_key[key][1] for key in keys)

    def match(self, queries: Iterable[str], *, limit: int = 3, cutoff: float = 0.75) -> NameMatches:
        matched: list[ArtistMatch] = []
        unmatched: list[tuple[str, tuple[str, ...]]] = []
        seen: set[str] = set()
        for query in queries:
            hit = self.lookup(query)
            if hit is None:
                unmatched.append((query, self.suggest(query, limit=limit, cutoff=cutoff)))
            elif hit.iri not in seen:
                seen.add(hit.iri)
                matched.append(hit)
        return NameMatches(tuple(matched), tuple(unmatched))
