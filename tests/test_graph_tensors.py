"""A node's graphs -> MusicTensors: counts, id mappings that round-trip, stability, shards."""

from __future__ import annotations

import copy
import logging
import os
import random
from pathlib import Path

import pytest
import torch
from music_samples import write_kgcn, write_lastfm
from pyoxigraph import Literal, NamedNode, Quad

from knowledge.music import vocab as v
from knowledge.music.corpus import IriScheme
from knowledge.music.importer import import_corpus
from knowledge.music.lastfm import read_lastfm
from knowledge.music.rdf import TargetGraphs, select_listeners
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.graph import load_music_tensors

NODE = "http://127.0.0.1:8000/nodes/local"
GRAPHS = TargetGraphs.for_node(NODE)
LASTFM = IriScheme.lastfm()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("music")
    return read_lastfm(write_lastfm(root / "lastfm"), freebase=write_kgcn(root / "kgcn"))


@pytest.fixture(scope="module")
def tensors(corpus):
    store = EmbeddedStore()
    import_corpus(store, corpus, GRAPHS)
    return load_music_tensors(store, NODE, tag_weights=True)


def test_sizes(tensors, corpus) -> None:
    assert tensors.num_listeners == 4
    assert tensors.num_artists == len(corpus.artists) == 8
    assert tensors.num_interactions == len(corpus.listenings) == 8
    assert tensors.num_tags == 3
    assert tensors.artist_tags.shape == (2, 4)
    assert tensors.artist_entities.shape == (3, 4)


def test_ids_are_sorted_iris(tensors) -> None:
    for kind in ("listeners", "artists", "tags", "entities", "relations"):
        iris = getattr(tensors, kind)
        assert list(iris) == sorted(iris)


def test_interactions_round_trip_to_the_listenings(tensors, corpus) -> None:
    expected = {(LASTFM.listener(r.listener), LASTFM.artist(r.artist)): r.plays for r in corpus.listenings}
    got = {
        (tensors.listener_iri(int(u)), tensors.artist_iri(int(a))): float(p)
        for (u, a), p in zip(tensors.interactions.t().tolist(), tensors.play_counts.tolist(), strict=True)
    }
    assert got == expected
    for listener in tensors.listeners:
        assert tensors.listener_iri(tensors.listener_index(listener)) == listener
    for index, artist in enumerate(tensors.artists):
        assert tensors.index("artist", artist) == index


def test_names_labels_and_side_information(tensors) -> None:
    names = dict(zip(tensors.artists, tensors.artist_names, strict=True))
    assert names[LASTFM.artist("2")] == "+\\-"
    assert names[LASTFM.artist("3")] == "Bjo\u0308rk"
    assert dict(zip(tensors.tags, tensors.tag_labels, strict=True))[LASTFM.tag("4")] == "düsseldorf"
    triples = {
        (tensors.artists[a], tensors.relations[r], tensors.entities[e])
        for a, r, e in tensors.artist_entities.t().tolist()
    }
    assert (LASTFM.artist("5"), LASTFM.relation("music.artist.influenced_by"), LASTFM.artist("1")) in triples
    assert (LASTFM.artist("1"), LASTFM.relation("music.artist.origin"), LASTFM.entity("10")) in triples
    edges = {
        (tensors.artists[a], tensors.tags[t]): w
        for (a, t), w in zip(
            tensors.artist_tags.t().tolist(), tensors.artist_tag_weights.tolist(), strict=True
        )
    }
    taggings = {
        (tensors.listeners[u], tensors.artists[a], tensors.tags[t])
        for u, a, t in tensors.taggings.t().tolist()
    }
    assert (LASTFM.listener("2"), LASTFM.artist("1"), LASTFM.tag("1")) in taggings
    assert len(taggings) == tensors.taggings.shape[1] == 4  # who tagged what, for a split to drop
    assert edges == {
        (LASTFM.artist("1"), LASTFM.tag("1")): 1.0,
        (LASTFM.artist("8"), LASTFM.tag("2")): 1.0,
        (LASTFM.artist("3"), LASTFM.tag("4")): 1.0,
        (LASTFM.artist("5"), LASTFM.tag("2")): 1.0,
    }


