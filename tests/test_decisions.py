"""One reasoning pass: entailment and every rule over a node's graphs, decisions recorded and readable."""

from __future__ import annotations

import random

import pytest
from pyoxigraph import NamedNode

import queries
from knowledge.graphs import GraphKind
from knowledge.store import to_rdflib
from ontology import SPORE
from reasoning.decisions import inferred_graph, read_decisions, reason
from reasoning.records import Decision, Option, record, rule_dataset
from shapes.validation import default_validator
from tests.reasoning_samples import GROUP_A, GROUP_B, NOW, PEER, world


def test_a_pass_entails_then_decides_and_every_decision_passes_the_shapes() -> None:
    w = world(patience=2, stagnation=3)
    for r in range(1, 4):
        w.measure(GROUP_A, r, 0.2)
        w.measure(GROUP_B, r, 0.5, claimed=True, by=PEER)
        w.measure(GROUP_B, r, 0.3)

    result = reason(w.store, w.node, round_number=3, now=NOW, rng=random.Random(0))

    assert result.entailment is not None and result.entailment.triples > 0
    assert w.store.count(inferred_graph(w.node)) == result.entailment.triples
    assert result.switch.join == GROUP_B
    assert result.mutation.decision is None  # a node that is switching does not mutate as well
    assert [d.kind for d in result.decisions] == [str(SPORE.SwitchGroupDecision)]
    decisions = to_rdflib(w.store, w.graph(GraphKind.DECISIONS))
    report = default_validator().validate(decisions)
    assert report.conforms, report.lines()


def test_a_pass_never_reads_or_writes_the_private_graph() -> None:
    w = world()
    private = w.graph(GraphKind.PRIVATE)
    assert private not in rule_dataset(w.node)
    w.measure(GROUP_A, 1, 0.2)
    before = w.store.count(private)
    reason(w.store, w.node, round_number=1, now=NOW, rng=random.Random(0))
    assert w.store.count(private) == before == 0


def test_decisions_read_back_with_options_and_evidence() -> None:
    w = world(patience=1)
    own = w.measure(GROUP_A, 1, 0.2)
    claim = w.measure(GROUP_B, 1, 0.6, claimed=True, by=PEER)
    reason(w.store, w.node, round_number=1, now=NOW, rng=random.Random(0))

    [view] = read_decisions(w.store, node=w.node, dataset=rule_dataset(w.node))

    assert view.kind_name == "SwitchGroupDecision" and view.round == 1
    assert view.explanation.startswith("Stayed in #a")
    assert {(o.target, o.chosen) for o in view.options} == {(GROUP_A, True), (GROUP_B, False)}
    by_iri = {e.iri: e for e in view.evidence}
    assert by_iri[claim].claimed and by_iri[claim].value == 0.6 and by_iri[claim].by == PEER
    assert not by_iri[own].claimed and by_iri[own].round == 1


def test_rerecording_a_decision_replaces_it_whole() -> None:
    w = world()
    first = Decision(
        iri=f"{w.node}/decisions/1-switch",
        kind=str(SPORE.SwitchGroupDecision),
        node=w.node,
        round=1,
        at=NOW,
        options=(Option(GROUP_A, 0.1), Option(GROUP_B, 0.2)),
        chosen=Option(GROUP_B, 0.2),
        evidence=("https://e.test/1",),
        explanation="first",
    )
    record(w.store, first)
    second = Decision(
        **{
            **first.__dict__,
            "options": (Option(GROUP_A, 0.3),),
            "chosen": Option(GROUP_A, 0.3),
            "explanation": "second",
        }
    )
    record(w.store, second)
    [view] = read_decisions(w.store, dataset=[w.graph(GraphKind.DECISIONS)])
    assert view.explanation == "second"
    assert [(o.target, o.score, o.chosen) for o in view.options] == [(GROUP_A, 0.3, True)]


def test_a_decision_without_evidence_or_with_a_foreign_choice_is_refused() -> None:
    base = dict(
        iri="https://n.test/d",
        kind=str(SPORE.SwitchGroupDecision),
        node="https://n.test",
        round=1,
        at=NOW,
        options=(Option(GROUP_A),),
        chosen=Option(GROUP_A),
        explanation="x",
    )
    with pytest.raises(ValueError, match="evidence"):
        Decision(**base, evidence=())
    with pytest.raises(ValueError, match="did not weigh"):
        Decision(**{**base, "chosen": Option(GROUP_B)}, evidence=("https://e.test/1",))


def test_every_decision_rule_has_a_header_naming_its_required_bindings() -> None:
    for name in ("decide-switch", "decide-mutation"):
        described = queries.describe(name)
        assert described.purpose and described.result
        assert set(described.required) == {"node", "round"}
    assert queries.describe("decide-explain").required == []


def test_the_explanation_is_one_line_within_the_shape_limit() -> None:
    w = world()
    long = Decision(
        iri=f"{w.node}/decisions/2-switch",
        kind=str(SPORE.SwitchGroupDecision),
        node=w.node,
        round=2,
        at=NOW,
        options=(Option(GROUP_A),),
        chosen=Option(GROUP_A),
        evidence=("https://e.test/1",),
        explanation="word\n" * 200,
    )
    record(w.store, long)
    [view] = read_decisions(w.store, node=w.node, dataset=[w.graph(GraphKind.DECISIONS)])
    assert "\n" not in view.explanation and len(view.explanation) <= 300
    assert NamedNode(long.iri)
