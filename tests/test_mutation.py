"""Mutation operators from the ontology, stagnation-triggered mutation, shapes as the gate, selection."""

from __future__ import annotations

import random
from decimal import Decimal

from rdflib import RDF, BNode, Graph, Literal, URIRef
from rdflib.namespace import PROV

from knowledge.graphs import GraphKind
from knowledge.store import to_rdflib
from ontology import SPORE
from reasoning.mutation import current_blueprint, decide_mutation
from reasoning.operators import Operator, blueprint_graph, load_operators, mutate
from shapes.validation import default_validator
from tests.reasoning_samples import GROUP_A, NOW, World, world


def flat_then_stuck(w: World, rounds: int, *, value: float = 0.2) -> None:
    """Recall rises for two rounds, then stays put: stagnation once the window has passed."""
    for r in range(1, rounds + 1):
        w.measure(GROUP_A, r, min(value, 0.1 * r))


def own_blueprint(w: World) -> Graph:
    return blueprint_graph(to_rdflib(w.store, w.graph(GraphKind.BLUEPRINT)), URIRef(w.blueprint))


def test_every_operator_is_declared_in_the_ontology_with_its_range() -> None:
    operators = {op.name: op for op in load_operators()}
    assert set(operators) >= {
        "learningRate",
        "embeddingDimension",
        "layers",
        "localEpochs",
        "aggregationRule",
        "switchMargin",
        "stagnationRounds",
        "mutationRate",
    }
    rate = operators["learningRate"]
    assert (rate.factor, rate.minimum, rate.maximum) == (Decimal(2), Decimal("0.0001"), Decimal("0.1"))
    assert operators["layers"].step == Decimal(1)
    assert SPORE.TrimmedMean in operators["aggregationRule"].choices


def test_a_mutant_is_a_valid_revision_within_the_operators_ranges() -> None:
    w = world()
    source = own_blueprint(w)
    parent, child = URIRef(w.blueprint), URIRef(f"{w.node}/blueprints/2")

    mutant = mutate(source, parent, child, rng=random.Random(3), rate=1.0)

    graph = mutant.graph
    assert (child, PROV.wasRevisionOf, parent) in graph
    assert graph.value(child, SPORE.revision) == Literal(2)
    assert len(mutant.changes) >= 5  # rate 1: every operator whose setting the blueprint has
    note = str(graph.value(child, SPORE.changeNote))
    assert all(change.note() in note for change in mutant.changes)
    operators = {op.iri: op for op in load_operators()}
    for change in mutant.changes:
        op = operators[change.operator]
        if op.minimum is not None and not op.choices:
            assert op.minimum <= Decimal(change.new) <= op.maximum  # type: ignore[operator]
    assert default_validator().validate(graph).conforms
    # The copy shares no blank node with its parent, so both can live in one store.
    assert not {n for n in graph.all_nodes() if isinstance(n, BNode)} & set(source.all_nodes())


def test_a_low_rate_still_changes_one_setting_and_a_seed_fixes_which() -> None:
    w = world()
    source, parent, child = own_blueprint(w), URIRef(w.blueprint), URIRef(f"{w.node}/blueprints/2")
    first = mutate(source, parent, child, rng=random.Random(7), rate=0.0)
    again = mutate(source, parent, child, rng=random.Random(7), rate=0.0)
    assert len(first.changes) == 1
    assert first.changes == again.changes


def test_stagnation_triggers_a_mutation_that_becomes_the_current_blueprint() -> None:
    w = world(stagnation=3)
    flat_then_stuck(w, 6)  # best 0.2 from round 2; rounds 4-6 bring nothing new

    outcome = decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1))

    assert outcome.blueprint == URIRef(f"{w.node}/blueprints/6")
    assert current_blueprint(w.store, w.node) == outcome.blueprint
    decision = outcome.decision
    assert decision is not None and decision.kind == str(SPORE.MutationDecision)
    assert "Mutated my blueprint" in decision.explanation and "3 rounds" in decision.explanation
    assert set(decision.evidence) == set(w.written)
    recorded = to_rdflib(w.store, [w.graph(GraphKind.DECISIONS), w.graph(GraphKind.BLUEPRINT)])
    assert default_validator().validate(recorded).conforms


def test_no_mutation_while_the_node_improves_or_right_after_one() -> None:
    w = world(stagnation=3)
    for r in range(1, 7):
        w.measure(GROUP_A, r, 0.1 + 0.01 * r)
    assert decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1)).decision is None

    stuck = world(stagnation=3)
    flat_then_stuck(stuck, 6)
    assert decide_mutation(stuck.store, stuck.node, round_number=6, now=NOW, rng=random.Random(1)).blueprint
    stuck.measure(GROUP_A, 7, 0.2)
    late = decide_mutation(stuck.store, stuck.node, round_number=7, now=NOW, rng=random.Random(1))
    assert late.decision is None  # the window restarts at the revision


