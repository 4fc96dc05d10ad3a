"""The Last.fm-2k and KGCN readers on small files written here (see tests/music_samples.py)."""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

import pytest
from music_samples import ODD_NAMES, write_kgcn, write_lastfm

from knowledge.music.lastfm import read_lastfm
from knowledge.music.tsv import MusicDataError, decode_line

DATA_DIR = Path(
    os.environ.get("SPORE_DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)


@pytest.fixture
def corpus(tmp_path: Path):
    return read_lastfm(write_lastfm(tmp_path / "lastfm"), freebase=write_kgcn(tmp_path / "kgcn"))


def test_odd_names_are_kept_exactly(corpus) -> None:
    names = {artist.key: artist.name for artist in corpus.artists}
    for key, name in ODD_NAMES.items():
        assert names[key] == name


def test_wrongly_encoded_rows_are_re_decoded(corpus) -> None:
    names = {artist.key: artist.name for artist in corpus.artists}
    labels = {tag.key: tag.label for tag in corpus.tags}
    assert names["8"] == "Motörhead"  # Latin-1 bytes in the UTF-8 file
    assert labels["1"] == "rock français"  # the file's own ISO-8859-1
    assert labels["4"] == "düsseldorf"  # UTF-8 bytes in the ISO-8859-1 file
    assert corpus.report.recoded == {"artists.dat": 1, "tags.dat": 1}


def test_malformed_rows_are_skipped_and_counted(corpus, caplog: pytest.LogCaptureFixture) -> None:
    skipped = corpus.report.skipped
    assert skipped["artists.dat"] == {"non-numeric artist id": 1, "expected 4 tab-separated fields": 1}
    assert skipped["tags.dat"] == {"expected 2 tab-separated fields": 1}
    assert skipped["user_artists.dat"] == {
        "unknown artist": 1,
        "non-numeric field": 1,
        "play count below 1": 1,
    }
    assert skipped["user_taggedartists.dat"] == {"invalid date": 1, "unknown artist": 1}
    assert skipped["user_friends.dat"] == {"self-friendship": 1}
    assert skipped["item_index2entity_id.txt"] == {"unknown artist": 1}
    assert skipped["kg.txt"] == {"malformed relation name": 1, "expected 3 tab-separated fields": 1}


def test_skipped_rows_warn_once_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="knowledge.music"):
        read_lastfm(write_lastfm(tmp_path / "lastfm"))
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("user_artists.dat: skipped 3 rows") for m in messages)
    assert any("artists.dat: 1 rows were not in the file's encoding" in m for m in messages)


def test_rows_are_read_with_their_values(corpus) -> None:
    assert (corpus.listenings[0].listener, corpus.listenings[0].artist, corpus.listenings[0].plays) == (
        "2",
        "1",
        100,
    )
    assert len(corpus.listenings) == 8
    assert corpus.taggings[0].date == datetime.date(2009, 4, 1)
    assert {(f.listener, f.friend) for f in corpus.friendships} == {
        ("2", "3"),
        ("3", "2"),
        ("4", "5"),
        ("5", "4"),
    }
    assert corpus.listener_keys() == ["2", "3", "4", "5"]
    pictures = {artist.key: artist.image for artist in corpus.artists}
    assert pictures["7"] is None and pictures["1"] == "http://img.example/1.jpg"


def test_knowledge_graph_rows(corpus) -> None:
    assert corpus.artist_entities == {"1": "0", "3": "1", "5": "2"}
    assert [tuple(t) for t in corpus.knowledge] == [
        ("0", "music.artist.origin", "10"),
        ("1", "music.artist.origin", "10"),
        ("1", "music.artist.genre", "11"),
        ("2", "music.artist.influenced_by", "0"),
    ]


def test_missing_directory_and_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MusicDataError, match="not a directory"):
        read_lastfm(tmp_path / "nowhere")
    directory = write_lastfm(tmp_path / "lastfm")
    (directory / "tags.dat").unlink()
    (directory / "user_friends.dat").unlink()
    with pytest.raises(MusicDataError, match="missing files in .*: tags.dat, user_friends.dat"):
        read_lastfm(directory)
    (directory / "tags.dat").write_text("tagID\ttagValue\n")
    (directory / "user_friends.dat").write_text("userID\tfriendID\n")
    empty = tmp_path / "kg"
    empty.mkdir()
    with pytest.raises(MusicDataError, match="missing files in .*kg: item_index2entity_id.txt, kg.txt"):
        read_lastfm(directory, freebase=empty)


@pytest.mark.parametrize(
    ("raw", "encoding", "expected"),
    [
        (b"caf\xc3\xa9", "utf-8", ("café", False)),
        (b"caf\xe9", "utf-8", ("café", True)),
        (b"caf\xe9", "latin-1", ("café", False)),
        (b"caf\xc3\xa9", "latin-1", ("café", True)),
        (b"\x81\x8d", "utf-8", None),  # neither UTF-8 nor cp1252
    ],
)
def test_decode_line(raw: bytes, encoding: str, expected: tuple[str, bool] | None) -> None:
    assert decode_line(raw, encoding) == expected


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA_DIR / "lastfm-2k" / "artists.dat").is_file(), reason="Last.fm-2k files not present"
)
def test_full_lastfm_files_match_the_distributors_counts() -> None:
    corpus = read_lastfm(DATA_DIR / "lastfm-2k", freebase=DATA_DIR / "kgcn-music")
    counts = corpus.counts()
    assert counts["artists"] == 17632 and counts["tags"] == 11946 and counts["listeners"] == 1892
    assert counts["listenings"] == 92834 and counts["friendships"] == 25434
    # 1,538 taggings name artists that artists.dat lacks; nothing else is dropped
    assert counts["taggings"] == 186479 - 1538
    assert counts["artist entities"] == 3846 and counts["knowledge triples"] == 15518
    assert {artist.name for artist in corpus.artists} >= {'"Weird Al" Yankovic', "+\\-", "Sigur Rós"}
