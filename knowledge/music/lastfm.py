"""Reader for the HetRec 2011 Last.fm-2k files (GroupLens; Cantador, Brusilovsky, Kuflik 2011).

Every file is tab-separated with one header line; ``tags.dat`` is ISO-8859-1, the others UTF-8 or
ASCII (see the distributor's ``readme.txt``). Rows that are malformed or point at an artist, tag or
listener the files do not define are skipped and counted, never fatal: the published files do hold
such rows (taggings of 390 artists that ``artists.dat`` lacks).
"""

from __future__ import annotations

import datetime
import logging
import re
from pathlib import Path

from knowledge.music.corpus import (
    Artist,
    Friendship,
    IriScheme,
    Listening,
    MusicCorpus,
    ReadReport,
    Tag,
    Tagging,
)
from knowledge.music.kgcn import read_kgcn
from knowledge.music.tsv import numeric_key, read_table, require_files

__all__ = ["LASTFM_FILES", "read_lastfm"]

logger = logging.getLogger(__name__)

LASTFM_FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_taggedartists.dat", "user_friends.dat")

# RFC 3987 forbids these in an IRI; Last.fm URLs are percent-encoded already, so one is a data error.
_NOT_IN_IRI = re.compile(r'[\x00-\x20<>"{}|^`\\]')


def _date(year: str, month: str, day: str) -> datetime.date | None:
    parts = [numeric_key(part) for part in (year, month, day)]
    if None in parts:
        return None
    try:
        return datetime.date(*(int(part) for part in parts if part is not None))
    except ValueError:
        return None


def _web_address(text: str) -> str | None:
    text = text.strip()
    if not text.startswith(("http://", "https://")) or _NOT_IN_IRI.search(text):
        return None
    return text


def _read_artists(path: Path, report: ReadReport) -> list[Artist]:
    artists: dict[str, Artist] = {}
    for fields in read_table(path, encoding="utf-8", columns=4, min_columns=3, report=report):
        key, name, url, image = numeric_key(fields[0]), fields[1], fields[2], fields[3]
        if key is None:
            report.skip(path.name, "non-numeric artist id")
        elif not name.strip():
            report.skip(path.name, "empty artist name")
        elif key in artists:
            report.skip(path.name, "duplicate artist id")
        else:
            if url.strip() and _web_address(url) is None:
                report.skip("artists.dat url", "not a web address (artist kept without it)")
            artists[key] = Artist(key, name, _web_address(url), _web_address(image))
            report.kept[path.name] += 1
    return list(artists.values())


def _read_tags(path: Path, report: ReadReport) -> list[Tag]:
    tags: dict[str, Tag] = {}
    for fields in read_table(path, encoding="latin-1", columns=2, report=report):
        key, label = numeric_key(fields[0]), fields[1]
        if key is None:
            report.skip(path.name, "non-numeric tag id")
        elif not label.strip():
            report.skip(path.name, "empty tag")
        elif key in tags:
            report.skip(path.name, "duplicate tag id")
        else:
            tags[key] = Tag(key, label)
            report.kept[path.name] += 1
    return list(tags.values())


def _read_listenings(path: Path, artists: set[str], report: ReadReport) -> list[Listening]:
    seen: set[tuple[str, str]] = set()
    rows: list[Listening] = []
    for fields in read_table(path, encoding="utf-8", columns=3, report=report):
        listener, artist, weight = numeric_key(fields[0]), numeric_key(fields[1]), numeric_key(fields[2])
        if listener is None or artist is None or weight is None:
            report.skip(path.name, "non-numeric field")
        elif int(weight) < 1:
            report.skip(path.name, "play count below 1")
        elif artist not in artists:
            report.skip(path.name, "unknown artist")
        elif (listener, artist) in seen:
            report.skip(path.name, "duplicate listener-artist pair")
        else:
            seen.add((listener, artist))
            rows.append(Listening(listener, artist, int(weight)))
    report.kept[path.name] += len(rows)
    return rows


def _read_taggings(path: Path, artists: set[str], tags: set[str], report: ReadReport) -> list[Tagging]:
    seen: set[tuple[str, str, str]] = set()
    rows: list[Tagging] = []
    days: dict[tuple[str, str, str], datetime.date | None] = {}  # a few thousand distinct days
    for fields in read_table(path, encoding="utf-8", columns=6, report=report):
        listener, artist, tag = numeric_key(fields[0]), numeric_key(fields[1]), numeric_key(fields[2])
        if listener is None or artist is None or tag is None:
            report.skip(path.name, "non-numeric field")
            continue
        when = (fields[5], fields[4], fields[3])
        if when not in days:
            days[when] = _date(*when)
        day = days[when]
        if day is None:
            report.skip(path.name, "invalid date")
            continue
        if artist not in artists:
            report.skip(path.name, "unknown artist")
        elif tag not in tags:
            report.skip(path.name, "unknown tag")
        elif (listener, artist, tag) in seen:
            report.skip(path.name, "duplicate tagging")
        else:
            seen.add((listener, artist, tag))
            rows.append(Tagging(listener, artist, tag, day))
    report.kept[path.name] += len(rows)
    return rows


def _read_friendships(path: Path, report: ReadReport) -> list[Friendship]:
    seen: set[tuple[str, str]] = set()
    rows: list[Friendship] = []
    for fields in read_table(path, encoding="utf-8", columns=2, report=report):
        listener, friend = numeric_key(fields[0]), numeric_key(fields[1])
        if listener is None or friend is None:
            report.skip(path.name, "non-numeric field")
        elif listener == friend:
            report.skip(path.name, "self-friendship")
        elif (listener, friend) in seen:
            report.skip(path.name, "duplicate friendship")
        else:
            seen.add((listener, friend))
            rows.append(Friendship(listener, friend))
    report.kept[path.name] += len(rows)
    return rows


def read_lastfm(directory: Path, *, freebase: Path | None = None) -> MusicCorpus:
    """Read the Last.fm-2k directory (and optionally the KGCN Freebase directory) into a corpus.

    Raises :class:`MusicDataError` when a directory or file is missing; bad rows only warn.
    """
    directory = Path(directory)
    require_files(directory, LASTFM_FILES)
    report = ReadReport()
    corpus = MusicCorpus(IriScheme.lastfm(), "HetRec 2011 Last.fm-2k", report=report)
    corpus.artists = _read_artists(directory / "artists.dat", report)
    corpus.tags = _read_tags(directory / "tags.dat", report)
    artist_keys = {artist.key for artist in corpus.artists}
    tag_keys = {tag.key for tag in corpus.tags}
    corpus.listenings = _read_listenings(directory / "user_artists.dat", artist_keys, report)
    corpus.taggings = _read_taggings(directory / "user_taggedartists.dat", artist_keys, tag_keys, report)
    corpus.friendships = _read_friendships(directory / "user_friends.dat", report)
    if freebase is not None:
        corpus.artist_entities, corpus.knowledge = read_kgcn(Path(freebase), artist_keys, report)
        corpus.title += " with the KGCN Freebase graph"
    report.warn(logger)
    return corpus
