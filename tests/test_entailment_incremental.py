"""Incremental entailment must give exactly what the full pass gives (which test_rules checks
against owlrl), round after round, in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode, Quad, Triple

from knowledge.store import EmbeddedStore
from reasoning.incremental import entail_added
from reasoning.rules import entail
from tests.test_rules import (
    BLUEPRINT,
    CATALOGUE,
    INFERRED,
    PRIVATE,
    SCHEMA,
    SUB_CLASS_OF,
    TYPE,
    ex,
    inferred,
    node_store,
    spore,
)

GRAPHS = [BLUEPRINT, CATALOGUE, PRIVATE]


def round_delta(n: int) -> list[Quad]:
    """What a round adds: a listening record, an evaluation, a claim and a decision."""
    return [
        Quad(ex(f"l{n}"), spore("artist"), ex(f"artist/{n}"), PRIVATE),
        Quad(ex(f"l{n}"), spore("listener"), ex("u"), PRIVATE),
        Quad(ex(f"eval{n}"), TYPE, spore("Evaluation"), PRIVATE),
        Quad(ex(f"eval{n}"), spore("round"), Literal(str(n)), PRIVATE),
        Quad(ex(f"d{n}"), TYPE, spore("Decision"), BLUEPRINT),
        Quad(ex(f"artist/{n}"), TYPE, NamedNode(SCHEMA + "MusicGroup"), CATALOGUE),
    ]


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
def test_rounds_of_additions_match_the_full_pass(on_disk: bool, tmp_path: Path) -> None:
    store = node_store(tmp_path / "inc" if on_disk else None)
    reference = node_store(tmp_path / "full" if on_disk else None)
    entail(store, graphs=GRAPHS, into=INFERRED)
    for n in range(1, 5):
        delta = round_delta(n)
        store.extend(delta)
        reference.extend(delta)
        entail_added(store, added=delta, graphs=GRAPHS, into=INFERRED)
        entail(reference, graphs=GRAPHS, into=INFERRED)
        assert inferred(store) == inferred(reference)
    facts = inferred(store)
    assert (ex("u"), TYPE, NamedNode(SCHEMA + "Person")) in facts  # from the delta's spore:listener
    assert (ex("artist/4"), TYPE, NamedNode(SCHEMA + "MusicGroup")) not in facts  # asserted


def test_a_now_asserted_consequence_leaves_the_inferred_graph() -> None:
    store = node_store()
    entail(store, graphs=GRAPHS, into=INFERRED)
    person = Triple(ex("u"), TYPE, NamedNode(SCHEMA + "Person"))
    assert (person.subject, person.predicate, person.object) in inferred(store)
    store.extend([Quad(person.subject, person.predicate, person.object, PRIVATE)])
    entail_added(store, added=[person], graphs=GRAPHS, into=INFERRED)
    assert (person.subject, person.predicate, person.object) not in inferred(store)


def test_a_schema_delta_falls_back_to_the_full_pass() -> None:
    store, reference = node_store(), node_store()
    entail(store, graphs=GRAPHS, into=INFERRED)
    delta = [
        Quad(spore("Blueprint"), SUB_CLASS_OF, ex("Recipe"), CATALOGUE),
        Quad(ex("Recipe"), SUB_CLASS_OF, ex("Text"), CATALOGUE),
    ]
    for target in (store, reference):
        target.extend(delta)
    entail_added(store, added=delta, graphs=GRAPHS, into=INFERRED)
    entail(reference, graphs=GRAPHS, into=INFERRED)
    assert inferred(store) == inferred(reference)
    assert (ex("b"), TYPE, ex("Text")) in inferred(store)


def test_the_working_store_is_not_the_node_store() -> None:
    store = node_store()
    entail(store, graphs=GRAPHS, into=INFERRED)
    before = {q for q in store.native if q.graph_name != INFERRED}
    delta = round_delta(1)
    store.extend(delta)
    entail_added(store, added=delta, graphs=GRAPHS, into=INFERRED)
    after = {q for q in store.native if q.graph_name != INFERRED}
    assert after == before | set(delta)
    assert isinstance(store, EmbeddedStore)