def test_same_graph_in_another_order_gives_the_same_tensors(corpus, tensors) -> None:
    other = copy.deepcopy(corpus)
    rng = random.Random(3)
    for rows in (other.artists, other.tags, other.listenings, other.taggings, other.knowledge):
        rng.shuffle(rows)
    store = EmbeddedStore()
    import_corpus(store, other, GRAPHS)
    again = load_music_tensors(store, NODE, tag_weights=True)
    assert again.listeners == tensors.listeners and again.artists == tensors.artists
    assert again.entities == tensors.entities and again.relations == tensors.relations
    names = (
        "interactions",
        "play_counts",
        "artist_tags",
        "artist_entities",
        "artist_tag_weights",
        "taggings",
    )
    for name in names:
        assert torch.equal(getattr(again, name), getattr(tensors, name)), name


def test_a_shard_sees_only_its_listeners_and_the_whole_catalogue(corpus) -> None:
    store = EmbeddedStore()
    mine = select_listeners(corpus.listener_keys(), shard=(1, 2))
    import_corpus(store, corpus, GRAPHS, listeners=mine)
    shard = load_music_tensors(store, NODE)
    assert shard.listeners == tuple(sorted(LASTFM.listener(key) for key in mine))
    assert shard.num_artists == 8 and shard.artist_tag_weights is None


def test_listenings_outside_the_catalogue_are_dropped_with_a_warning(corpus, caplog) -> None:
    store = EmbeddedStore()
    import_corpus(store, corpus, GRAPHS)
    stray = NamedNode("https://example.org/listening/1")
    private = NamedNode(GRAPHS.private)
    store.extend(
        [
            Quad(stray, NamedNode(v.PLAY_COUNT), Literal(5), private),
            Quad(stray, NamedNode(v.LISTENER), NamedNode(LASTFM.listener("2")), private),
            Quad(stray, NamedNode(v.ARTIST), NamedNode("https://example.org/not-an-artist"), private),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="models.graph"):
        result = load_music_tensors(store, NODE)
    assert result.num_interactions == 8
    assert "dropped 1 listenings of artists not in the catalogue" in caplog.text


def test_synthetic_graph_to_tensors(tmp_path: Path) -> None:
    params = SynthParams(listeners=60, artists=300, seed=5)
    store = EmbeddedStore(tmp_path / "store")
    import_corpus(store, synthesize(params), GRAPHS)
    result = load_music_tensors(store, NODE)
    assert result.num_listeners == 60 and result.num_artists == 300
    assert {iri.rsplit("/", 1)[-1] for iri in result.relations} == {
        "music.artist.origin",
        "music.artist.genre",
    }
    assert result.artist_entities.shape[1] > 0 and result.artist_tags.shape[1] > 0


def test_rows_with_unexpected_terms_are_skipped(corpus, caplog) -> None:
    store = EmbeddedStore()
    import_corpus(store, corpus, GRAPHS)
    catalogue = NamedNode(GRAPHS.catalogue)
    store.extend([Quad(NamedNode(LASTFM.artist("1")), NamedNode(v.HAS_TAG), Literal("not a tag"), catalogue)])
    with caplog.at_level(logging.WARNING, logger="models.graph"):
        result = load_music_tensors(store, NODE)
    assert result.artist_tags.shape == (2, 4)
    assert "skipped 1 rows with unexpected terms" in caplog.text


DATA_DIR = Path(
    os.environ.get("SPORE_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA_DIR / "lastfm-2k" / "artists.dat").is_file(), reason="Last.fm-2k files not present"
)
def test_full_lastfm_import_to_tensors() -> None:
    full = read_lastfm(DATA_DIR / "lastfm-2k", freebase=DATA_DIR / "kgcn-music")
    store = EmbeddedStore()
    summary = import_corpus(store, full, GRAPHS)
    assert (summary.catalogue_quads, summary.private_quads) == (243_271, 1_323_367)
    result = load_music_tensors(store, NODE)
    assert (result.num_listeners, result.num_artists, result.num_interactions) == (1892, 17632, 92834)
    assert (result.num_tags, result.artist_tags.shape[1]) == (11946, 108_437)
    assert (result.num_relations, result.artist_entities.shape[1]) == (60, 15518)
    anti_flag = result.artist_index(LASTFM.artist("1650"))
    assert result.artist_names[anti_flag] == "Anti-Flag"
