"""Accusations on the wire (Flag, Block, Undo), in the graph (shapes, defed queries) and in the core."""

from __future__ import annotations

import pytest
import torch
from pyoxigraph import NamedNode, QuerySolutions
from rdflib import Graph

import queries
from agents.protocol.context import NodeContext
from agents.protocol.core import Envelope, step
from agents.protocol.defence import LedgerDefence, ledger_of
from agents.protocol.learners import LinearLearner
from agents.protocol.messages import Block, BlueprintSummary, Flag, MessageError, Undo
from agents.protocol.state import initial_state
from agents.protocol.wire import WireCodec, from_jsonld, to_activity
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore
from knowledge.store.base import to_rdflib
from reasoning.accusations import ledger_quads, record_ledger
from reasoning.defederation import (
    Accusation,
    DefederationPolicy,
    Ledger,
    receive_accusation,
    record_screening,
)
from reasoning.screening import Evidence, Offence
from reasoning.standing import PeerRecord
from shapes.validation import default_validator

ALICE, BOB, CAROL, MALLORY = (f"https://{n}.test/actor" for n in ("alice", "bob", "carol", "mallory"))
ARTIFACT = f"{MALLORY}/artifacts/{'ab' * 32}"


def flag(accuser: str = ALICE, accused: str = MALLORY) -> Flag:
    return Flag(
        id=f"{accuser}/activities/flag-1",
        actor=accuser,
        to=(BOB,),
        accused=accused,
        offence="outlier-update",
        round=3,
        evidence=(ARTIFACT,),
        explanation="its round-3 update is 9.1 robust deviations from the median",
    )


def block() -> Block:
    return Block(
        id=f"{ALICE}/activities/block-2", actor=ALICE, to=(MALLORY,), blocked=MALLORY, reason="outliers"
    )


@pytest.mark.parametrize(
    "message",
    [
        flag(),
        block(),
        Undo(id=f"{ALICE}/activities/undo-3", actor=ALICE, to=(MALLORY,), block=block(), reason="x"),
    ],
)
def test_flag_block_and_undo_travel_as_activitystreams_and_come_back_equal(message) -> None:
    codec = WireCodec()
    assert codec.decode(codec.encode(message)) == message
    activity, artifacts = to_activity(message)
    assert activity["type"] == message.activity_type and artifacts == {}
    assert from_jsonld(activity, {}) == message  # read by meaning, not spelling


def test_malformed_accusations_are_refused_when_built() -> None:
    with pytest.raises(MessageError, match="evidence"):
        Flag(id=f"{ALICE}/f", actor=ALICE, to=(BOB,), accused=MALLORY, offence="outlier-update", round=0,
             evidence=(), explanation="x")  # fmt: skip
    with pytest.raises(MessageError, match="itself"):
        flag(accused=ALICE)
    with pytest.raises(MessageError, match="offence"):
        Flag(id=f"{ALICE}/f", actor=ALICE, to=(BOB,), accused=MALLORY, offence="rude", round=0,
             evidence=(ARTIFACT,), explanation="x")  # fmt: skip
    with pytest.raises(MessageError, match="only the actor that blocked"):
        Undo(id=f"{BOB}/u", actor=BOB, to=(MALLORY,), block=block())


def a_ledger() -> Ledger:
    """ALICE's ledger: she blocked MALLORY on her own evidence and received CAROL's accusation."""
    policy = DefederationPolicy(strikes_to_block=1)
    ledger = Ledger(me=ALICE, peers={CAROL: PeerRecord(clean=3)})
    evidence = [Evidence(MALLORY, Offence.OUTLIER_UPDATE, 2, "far from the median", 9.1, (ARTIFACT,))]
    ledger, accusations, _ = record_screening(
        ledger, policy, round_number=2, screened=[MALLORY, BOB], evidence=evidence, now=1_700_000_000.0
    )
    assert len(accusations) == 1
    theirs = Accusation(
        f"{CAROL}/activities/flag-9",
        CAROL,
        MALLORY,
        Offence.UNREPRODUCED_METRIC,
        2,
        (ARTIFACT,),
        "claims",
        1.7e9,
    )
    ledger, _ = receive_accusation(ledger, policy, theirs, 1_700_000_001.0)
    return ledger


def test_the_ledger_in_rdf_passes_the_decision_and_accusation_shapes() -> None:
    store = EmbeddedStore()
    assert record_ledger(store, a_ledger()) > 0
    flat = to_rdflib(store, graphs_of(ALICE))
    assert len(flat) > 0
    report = default_validator().validate(flat)
    assert report.conforms, report.lines()
    broken = Graph()
    for s, p, o in flat:
        if str(p) != "http://www.w3.org/ns/prov#wasDerivedFrom":
            broken.add((s, p, o))
    assert not default_validator().validate(broken).conforms  # evidence is required


def graphs_of(actor: str) -> list[NamedNode]:
    node = NamedNode(actor)
    return [graph_iri(node, GraphKind.DECISIONS), graph_iri(node, GraphKind.PEERS)]


def rows(result: object) -> list[dict[str, str]]:
    assert isinstance(result, QuerySolutions)
    names = [v.value for v in result.variables]
    return [{n: row[n].value for n in names if row[n] is not None} for row in result]


