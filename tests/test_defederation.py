"""Defederation rules (reasoning/defederation.py) on small hand-made evidence: who gets blocked, who not."""

from __future__ import annotations

import pytest
import torch

from agents.protocol.context import admission_policy
from agents.protocol.defence import admission_with_host_policy, screening_statistic
from agents.protocol.messages import BlueprintSummary, GroupInfo, Join
from agents.protocol.state import OwnedGroup
from reasoning.defederation import (
    Accusation,
    DefederationPolicy,
    Ledger,
    enforce_host_policy,
    receive_accusation,
    record_screening,
    review_appeals,
)
from reasoning.screening import Evidence, Offence, check_claims, find_outliers, robust_z
from reasoning.standing import PeerRecord, host_of

ME = "https://me.test/actor"
SPORE_NS = "https://w3id.org/spore/ns#"
POLICY = DefederationPolicy(outlier_threshold=3.5, accusation_quorum=2, strikes_to_block=2)


def actor(name: str) -> str:
    return f"https://{name}.test/actor"


def accusation(accuser: str, accused: str, *, at: float = 1.0) -> Accusation:
    return Accusation(
        id=f"{accuser}/activities/flag-{accused.split('//')[1].split('.')[0]}",
        accuser=accuser,
        accused=accused,
        offence=Offence.OUTLIER_UPDATE,
        round=1,
        evidence=(f"{accused}/artifacts/{'0' * 64}",),
        explanation="its update is an outlier",
        at=at,
    )


def ledger_with_clean_record(*peers: str, rounds: int = 3) -> Ledger:
    """A ledger in which this node saw each of ``peers`` pass its screening ``rounds`` times."""
    return Ledger(me=ME, peers={p: PeerRecord(clean=rounds) for p in peers})


# Screening statistics -------------------------------------------------------------------------------


def honest_and_attack_changes() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(200, generator=generator)
    changes = {actor(f"h{i}"): direction + 0.3 * torch.randn(200, generator=generator) for i in range(7)}
    changes[actor("flipper")] = -4 * (direction + 0.3 * torch.randn(200, generator=generator))
    changes[actor("booster")] = 10 * (direction + 0.3 * torch.randn(200, generator=generator))
    return changes


@pytest.mark.parametrize("statistic", ["median-distance", "krum"])
def test_sign_flipped_and_scaled_updates_are_outliers_and_honest_ones_are_not(statistic: str) -> None:
    changes = honest_and_attack_changes()
    scores = screening_statistic(changes, statistic)
    evidence = find_outliers(scores, round_number=4, threshold=3.5, what="distance")
    assert {e.offender for e in evidence} == {actor("flipper"), actor("booster")}
    assert all(e.offence is Offence.OUTLIER_UPDATE and e.round == 4 and e.score > 3.5 for e in evidence)


def test_robust_z_needs_three_values_and_measures_in_mads() -> None:
    assert robust_z({"a": 1.0, "b": 5.0}) == {}
    z = robust_z({"a": 1.0, "b": 2.0, "c": 3.0, "d": 100.0})
    # median 2.5, MAD 1.0: d lies (100 - 2.5) / 1.4826 robust deviations above the median
    assert z["d"] == pytest.approx(97.5 / 1.4826)
    assert z["a"] < 0


def test_a_claim_the_cross_check_does_not_reproduce_is_evidence_and_unmeasurable_ones_are_not() -> None:
    found = check_claims(
        {"recall@20": 0.9, "loss": 0.01},
        {"recall@20": 0.2},
        peer=actor("boaster"),
        round_number=2,
        tolerance=0.2,
    )
    assert found is not None and found.offence is Offence.UNREPRODUCED_METRIC and "0.900" in found.detail
    assert (
        check_claims({"recall@20": 0.3}, {"recall@20": 0.2}, peer="x", round_number=0, tolerance=0.2) is None
    )
    assert check_claims({"loss": 0.0}, {"recall@20": 0.2}, peer="x", round_number=0, tolerance=0.2) is None
    # an error measured on someone else's data is not comparable: never judged, whichever is larger
    assert check_claims({"mse": 9.0}, {"mse": 0.1}, peer="x", round_number=0, tolerance=0.2) is None


# Own evidence -----------------------------------------------------------------------------------------


def strike(ledger: Ledger, peer: str, round_number: int) -> tuple[Ledger, list, list]:
    evidence = [
        Evidence(peer, Offence.OUTLIER_UPDATE, round_number, "far from the median", 9.0, ("urn:x:1",))
    ]
    return record_screening(
        ledger, POLICY, round_number=round_number, screened=[peer, actor("h1")], evidence=evidence, now=10.0
    )