def test_a_mutation_that_violates_a_shape_is_discarded_with_the_reason_recorded() -> None:
    w = world(stagnation=3)
    flat_then_stuck(w, 6)
    # An operator whose declared range lies outside what the blueprint shape allows (1..1024).
    huge = Operator(
        iri="https://here.test/operators/huge",
        setting=SPORE.embeddingDimension,
        minimum=Decimal(2000),
        maximum=Decimal(5000),
        factor=Decimal(32),
    )

    outcome = decide_mutation(
        w.store, w.node, round_number=6, now=NOW, rng=random.Random(1), operators=[huge]
    )

    assert outcome.blueprint is None
    assert outcome.discarded is not None and "embeddingDimension" in outcome.discarded
    assert current_blueprint(w.store, w.node) == URIRef(w.blueprint)
    assert outcome.decision is not None
    assert "discarded" in outcome.decision.explanation and "1 to 1024" in outcome.decision.explanation
    assert outcome.decision.chosen is not None and outcome.decision.chosen.target == w.blueprint
    blueprints = to_rdflib(w.store, w.graph(GraphKind.BLUEPRINT))
    assert len(list(blueprints.subjects(RDF.type, SPORE.Blueprint))) == 1  # nothing written


def test_selection_adopts_a_verified_better_peers_blueprint_with_a_mutation() -> None:
    w = world(stagnation=3, margin="0.05")
    flat_then_stuck(w, 6)
    peer_blueprint = w.add_peer_blueprint(learning_rate="0.01")
    snapshot = w.peer_snapshot()
    check = w.measure("https://there.test/groups/b", 6, 0.3, snapshot=snapshot)

    outcome = decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1), operators=[])

    assert outcome.adopted == peer_blueprint
    assert outcome.blueprint is not None and outcome.mutant is not None
    graph = outcome.mutant.graph
    child = outcome.blueprint
    assert (child, PROV.wasRevisionOf, URIRef(peer_blueprint)) in graph
    assert str(graph.value(child, SPORE.nodeName)) == "ann"  # its own name and hashtags stay
    config = graph.value(child, SPORE.trains)
    assert graph.value(config, SPORE.learningRate) == Literal(
        "0.01", datatype=URIRef("http://www.w3.org/2001/XMLSchema#decimal")
    )
    assert outcome.decision is not None and check in outcome.decision.evidence
    assert "Adopted a peer's blueprint" in outcome.decision.explanation


def test_a_peer_that_is_not_better_by_the_margin_is_not_adopted() -> None:
    w = world(stagnation=3, margin="0.5")
    flat_then_stuck(w, 6)
    w.add_peer_blueprint()
    snapshot = w.peer_snapshot()
    w.measure("https://there.test/groups/b", 6, 0.25, snapshot=snapshot)

    outcome = decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1))

    assert outcome.adopted is None and outcome.blueprint is not None


def test_a_revision_that_made_things_worse_is_undone_from_its_parent() -> None:
    w = world(stagnation=3)
    flat_then_stuck(w, 6)
    first = decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1))
    assert first.blueprint is not None
    for r in (7, 8, 9):
        w.measure(GROUP_A, r, 0.1)  # the mutant does worse than the 0.2 its parent reached

    undo = decide_mutation(w.store, w.node, round_number=9, now=NOW, rng=random.Random(1))

    assert undo.adopted == w.blueprint and undo.blueprint is not None and undo.mutant is not None
    assert (undo.blueprint, PROV.wasRevisionOf, URIRef(w.blueprint)) in undo.mutant.graph
    assert undo.decision is not None and undo.decision.explanation.startswith("Returned to an earlier")
    assert first.decision is not None and first.decision.iri in undo.decision.evidence


def test_operators_are_read_from_whatever_ontology_declares_them() -> None:
    ontology = Graph()
    operator = URIRef("https://here.test/operators/wider-rate")
    ontology.add((operator, RDF.type, SPORE.MutationOperator))
    ontology.add((operator, SPORE.mutates, SPORE.learningRate))
    ontology.add((operator, SPORE.factor, Literal(10)))
    ontology.add((operator, SPORE.maximum, Literal("0.5")))

    [loaded] = load_operators(ontology)

    assert loaded == Operator(str(operator), SPORE.learningRate, None, Decimal("0.5"), Decimal(10), None, ())


def test_after_two_bad_revisions_the_best_earlier_blueprint_wins() -> None:
    w = world(stagnation=3)
    flat_then_stuck(w, 6)  # the original reached 0.2
    assert decide_mutation(w.store, w.node, round_number=6, now=NOW, rng=random.Random(1)).blueprint
    for r in (7, 8, 9):
        w.measure(GROUP_A, r, 0.195)  # a little worse, within the margin: no undo, another mutation
    second = decide_mutation(w.store, w.node, round_number=9, now=NOW, rng=random.Random(2))
    assert second.adopted is None and second.blueprint is not None
    for r in (10, 11, 12):
        w.measure(GROUP_A, r, 0.1)

    undo = decide_mutation(w.store, w.node, round_number=12, now=NOW, rng=random.Random(3))

    assert undo.adopted == w.blueprint  # the grandparent (0.2) beats the parent (0.195)
    assert undo.decision is not None and {o.target for o in undo.decision.options} >= {
        w.blueprint,
        f"{w.node}/blueprints/6",
    }