def test_defed_queries_say_who_blocked_whom_and_on_what_evidence() -> None:
    store = EmbeddedStore()
    store.extend(ledger_quads(a_ledger()))
    blocks = rows(store.query(queries.load("defed-blocks"), default_graph=graphs_of(ALICE)))
    assert [(r["node"], r["action"], r["peer"]) for r in blocks] == [(ALICE, "block", MALLORY)]
    assert ARTIFACT in blocks[0]["evidence"].split()
    accusations = rows(
        store.query(
            queries.load("defed-accusations"),
            bindings={"accused": NamedNode(MALLORY)},
            default_graph=graphs_of(ALICE),
        )
    )
    assert sorted(r["accuser"] for r in accusations) == [ALICE, CAROL]
    assert {r["accusers"] for r in accusations} == {"2"}
    assert {r["offence"] for r in accusations} == {"outlier-update", "unreproduced-metric"}


def node(actor: str, *, defence: LedgerDefence | None):
    learner = LinearLearner(torch.zeros(4, 2), torch.zeros(4))
    weights = learner.initial_weights(0)
    summary = BlueprintSummary(f"{actor}/blueprint", "https://w3id.org/spore/ns#LinearModel", ())
    return NodeContext(learner=learner, defence=defence), initial_state(
        actor, seed=0, blueprint=summary, weights=weights
    )


def test_without_a_defence_a_flag_is_unsupported_and_a_blocked_sender_is_dropped() -> None:
    ctx, state = node(BOB, defence=None)
    state, out = step(ctx, state, [Envelope(ALICE, flag())], 0.0)
    assert out == [] and state.counters["dropped:unsupported"] == 1
    state = state.__class__(**{**state.__dict__, "blocked": frozenset({ALICE})})
    state, _ = step(ctx, state, [Envelope(ALICE, flag())], 0.0)
    assert state.counters["dropped:blocked"] == 1


def test_a_node_weighs_flags_it_receives_and_blocks_on_a_quorum() -> None:
    ctx, state = node(BOB, defence=LedgerDefence(DefederationPolicy(accusation_quorum=2)))
    state = state.__class__(
        **{
            **state.__dict__,
            "defence": Ledger(me=BOB, peers={ALICE: PeerRecord(clean=2), CAROL: PeerRecord(clean=2)}),
        }
    )
    state, out = step(ctx, state, [Envelope(ALICE, flag(ALICE))], 1.0)
    assert out == [] and MALLORY not in state.blocked
    carols = Flag(**{**flag(CAROL).__dict__, "to": (BOB,)})
    state, out = step(ctx, state, [Envelope(CAROL, carols)], 2.0)
    assert MALLORY in state.blocked and MALLORY in ledger_of(state).blocked
    assert [(m.activity_type, m.to) for m in out] == [("Block", (MALLORY,))]


def owner_sent_two_misshapen_updates(appeal_window: float | None = None):
    """BOB owns a group with MALLORY, who sends two updates with the wrong shapes."""
    from dataclasses import replace

    from agents.protocol.messages import Create, GroupInfo, ModelUpdate, shapes_of
    from agents.protocol.state import Membership

    learner = LinearLearner(torch.zeros(4, 2), torch.zeros(4))
    weights = learner.initial_weights(0)
    shapes = shapes_of({k: v for k, v in weights.items() if k.startswith("artist_")})
    group = GroupInfo(
        iri=f"{BOB}/groups/jazz",
        hashtag="#jazz",
        owner=BOB,
        aggregation_rule="https://w3id.org/spore/ns#WeightedMean",
        shared_shapes=shapes,
    )
    summary = BlueprintSummary(f"{BOB}/blueprint", "https://w3id.org/spore/ns#LinearModel", shapes)
    policy = DefederationPolicy(strikes_to_block=2, appeal_window=appeal_window)
    ctx = NodeContext(learner=learner, defence=LedgerDefence(policy))
    state = initial_state(BOB, seed=0, blueprint=summary, weights=weights, owns=(group,))
    members = frozenset({BOB, MALLORY})
    owned = {group.iri: replace(state.owned[group.iri], members=members)}
    state = replace(
        state, owned=owned, membership=Membership(group=group, members=members, round=0, phase="training")
    )
    outbox: list = []
    for number in (1, 2):
        wrong = ModelUpdate(
            group.iri, 0, {"artist_weight": torch.zeros(5)}, 1
        )  # the group's table has 2 rows
        create = Create(id=f"{MALLORY}/a/{number}", actor=MALLORY, to=(BOB,), update=wrong)
        state, outbox = step(ctx, state, [Envelope(MALLORY, create)], float(number))
        assert state.counters["dropped:shape-mismatch"] == number
    return ctx, state, outbox


def test_updates_failing_the_groups_shapes_are_strikes_and_two_get_the_sender_blocked() -> None:
    _, state, outbox = owner_sent_two_misshapen_updates()
    assert MALLORY in state.blocked
    assert ledger_of(state).record(MALLORY).strikes == 2
    kinds = sorted(m.activity_type for m in outbox)
    assert kinds == ["Block", "Remove"]  # the owner drops it from the group; no one else to flag to


def test_after_the_appeal_window_the_block_is_lifted_with_undo_and_recorded() -> None:
    ctx, state, _ = owner_sent_two_misshapen_updates(appeal_window=10.0)
    assert ctx.defence is not None and state.membership is not None
    base = {k: v for k, v in state.weights.items() if k.startswith("artist_")}
    state, sent, _ = ctx.defence.screen(ctx, state, {}, base, 11.0)
    assert MALLORY in state.blocked and sent == []  # blocked at 2.0: the window ends at 12.0
    state, sent, _ = ctx.defence.screen(ctx, state, {}, base, 12.0)
    assert MALLORY not in state.blocked and not next(iter(state.owned.values())).blocked
    assert [(m.activity_type, m.to) for m in sent] == [("Undo", (MALLORY,))]
    assert [e.kind for e in ledger_of(state).history] == ["block", "unblock"]
