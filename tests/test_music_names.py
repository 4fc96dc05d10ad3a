"""Matching typed artist names to the catalogue."""

from __future__ import annotations

import pytest

from knowledge.music.names import NameIndex, normalize_name, split_names

CATALOGUE = {
    "urn:a:1": "Radiohead",
    "urn:a:2": "Beyoncé",
    "urn:a:3": "Sigur Ro\u0301s",  # combining acute, as some sources write it
    "urn:a:4": '"Weird Al" Yankovic',
    "urn:a:5": "Olafur Arnalds",
    "urn:a:6": "Ólafur Arnalds",
    "urn:a:7": "ABBA",
    "urn:a:0": "abba",  # the same key twice: the smaller IRI wins, every time
}


@pytest.fixture(scope="module")
def index() -> NameIndex:
    return NameIndex(CATALOGUE)


@pytest.mark.parametrize(
    ("typed", "iri"),
    [
        ("radiohead", "urn:a:1"),
        ("  RADIOHEAD ", "urn:a:1"),
        ("Sigur Rós", "urn:a:3"),  # precomposed ó finds the combining form (NFKC)
        ("ＡＢＢＡ", "urn:a:0"),  # full-width letters (NFKC)
        ('"weird al"   yankovic', "urn:a:4"),
        ("beyonce", "urn:a:2"),  # accents folded when unambiguous
        ("Ólafur Arnalds", "urn:a:6"),
        ("olafur arnalds", "urn:a:5"),
    ],
)
def test_names_match_case_and_form_insensitively(index: NameIndex, typed: str, iri: str) -> None:
    hit = index.lookup(typed)
    assert hit is not None and hit.iri == iri and hit.query == typed


def test_typos_get_suggestions(index: NameIndex) -> None:
    result = index.match(["Radiohed", "Radiohead", "Zzzzzz", "radiohead"])
    assert result.iris == ["urn:a:1"]  # duplicates collapse
    assert result.unmatched == (("Radiohed", ("Radiohead",)), ("Zzzzzz", ()))
    assert result.explain() == [
        "no artist named 'Radiohed'; did you mean 'Radiohead'?",
        "no artist named 'Zzzzzz'",
    ]


def test_ambiguous_accent_folding_is_not_guessed() -> None:
    index = NameIndex({"urn:1": "Olafur", "urn:2": "Ólafur"})
    assert index.lookup("olafür") is None
    assert "Olafur" in index.suggest("olafür")


def test_helpers() -> None:
    assert normalize_name("  The\tBEATLES  ") == "the beatles"
    assert split_names("Radiohead, , Björk ,ABBA") == ["Radiohead", "Björk", "ABBA"]
