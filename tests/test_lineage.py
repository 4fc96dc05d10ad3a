"""Lineage: every revision links to its parent, and the lineage query walks the chain back."""

from __future__ import annotations

import random

from pyoxigraph import NamedNode

import queries
from knowledge.graphs import GraphKind
from reasoning.lineage import lineage
from reasoning.mutation import current_blueprint, decide_mutation
from tests.reasoning_samples import GROUP_A, NOW, world


def test_three_mutations_make_a_lineage_of_four_generations_newest_first() -> None:
    w = world(stagnation=2)
    rng = random.Random(5)
    value_by_round = {1: 0.1, 2: 0.2}
    made = []
    for r in range(1, 12):
        w.measure(GROUP_A, r, value_by_round.get(r, 0.2))
        outcome = decide_mutation(w.store, w.node, round_number=r, now=NOW, rng=rng)
        if outcome.blueprint is not None:
            made.append(str(outcome.blueprint))
    assert len(made) >= 3
    newest = str(current_blueprint(w.store, w.node))
    assert newest == made[-1]

    chain = lineage(w.store, newest, node=w.node)

    assert [rev.blueprint for rev in chain] == [*reversed(made), w.blueprint]
    assert [rev.generation for rev in chain] == list(range(len(made) + 1))
    assert [rev.revision for rev in chain] == list(range(len(made) + 1, 0, -1))
    assert all(rev.change_note and "->" in rev.change_note for rev in chain[:-1])
    assert chain[-1].change_note is None and chain[-1].parent is None
    assert all(rev.parent == older.blueprint for rev, older in zip(chain, chain[1:], strict=False))


def test_an_adopted_blueprint_continues_the_peers_lineage() -> None:
    w = world(stagnation=3)
    for r in range(1, 7):
        w.measure(GROUP_A, r, min(0.2, 0.1 * r))
    peer_blueprint = w.add_peer_blueprint()
    snapshot = w.peer_snapshot()
    w.measure("https://there.test/groups/b", 6, 0.3, snapshot=snapshot)
    outcome = decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(2))
    assert outcome.adopted == peer_blueprint

    chain = lineage(w.store, str(outcome.blueprint), node=w.node)

    assert [rev.blueprint for rev in chain] == [str(outcome.blueprint), peer_blueprint]
    assert chain[1].node_name == "bob" and chain[0].node_name == "ann"


def test_the_lineage_query_has_a_header_and_needs_its_blueprint() -> None:
    described = queries.describe("lineage")
    assert described.purpose and described.required == ["blueprint"]
    w = world()
    assert [rev.blueprint for rev in lineage(w.store, w.blueprint, node=w.node)] == [w.blueprint]
    # An IRI the graphs do not mention has no lineage at all.
    alone = lineage(w.store, "https://nowhere.test/b", graphs=[NamedNode(w.graph(GraphKind.BLUEPRINT).value)])
    assert alone == []
