"""Graphs an on-disk store keeps in memory too (knowledge/store/mirror.py): the two copies stay equal
whatever writes them, and queries over kept graphs alone are answered from memory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pyoxigraph import BlankNode, DefaultGraph, Literal, NamedNode, Quad, RdfFormat

from knowledge.store import EmbeddedStore
from knowledge.store.mirror import replayable, touched
from ontology import SPORE
from reasoning.decisions import reason, reasoning_graphs
from tests.reasoning_samples import GROUP_A, GROUP_B, NOW, PEER, world

EX = "https://example.org/"
KEPT = [NamedNode(f"{EX}g{i}") for i in range(3)]
OTHER = NamedNode(f"{EX}other")
P = NamedNode(f"{EX}p")


def quads_of(store: EmbeddedStore, graph: NamedNode, *, memory: bool) -> set[Quad]:
    source = store.kept([graph]) if memory else store
    assert source is not None
    return set(source.native.quads_for_pattern(None, None, None, graph))


def assert_equal_copies(store: EmbeddedStore) -> None:
    for graph in KEPT:
        assert quads_of(store, graph, memory=True) == quads_of(store, graph, memory=False), graph


def test_every_kind_of_write_reaches_both_copies(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    store.extend([Quad(NamedNode(f"{EX}a"), P, Literal("before"), KEPT[0])])
    store.keep_in_memory(KEPT)
    assert quads_of(store, KEPT[0], memory=True)  # what was on disk was copied
    rng = random.Random(0)
    writes = [
        lambda i: store.extend([Quad(NamedNode(f"{EX}s{i}"), P, Literal(i), rng.choice(KEPT))]),
        lambda i: store.extend([Quad(BlankNode(), P, NamedNode(f"{EX}o{i}"), rng.choice([*KEPT, OTHER]))]),
        lambda i: store.load(
            f"_:b <{EX}p> <{EX}o{i}> .\n", format=RdfFormat.N_TRIPLES, graph=rng.choice(KEPT)
        ),
        lambda i: store.load(
            f'<{EX}x> <{EX}p> _:b <{KEPT[1].value}> .\n<{EX}x> <{EX}p> "{i}" <{OTHER.value}> .\n',
            format=RdfFormat.N_QUADS,
        ),
        # replayed on the copy: every GRAPH is kept
        lambda i: store.update(
            "DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o FILTER(isLiteral(?o)) } }",
            bindings={"g": rng.choice(KEPT)},
        ),
        lambda i: store.update(f"INSERT DATA {{ GRAPH <{KEPT[2].value}> {{ <{EX}y> <{EX}p> {i} }} }}"),
        # copied again from disk: a blank node minted by the update, a graph only the disk holds
        lambda i: store.update(f"INSERT DATA {{ GRAPH <{KEPT[0].value}> {{ [] <{EX}p> {i} }} }}"),
        lambda i: store.update(
            f"INSERT {{ GRAPH <{KEPT[1].value}> {{ ?s <{EX}q> ?o }} }} "
            f"WHERE {{ GRAPH <{OTHER.value}> {{ ?s ?p ?o }} }}"
        ),
        lambda i: store.update(f"PREFIX ex: <{EX}> DELETE WHERE {{ GRAPH ex:g2 {{ ?s ex:p ?o }} }}"),
        lambda i: store.update(f"ADD <{OTHER.value}> TO <{KEPT[0].value}>"),
        lambda i: store.clear(rng.choice(KEPT)),
        lambda i: store.discard(list(store.native.quads_for_pattern(None, None, None, rng.choice(KEPT)))[:2]),
    ]
    for i in range(120):
        rng.choice(writes)(i)
        assert_equal_copies(store)
    store.clear(None)
    assert_equal_copies(store)
    assert store.count(KEPT[0]) == 0


def test_queries_over_kept_graphs_only_are_answered_from_memory(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    store.keep_in_memory(KEPT)
    store.extend([Quad(NamedNode(f"{EX}a"), P, Literal(1), KEPT[0])])
    # A write past the store's interface reaches the disk only, which tells the copies apart.
    store.native.add(Quad(NamedNode(f"{EX}b"), P, Literal(2), KEPT[0]))
    ask = "SELECT ?s WHERE { ?s ?p ?o }"
    from_memory = {row["s"].value for row in store.query(ask, default_graph=KEPT[0])}  # type: ignore[union-attr]
    assert from_memory == {f"{EX}a"}
    assert store.count(KEPT[0]) == 1
    with_other = {row["s"].value for row in store.query(ask, default_graph=[KEPT[0], OTHER])}  # type: ignore[union-attr]
    assert with_other == {f"{EX}a", f"{EX}b"}  # a graph it does not keep: the disk answers
    whole = {row["s"].value for row in store.query("SELECT ?s { GRAPH ?g { ?s ?p ?o } }")}  # type: ignore[union-attr]
    assert whole == {f"{EX}a", f"{EX}b"}


def test_a_reopened_store_copies_its_graphs_again_and_memory_stores_keep_nothing(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    store.keep_in_memory(KEPT)
    store.extend([Quad(NamedNode(f"{EX}a"), P, Literal(1), KEPT[0])])
    store.close()
    again = EmbeddedStore(tmp_path / "store")
    assert again.kept(KEPT) is None
    again.keep_in_memory(KEPT)
    assert quads_of(again, KEPT[0], memory=True) == {Quad(NamedNode(f"{EX}a"), P, Literal(1), KEPT[0])}
    memory = EmbeddedStore()
    memory.keep_in_memory(KEPT)
    assert memory.kept(KEPT) is None


def test_which_updates_are_replayed_and_which_graphs_an_update_may_touch() -> None:
    kept = set(KEPT)
    bound = "DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o } }"
    assert replayable(bound, {"g": KEPT[0]}, kept)
    assert not replayable(bound, {"g": OTHER}, kept)
    assert not replayable(bound, {}, kept)  # GRAPH ?g over every graph
    assert not replayable("DELETE WHERE { ?s ?p ?o }", None, kept)  # the default graph
    assert not replayable(f"INSERT DATA {{ GRAPH <{KEPT[0].value}> {{ _:b <{EX}p> 1 }} }}", None, kept)
    assert not replayable(
        f"INSERT {{ GRAPH <{KEPT[0].value}> {{ ?s <{EX}t> ?t }} }} "
        f"WHERE {{ GRAPH <{KEPT[0].value}> {{ ?s ?p ?o BIND(NOW() AS ?t) }} }}",
        None,
        kept,
    )
    assert touched(bound, {}, kept) == kept
    assert touched(f"ADD <{OTHER.value}> TO <{KEPT[1].value}>", None, kept) == {KEPT[1]}
    assert touched(f"INSERT DATA {{ GRAPH <{KEPT[2].value}> {{ [] <{EX}p> 1 }} }}", None, kept) == {KEPT[2]}
    assert touched("CLEAR ALL", None, kept) == kept
    assert touched(f"PREFIX ex: <{EX}> CLEAR GRAPH ex:g1", None, kept) == kept


def test_a_pass_on_disk_keeps_its_graphs_and_decides_as_in_memory(tmp_path: Path) -> None:
    """The pass reads the kept copy and writes both: the disk ends as a pass in memory leaves it."""
    results = {}
    for name, store in (("memory", EmbeddedStore()), ("disk", EmbeddedStore(tmp_path / "store"))):
        w = world(store=store, stagnation=2)
        passes = []
        for r in range(1, 6):  # #b's claim, checked by the node, is better: it switches, then stagnates
            w.measure(GROUP_A, r, 0.20)
            w.measure(GROUP_B, r, 0.30, claimed=True, by=PEER)
            w.measure(GROUP_B, r, 0.25)
            passes.append(reason(store, w.node, round_number=r, now=NOW, rng=random.Random(r)))
        graphs = reasoning_graphs(w.node)
        if name == "disk":
            assert store.kept(graphs) is not None
            for graph in graphs:
                assert quads_of(store, graph, memory=True) == quads_of(store, graph, memory=False)
        results[name] = (
            [[d.kind for d in p.decisions] for p in passes],
            {g.value: store.count(g) for g in graphs},
        )
    assert results["memory"] == results["disk"]
    kinds = {kind for decided in results["disk"][0] for kind in decided}
    assert str(SPORE.SwitchGroupDecision) in kinds, results


@pytest.mark.parametrize("graph", [DefaultGraph(), OTHER])
def test_writes_outside_kept_graphs_leave_the_copy_alone(
    tmp_path: Path, graph: DefaultGraph | NamedNode
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    store.keep_in_memory(KEPT)
    store.extend([Quad(NamedNode(f"{EX}a"), P, Literal(1), graph)])
    memory = store.kept(KEPT)
    assert memory is not None and len(memory.native) == 0 and len(store.native) == 1
