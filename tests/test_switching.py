"""Switching groups: only on the node's own evidence, with margin and patience from the policy."""

from __future__ import annotations

from pyoxigraph import NamedNode
from rdflib import RDF

from knowledge.graphs import GraphKind
from knowledge.store import to_rdflib
from ontology import SPORE
from reasoning.switching import decide_switch
from shapes.validation import default_validator
from tests.reasoning_samples import GROUP_A, GROUP_B, NOW, PEER, World, world


def claims_and_checks(w: World, rounds: range, *, own: float, claimed: float, measured: float | None) -> None:
    for r in rounds:
        w.measure(GROUP_A, r, own)
        w.measure(GROUP_B, r, claimed, claimed=True, by=PEER)
        if measured is not None:
            w.measure(GROUP_B, r, measured)


def test_a_switch_that_must_happen_leaves_and_joins_with_evidence() -> None:
    w = world(margin="0.05", patience=3)
    claims_and_checks(w, range(1, 4), own=0.20, claimed=0.30, measured=0.25)

    outcome = decide_switch(w.store, w.node, round_number=3, now=NOW)

    assert outcome.switches and outcome.leave == GROUP_A and outcome.join == GROUP_B
    decision = outcome.decision
    assert decision is not None and decision.kind == str(SPORE.SwitchGroupDecision)
    assert decision.chosen is not None and decision.chosen.target == GROUP_B
    assert decision.chosen.score == 0.25
    assert {o.target for o in decision.options} == {GROUP_A, GROUP_B}
    # Evidence: the node's own measurements of both groups in the three rounds, and this round's claim.
    mine = {iri for iri in w.written if iri.startswith(w.node)}
    assert set(decision.evidence) == mine | {w.written[7]}
    assert "#b" in decision.explanation and "3 rounds" in decision.explanation


def test_the_decision_is_recorded_and_passes_the_decision_shape() -> None:
    w = world()
    claims_and_checks(w, range(1, 4), own=0.20, claimed=0.30, measured=0.25)
    decide_switch(w.store, w.node, round_number=3, now=NOW)

    recorded = to_rdflib(w.store, w.graph(GraphKind.DECISIONS))
    decisions = list(recorded.subjects(RDF.type, SPORE.SwitchGroupDecision))
    assert len(decisions) == 1
    report = default_validator().validate(recorded)
    assert report.conforms, report.lines()


def test_a_claim_alone_never_moves_the_node() -> None:
    w = world(margin="0.05", patience=1)
    claims_and_checks(w, range(1, 6), own=0.20, claimed=0.90, measured=None)

    outcome = decide_switch(w.store, w.node, round_number=5, now=NOW)

    assert not outcome.switches
    assert outcome.decision is not None and outcome.decision.chosen is not None
    assert outcome.decision.chosen.target == GROUP_A
    assert "not measured" in outcome.decision.explanation


def test_a_claim_the_cross_check_does_not_reproduce_is_not_believed() -> None:
    w = world(margin="0.05", patience=1)
    claims_and_checks(w, range(1, 4), own=0.20, claimed=0.40, measured=0.19)

    outcome = decide_switch(w.store, w.node, round_number=3, now=NOW)

    assert not outcome.switches
    assert outcome.decision is not None and "0.190 vs 0.200" in outcome.decision.explanation


def test_patience_needs_the_margin_in_every_round_of_the_window() -> None:
    w = world(margin="0.05", patience=3)
    w.measure(GROUP_A, 1, 0.20)
    w.measure(GROUP_B, 1, 0.20)  # round 1: no lead
    claims_and_checks(w, range(2, 4), own=0.20, claimed=0.30, measured=0.25)

    assert not decide_switch(w.store, w.node, round_number=3, now=NOW).switches
    claims_and_checks(w, range(4, 5), own=0.20, claimed=0.30, measured=0.25)
    assert decide_switch(w.store, w.node, round_number=4, now=NOW).switches


def test_the_margin_comes_from_the_policy() -> None:
    strict = world(margin="0.5", patience=1)
    claims_and_checks(strict, range(1, 2), own=0.20, claimed=0.30, measured=0.25)
    assert not decide_switch(strict.store, strict.node, round_number=1, now=NOW).switches

    lax = world(margin="0.1", patience=1)
    claims_and_checks(lax, range(1, 2), own=0.20, claimed=0.30, measured=0.25)
    assert decide_switch(lax.store, lax.node, round_number=1, now=NOW).switches


def test_no_flapping_when_two_groups_trade_the_lead() -> None:
    w = world(margin="0.05", patience=2)
    switches = 0
    for r in range(1, 13):
        lead = 0.23 if r % 2 else 0.18  # B beats A by 15 % in odd rounds and loses in even ones
        w.measure(GROUP_A, r, 0.20)
        w.measure(GROUP_B, r, 0.30, claimed=True, by=PEER)
        w.measure(GROUP_B, r, lead)
        switches += decide_switch(w.store, w.node, round_number=r, now=NOW).switches
    assert switches == 0


def test_after_a_switch_a_small_lead_of_the_old_group_does_not_bring_the_node_back() -> None:
    w = world(margin="0.05", patience=2)
    claims_and_checks(w, range(1, 3), own=0.20, claimed=0.30, measured=0.25)
    assert decide_switch(w.store, w.node, round_number=2, now=NOW).switches
    w.move_to(GROUP_B)
    for r in range(3, 8):
        w.measure(GROUP_B, r, 0.25)
        w.measure(GROUP_A, r, 0.26)  # within the 5 % margin
        w.measure(GROUP_A, r, 0.40, claimed=True, by="https://here.test/nodes/carl")
        assert not decide_switch(w.store, w.node, round_number=r, now=NOW).switches


def test_a_quiet_round_records_nothing() -> None:
    w = world()
    w.measure(GROUP_A, 1, 0.2)
    w.measure(GROUP_B, 1, 0.1, claimed=True, by=PEER)  # claims less than the node has: no temptation

    outcome = decide_switch(w.store, w.node, round_number=1, now=NOW)

    assert outcome.decision is None
    assert w.store.count(w.graph(GraphKind.DECISIONS)) == 0


def test_a_node_without_a_group_has_nothing_to_switch() -> None:
    w = world()
    w.store.update(
        "DELETE WHERE { GRAPH ?g { ?n <https://w3id.org/spore/ns#memberOf> ?x } }".replace(
            "?g", f"<{w.graph(GraphKind.BLUEPRINT).value}>"
        ).replace("?n", f"<{NamedNode(w.node).value}>")
    )
    claims_and_checks(w, range(1, 4), own=0.20, claimed=0.30, measured=0.25)
    assert decide_switch(w.store, w.node, round_number=3, now=NOW).decision is None