def test_one_strike_leaves_the_update_out_but_blocks_nobody_two_strikes_block_and_accuse() -> None:
    ledger = Ledger(me=ME)
    ledger, accusations, blocks = strike(ledger, actor("mallory"), 1)
    assert (accusations, blocks, ledger.blocked) == ([], [], frozenset())
    ledger, accusations, blocks = strike(ledger, actor("mallory"), 2)
    assert [b.actor for b in blocks] == [actor("mallory")]
    assert [(a.accuser, a.accused, a.evidence) for a in accusations] == [(ME, actor("mallory"), ("urn:x:1",))]
    assert ledger.record(actor("h1")).clean == 2 and ledger.record(actor("mallory")).strikes == 2
    assert [e.kind for e in ledger.history] == ["block"]


# Hearsay ------------------------------------------------------------------------------------------------


def test_one_accusation_must_not_suffice_alone() -> None:
    accuser = actor("alice")
    ledger = ledger_with_clean_record(accuser)
    ledger, block = receive_accusation(ledger, POLICY, accusation(accuser, actor("mallory")), 1.0)
    assert block is None and actor("mallory") not in ledger.blocked


def test_a_quorum_of_independent_accusers_in_good_standing_blocks() -> None:
    alice, bob = actor("alice"), actor("bob")
    ledger = ledger_with_clean_record(alice, bob)
    ledger, first = receive_accusation(ledger, POLICY, accusation(alice, actor("mallory")), 1.0)
    ledger, second = receive_accusation(ledger, POLICY, accusation(bob, actor("mallory"), at=2.0), 2.0)
    assert first is None and second is not None
    assert second.accusations == (f"{alice}/activities/flag-mallory", f"{bob}/activities/flag-mallory")
    assert actor("mallory") in ledger.blocked and "quorum of 2" in ledger.history[-1].explanation


def test_accusers_on_one_host_count_once_and_strangers_not_at_all() -> None:
    sybil_a, sybil_b = "https://sybil.test/nodes/a", "https://sybil.test/nodes/b"
    stranger = actor("stranger")
    ledger = ledger_with_clean_record(sybil_a, sybil_b)
    for accuser in (sybil_a, sybil_b, stranger):
        ledger, block = receive_accusation(ledger, POLICY, accusation(accuser, actor("victim")), 1.0)
        assert block is None
    assert host_of(sybil_a) == host_of(sybil_b) == "sybil.test"
    assert ledger.standing(stranger) == 0.5 and ledger.blocked == frozenset()


def test_a_liars_accusations_against_honest_nodes_do_not_block_them_and_cost_it_its_standing() -> None:
    liar, honest, bystander = actor("liar"), actor("honest"), actor("carol")
    ledger = ledger_with_clean_record(liar, honest, bystander, rounds=2)
    assert ledger.standing(liar) > POLICY.good_standing
    ledger, block = receive_accusation(ledger, POLICY, accusation(liar, honest), 1.0)
    assert block is None
    # the node itself vouches for ``honest``: even a second accuser does not make it block
    ledger, block = receive_accusation(ledger, POLICY, accusation(bystander, honest), 2.0)
    assert block is None and honest not in ledger.blocked
    assert ledger.standing(liar) <= POLICY.good_standing
    # once discredited, the liar's word no longer counts, even about a peer the node never saw
    unseen = actor("unseen")
    ledger, _ = receive_accusation(ledger, POLICY, accusation(liar, unseen), 3.0)
    ledger, block = receive_accusation(ledger, POLICY, accusation(actor("dave"), unseen), 3.0)
    assert block is None


def test_accusations_the_node_corroborates_raise_the_accusers_standing() -> None:
    alice, mallory = actor("alice"), actor("mallory")
    ledger, _, _ = strike(ledger_with_clean_record(alice, rounds=0), mallory, 1)
    before = ledger.standing(alice)
    ledger, _ = receive_accusation(ledger, POLICY, accusation(alice, mallory), 1.0)
    assert ledger.standing(alice) > before


# Hosts and appeals -----------------------------------------------------------------------------------


