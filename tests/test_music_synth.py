"""The synthetic generator: deterministic for a seed, and with the structure it promises."""

from __future__ import annotations

from collections import Counter

import pytest

from knowledge.music.rdf import TargetGraphs, corpus_nquads
from knowledge.music.synth import SynthParams, synthesize

GRAPHS = TargetGraphs.for_node("http://127.0.0.1:8000/nodes/local")
SMALL = SynthParams(listeners=120, artists=600, seed=7)


def nquads(params: SynthParams) -> bytes:
    return b"".join(chunk for _, chunk in corpus_nquads(synthesize(params), GRAPHS))


def test_same_seed_gives_identical_bytes() -> None:
    assert nquads(SMALL) == nquads(SynthParams(listeners=120, artists=600, seed=7))


def test_different_seed_gives_different_data_under_its_own_iris() -> None:
    first, second = nquads(SMALL), nquads(SynthParams(listeners=120, artists=600, seed=8))
    assert first != second
    assert b"/synth/7/artist/" in first and b"/synth/7/" not in second


@pytest.fixture(scope="module")
def corpus():
    return synthesize(SMALL)


def test_sizes_follow_the_parameters(corpus) -> None:
    assert len(corpus.artists) == 600
    assert corpus.listener_keys() == [str(i) for i in range(1, 121)]
    assert len({a.name.casefold() for a in corpus.artists}) == 600  # names unique for matching
    per_listener = Counter(row.listener for row in corpus.listenings)
    assert 20 <= sum(per_listener.values()) / 120 <= 60
    assert len(set((row.listener, row.artist) for row in corpus.listenings)) == len(corpus.listenings)
    assert all(row.plays >= 1 for row in corpus.listenings)


def test_popularity_is_heavy_tailed(corpus) -> None:
    listeners = Counter(row.artist for row in corpus.listenings)
    top = sum(count for _, count in listeners.most_common(len(corpus.artists) // 20))
    # the top 5% of artists hold several times their uniform share (about 0.08 at this size)
    assert top / len(corpus.listenings) > 0.2
    flat = synthesize(SynthParams(listeners=120, artists=600, seed=7, popularity_exponent=0.0))
    flat_top = sum(count for _, count in Counter(row.artist for row in flat.listenings).most_common(30))
    assert flat_top / len(flat.listenings) < 0.12


def _communities(corpus) -> dict[str, int]:
    """Artists' community as the origin-place block their entity points to (3 places per community)."""
    entity_artist = {e: a for a, e in corpus.artist_entities.items()}
    first_place = len(corpus.artist_entities)
    return {
        entity_artist[t.head]: (int(t.tail) - first_place) // 5
        for t in corpus.knowledge
        if t.relation == "music.artist.origin"
    }


def test_listeners_share_taste_through_tags(corpus) -> None:
    """Tags correlate with communities: a listener's tagged artists share few tag blocks."""
    tags_of = Counter()
    listener_tags: dict[str, Counter[str]] = {}
    for row in corpus.taggings:
        listener_tags.setdefault(row.listener, Counter())[row.tag] += 1
        tags_of[row.tag] += 1
    global_tags = {t.key for t in corpus.tags[-6:]}
    per_comm = (len(corpus.tags) - 6) // SMALL.community_count()
    shares = []
    for counts in listener_tags.values():
        blocks = Counter((int(tag) - 1) // per_comm for tag in counts.elements() if tag not in global_tags)
        if sum(blocks.values()) >= 5:
            shares.append(blocks.most_common(1)[0][1] / sum(blocks.values()))
    assert shares and sum(shares) / len(shares) > 0.6  # mostly one community's tags


def test_knowledge_graph_is_sparse_and_kgcn_shaped(corpus) -> None:
    mapped = set(corpus.artist_entities.values())
    assert 0.15 * 600 <= len(mapped) <= 0.35 * 600
    assert all(t.head in mapped for t in corpus.knowledge)
    assert {t.relation for t in corpus.knowledge} == {"music.artist.origin", "music.artist.genre"}
    assert all(t.tail in corpus.entity_labels for t in corpus.knowledge)
    assert len(_communities(corpus)) == len(mapped)


def test_friendships_are_symmetric_without_self_loops(corpus) -> None:
    pairs = {(f.listener, f.friend) for f in corpus.friendships}
    assert pairs and all((b, a) in pairs for a, b in pairs)
    assert all(a != b for a, b in pairs)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (SynthParams(listeners=0), "at least 1 listener"),
        (SynthParams(in_community=1.5), "in_community must be between 0 and 1"),
        (SynthParams(artists=10, communities=11), "communities must be between"),
    ],
)
def test_bad_parameters_are_refused(params: SynthParams, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(params)