def test_a_host_defederated_by_policy_is_blocked_and_refused_admission() -> None:
    policy = DefederationPolicy(
        blocked_hosts=frozenset({"spam.test"}), iri="https://me.test/blueprint#policy"
    )
    ledger, block = enforce_host_policy(Ledger(me=ME), policy, "https://spam.test/nodes/x", 1.0)
    assert block is not None and block.by_policy and "spam.test" in block.reason
    assert ledger.history[-1].evidence == ("https://me.test/blueprint#policy",)
    assert enforce_host_policy(Ledger(me=ME), policy, actor("fine"), 1.0)[1] is None
    shapes = (("artist_weight", (3,)),)
    group = OwnedGroup(
        info=GroupInfo(
            iri=f"{ME}/groups/jazz",
            hashtag="#jazz",
            owner=ME,
            aggregation_rule="https://w3id.org/spore/ns#WeightedMean",
            shared_shapes=shapes,
        ),
        members=frozenset({ME}),
    )
    admit = admission_with_host_policy(policy, admission_policy())

    def join(who: str) -> Join:
        summary = BlueprintSummary(f"{who}/blueprint", "https://w3id.org/spore/ns#LinearModel", shapes)
        return Join(id=f"{who}/a/1", actor=who, to=(ME,), group=group.info.iri, blueprint=summary)

    assert admit(group, join("https://spam.test/nodes/x")) == "host spam.test is defederated by policy"
    assert admit(group, join(actor("fine"))) is None


def test_a_block_is_lifted_after_the_appeal_window_and_one_more_strike_blocks_again() -> None:
    policy = DefederationPolicy(appeal_window=100.0, strikes_to_block=2)
    mallory = actor("mallory")
    ledger = Ledger(me=ME)
    for round_number in (1, 2):
        ledger, _, _ = record_screening(
            ledger,
            policy,
            round_number=round_number,
            screened=[mallory],
            evidence=[Evidence(mallory, Offence.OUTLIER_UPDATE, round_number, "far", 9.0)],
            now=10.0,
        )
    assert mallory in ledger.blocked
    assert review_appeals(ledger, policy, 109.0)[1] == []
    ledger, lifted = review_appeals(ledger, policy, 110.0)
    assert [b.actor for b in lifted] == [mallory] and mallory not in ledger.blocked
    assert [e.kind for e in ledger.history] == ["block", "unblock"]
    assert "appeal window" in ledger.history[-1].explanation
    ledger, _, blocks = record_screening(
        ledger,
        policy,
        round_number=5,
        screened=[mallory],
        evidence=[Evidence(mallory, Offence.OUTLIER_UPDATE, 5, "far", 9.0)],
        now=120.0,
    )
    assert [b.actor for b in blocks] == [mallory]


def test_policy_values_are_checked() -> None:
    with pytest.raises(ValueError, match="quorum"):
        DefederationPolicy(accusation_quorum=0)
    with pytest.raises(ValueError, match="appeal window"):
        DefederationPolicy(appeal_window=-1.0)


POLICY_BLUEPRINT = """
@prefix spore: <https://w3id.org/spore/ns#> .
<https://me.test/blueprint> spore:policy [ a spore:Policy ;
    spore:outlierThreshold 4.5 ; spore:accusationQuorum 3 ; spore:blockedHost "spam.test" , "Evil.test" ;
    spore:appealWindow %s ; spore:strikesToBlock 3 ;
    spore:switchMargin 0.05 ; spore:stagnationRounds 5 ; spore:mutationRate 0.1 ] .
"""


def test_the_policy_comes_from_the_blueprint_and_the_shapes_check_its_new_settings() -> None:
    from rdflib import Graph, URIRef

    from reasoning.defederation import policy_from_blueprint
    from shapes.validation import default_validator

    graph = Graph().parse(data=POLICY_BLUEPRINT % "600.0", format="turtle")
    policy = policy_from_blueprint(graph, URIRef("https://me.test/blueprint"))
    assert (policy.outlier_threshold, policy.accusation_quorum, policy.strikes_to_block) == (4.5, 3, 3)
    assert policy.appeal_window == 600.0 and policy.blocked_hosts == {"spam.test", "evil.test"}
    assert policy_from_blueprint(Graph(), URIRef("https://x.test/b")) == DefederationPolicy()
    # (the blueprint around the policy is incomplete; only the policy's own settings matter here)
    assert not any(
        "Policy" in line or "appeal" in line for line in default_validator().validate(graph).lines()
    )
    broken = Graph().parse(data=POLICY_BLUEPRINT % "-1.0", format="turtle")
    report = default_validator().validate(broken)
    assert not report.conforms and any("appealWindow" in line for line in report.lines())


def test_nodes_served_from_a_blueprint_read_their_defederation_policy_from_it() -> None:
    from pathlib import Path

    from agents.node_blueprint import read_blueprint

    shipped = Path(__file__).parent.parent / "examples" / "blueprints" / "jazz_explorer.ttl"
    policy = read_blueprint(shipped).defederation
    assert (policy.accusation_quorum, policy.outlier_threshold) == (3, 3.5)


def test_in_a_small_group_an_honest_update_a_little_further_out_is_no_outlier() -> None:
    # three honest updates almost at one distance and a fourth half as far again: not evidence
    distances = {actor("a"): 1.00, actor("b"): 1.01, actor("c"): 1.02, actor("d"): 1.5}
    assert find_outliers(distances, round_number=0, threshold=3.5, what="distance") == []
    boosted = {**distances, actor("d"): 4.0}
    assert [e.offender for e in find_outliers(boosted, round_number=0, threshold=3.5, what="distance")] == [
        actor("d")
    ]


# Defence memory across restarts ---------------------------------------------------------------------


def blocked_mallory(policy: DefederationPolicy, *, now: float) -> Ledger:
    """A ledger of ``ME`` that blocked mallory on two strikes at ``now``, after an accusation by alice."""
    mallory = actor("mallory")
    ledger = ledger_with_clean_record(actor("alice"))
    ledger, _ = receive_accusation(ledger, policy, accusation(actor("alice"), actor("bob")), now - 5)
    for round_number in (1, 2):
        ledger, _, _ = record_screening(
            ledger,
            policy,
            round_number=round_number,
            screened=[mallory, actor("alice")],
            evidence=[Evidence(mallory, Offence.OUTLIER_UPDATE, round_number, "far", 9.0, ("x:a",))],
            now=now,
        )
    assert mallory in ledger.blocked
    return ledger


def test_the_ledger_survives_json_with_every_time_moved_by_the_shift() -> None:
    from reasoning.ledger_json import ledger_from_json, ledger_to_json

    ledger = blocked_mallory(DefederationPolicy(appeal_window=60.0), now=80.0)
    assert ledger_from_json(ledger_to_json(ledger)) == ledger
    moved = ledger_from_json(ledger_to_json(ledger, shift=1000.0), shift=-900.0)
    assert moved.blocks[actor("mallory")].since == 180.0
    assert moved.received[actor("bob")][actor("alice")].at == 101.0  # its own time, moved
    assert [e.at for e in moved.history] == [180.0] and moved.peers == ledger.peers
    with pytest.raises(ValueError, match="ledger"):
        ledger_from_json({"format": "spore-ledger/1", "me": ME, "peers": {"x": {}}})
    with pytest.raises(ValueError, match="format"):
        ledger_from_json([1, 2])


def test_a_restarted_node_still_blocks_whom_it_blocked_and_its_appeal_window_ends_on_time(tmp_path) -> None:
    from agents.node import FungusNode, founded_group, load_checkpoint, node_state, save_checkpoint
    from agents.protocol.context import NodeContext
    from agents.protocol.core import Envelope
    from agents.protocol.defence import LedgerDefence
    from agents.protocol.learners import LinearLearner
    from agents.protocol.messages import Leave

    policy = DefederationPolicy(appeal_window=60.0)
    mallory = actor("mallory")

    def served_node() -> FungusNode:
        features = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
        learner = LinearLearner(features, torch.zeros(20))
        rule = f"{SPORE_NS}WeightedMean"
        group = founded_group(ME, "#jazz", (("artist_weight", (3,)),), aggregation_rule=rule)
        state = node_state(
            ME,
            seed=1,
            weights=learner.initial_weights(1),
            architecture=rule,
            seeks=("#jazz",),
            founds=[group],
        )
        return FungusNode("me", NodeContext(learner=learner, defence=LedgerDefence(policy)), state)

    before = served_node()
    ledger = blocked_mallory(policy, now=80.0)
    before.state = before.state.__class__(
        **{**before.state.__dict__, "defence": ledger, "blocked": ledger.blocked}
    )
    # checkpointed at protocol second 100 (wall clock 1000); the host restarts at wall clock 1030
    save_checkpoint(before.state, tmp_path / "me", 100.0, wall=1000.0)
    checkpoint = load_checkpoint(tmp_path / "me", wall=1030.0)
    assert checkpoint is not None and checkpoint.defence is not None
    after = served_node()
    after.state = checkpoint.resume(after.state)
    assert mallory in after.state.blocked
    assert all(mallory in group.blocked for group in after.state.owned.values())
    leave = Leave(id=f"{mallory}/activities/leave-1", actor=mallory, to=(ME,), group=f"{ME}/groups/jazz")
    after.step([Envelope(mallory, leave)], 1.0)
    assert after.state.counters.get("dropped:blocked") == 1
    # blocked at wall clock 980 with a 60 s window: lifted at 1040, protocol second 10 after the restart
    restored = after.state.defence
    assert review_appeals(restored, policy, 9.9)[1] == []
    lifted, unblocked = review_appeals(restored, policy, 10.0)
    assert [b.actor for b in unblocked] == [mallory] and mallory not in lifted.blocked
    assert restored.record(mallory).strikes == 2 and restored.standing(actor("alice")) > 0.5
