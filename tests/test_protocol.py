"""The pure protocol core: messages, dispatch, admission, leaving, wire form, privacy guards.

These tests call ``step`` directly with hand-built inboxes and an explicit ``now``; no network, no
clock. The simulator tests (tests/test_simulator.py) cover whole runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import pytest
import torch

from agents.protocol import (
    BlueprintSummary,
    Envelope,
    GroupInfo,
    HandlerRegistry,
    NodeContext,
    WeightedParameters,
    admission_policy,
    initial_state,
    leave,
    shapes_of,
    shared_part,
    step,
)
from agents.protocol.core import Handler, Step
from agents.protocol.learners import LinearLearner
from agents.protocol.learning import SHARED_PREFIXES, PrivacyViolation, TrainResult
from agents.protocol.messages import (
    PUBLIC,
    Accept,
    Add,
    Announce,
    Create,
    Join,
    Leave,
    Message,
    MessageError,
    ModelUpdate,
    Reject,
    Remove,
)
from agents.protocol.state import NodeState, Phase
from agents.protocol.wire import WireCodec, WirePayload, from_jsonld
from models.compression import compress_with_feedback

OWNER = "https://owner.test/actor"
ALICE = "https://alice.test/actor"
BOB = "https://bob.test/actor"
RULE = "https://w3id.org/spore/ns#WeightedMean"
ARCH = "https://w3id.org/spore/ns#LinearModel"


def weighted_mean(
    contributions: Sequence[WeightedParameters], *, reference: object = None
) -> dict[str, torch.Tensor]:
    total = sum(c.weight for c in contributions)
    return {
        name: sum(c.parameters[name] * (c.weight / total) for c in contributions)  # type: ignore[misc]
        for name in contributions[0].parameters
    }


def learner(offset: float = 0.0, rows: int = 10) -> LinearLearner:
    generator = torch.Generator().manual_seed(7)
    features = torch.randn(rows, 3, generator=generator)
    return LinearLearner(features, features @ torch.tensor([1.0, -1.0, 2.0]) + offset)


def blueprint(actor: str, model: LinearLearner) -> BlueprintSummary:
    shapes = shapes_of(shared_part(model.initial_weights(0)))
    return BlueprintSummary(iri=f"{actor}/blueprint", architecture=ARCH, shared_shapes=shapes)


def context(model: LinearLearner, **options: object) -> NodeContext:
    return NodeContext(learner=model, rule_for=lambda iri: weighted_mean, **options)  # type: ignore[arg-type]


GROUP = GroupInfo(
    iri=f"{OWNER}/groups/jazz",
    hashtag="#jazz",
    owner=OWNER,
    aggregation_rule=RULE,
    round_timeout=5.0,
    shared_shapes=blueprint(OWNER, learner()).shared_shapes,
)


def owner_node(**options: object) -> tuple[NodeContext, NodeState]:
    model = learner()
    state = initial_state(
        OWNER, seed=1, blueprint=blueprint(OWNER, model), weights=model.initial_weights(0), owns=(GROUP,)
    )
    return context(model, **options), state


def member_node(actor: str, offset: float = 1.0) -> tuple[NodeContext, NodeState]:
    model = learner(offset)
    state = initial_state(
        actor, seed=2, blueprint=blueprint(actor, model), weights=model.initial_weights(5), seeks=("#jazz",)
    )
    return context(model), state


M = TypeVar("M", bound=Message)


def only(outbox: list[Message], kind: type[M]) -> M:
    matching = [m for m in outbox if isinstance(m, kind)]
    assert len(matching) == 1, outbox
    return matching[0]


# messages -----------------------------------------------------------------------------------------


def test_messages_refuse_malformed_values() -> None:
    with pytest.raises(MessageError, match="hashtag"):
        replace(GROUP, hashtag="jazz")
    with pytest.raises(MessageError, match="owner"):
        Announce(id=f"{ALICE}/a/1", actor=ALICE, to=(PUBLIC,), group=GROUP)
    with pytest.raises(MessageError, match="NaN"):
        ModelUpdate(
            group=GROUP.iri, round=0, parameters={"artist_weight": torch.tensor([float("nan")])}, samples=1
        )
    with pytest.raises(MessageError, match="sha256"):
        ModelUpdate(
            group=GROUP.iri, round=0, parameters={"artist_weight": torch.ones(2)}, samples=1, sha256="0" * 64
        )
    with pytest.raises(MessageError, match="recipient"):
        Leave(id=f"{ALICE}/a/1", actor=ALICE, to=(), group=GROUP.iri)


def test_update_digest_is_content_address() -> None:
    a = ModelUpdate(group=GROUP.iri, round=0, parameters={"artist_weight": torch.ones(3)}, samples=2)
    b = ModelUpdate(group=GROUP.iri, round=4, parameters={"artist_weight": torch.ones(3)}, samples=9)
    c = ModelUpdate(group=GROUP.iri, round=0, parameters={"artist_weight": torch.zeros(3)}, samples=2)
    assert a.sha256 == b.sha256 != c.sha256


# dispatch -----------------------------------------------------------------------------------------


def test_registry_most_specific_handler_wins_and_duplicates_fail() -> None:
    registry = HandlerRegistry()
    seen: list[str] = []

    def recorder(label: str) -> Handler:
        def handle(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
            seen.append(label)
            return state, []

        return handle

    registry.on(Message)(recorder("any"))
    registry.on(Join)(recorder("join"))
    ctx, state = member_node(ALICE)
    join = Join(id=f"{BOB}/a/1", actor=BOB, to=(ALICE,), group=GROUP.iri, blueprint=state.blueprint)
    leave_message = Leave(id=f"{BOB}/a/2", actor=BOB, to=(ALICE,), group=GROUP.iri)
    step(ctx, state, [Envelope(BOB, join), Envelope(BOB, leave_message)], 0.0, handlers=registry)
    assert seen == ["join", "any"]
    with pytest.raises(ValueError, match="already registered"):
        registry.on(Join)(recorder("again"))


# joining ------------------------------------------------------------------------------------------


def test_announce_join_accept_makes_a_member_that_starts_training() -> None:
    owner_ctx, owner = owner_node()
    owner, announced = step(owner_ctx, owner, [], 0.0)
    announce = only(announced, Announce)
    assert announce.to == (PUBLIC,) and announce.group == GROUP

    alice_ctx, alice = member_node(ALICE)
    alice, sent = step(alice_ctx, alice, [Envelope(OWNER, announce)], 0.1)
    join = only(sent, Join)
    assert join.to == (OWNER,) and join.group == GROUP.iri

    owner, replies = step(owner_ctx, owner, [Envelope(ALICE, join)], 0.2)
    accept = only(replies, Accept)
    assert accept.members == tuple(sorted({OWNER, ALICE})) and accept.round == 0
    assert accept.model is not None and set(accept.model.parameters) == {"artist_weight"}
    assert owner.owned[GROUP.iri].members == {OWNER, ALICE}

    alice, _ = step(alice_ctx, alice, [Envelope(OWNER, accept)], 0.3)
    assert alice.membership is not None and alice.membership.phase == Phase.TRAINING
    assert torch.equal(alice.weights["artist_weight"], accept.model.parameters["artist_weight"])
    assert alice.wakeup_at == pytest.approx(1.3)  # training ends after train_seconds


def test_owner_tells_existing_members_about_a_newcomer() -> None:
    owner_ctx, owner = owner_node()
    owner, _ = step(owner_ctx, owner, [], 0.0)
    for actor in (ALICE, BOB):
        _, applicant = member_node(actor)
        join = Join(
            id=f"{actor}/a/1", actor=actor, to=(OWNER,), group=GROUP.iri, blueprint=applicant.blueprint
        )
        owner, replies = step(owner_ctx, owner, [Envelope(actor, join)], 0.1)
    add = only(replies, Add)
    assert add.member == BOB and add.to == (ALICE,)


def test_admission_rejects_blocked_and_unmergeable_applicants() -> None:
    owner_ctx, owner = owner_node()
    owner = replace(owner, owned={GROUP.iri: replace(owner.owned[GROUP.iri], blocked=frozenset({BOB}))})
    _, bob = member_node(BOB)
    join = Join(id=f"{BOB}/a/1", actor=BOB, to=(OWNER,), group=GROUP.iri, blueprint=bob.blueprint)
    owner, replies = step(owner_ctx, owner, [Envelope(BOB, join)], 0.0)
    reject = only(replies, Reject)
    assert reject.reason == "blocked by the group" and BOB not in owner.owned[GROUP.iri].members

    wrong = replace(bob.blueprint, shared_shapes=(("artist_weight", (4,)),))
    join = Join(id=f"{ALICE}/a/1", actor=ALICE, to=(OWNER,), group=GROUP.iri, blueprint=wrong)
    _, replies = step(owner_ctx, owner, [Envelope(ALICE, join)], 0.0)
    assert "shapes differ" in only(replies, Reject).reason

    private = replace(bob.blueprint, shared_shapes=(("listener_bias", (1,)),))
    refusal = admission_policy()(owner.owned[GROUP.iri], replace(join, blueprint=private))
    assert refusal is not None and "per-listener" in refusal

    refuse_all = admission_policy(lambda summary: "blueprint fails SHACL")
    assert (
        refuse_all(owner.owned[GROUP.iri], replace(join, blueprint=bob.blueprint)) == "blueprint fails SHACL"
    )


def test_rejected_node_stops_asking_that_group() -> None:
    alice_ctx, alice = member_node(ALICE)
    alice, sent = step(
        alice_ctx,
        alice,
        [Envelope(OWNER, Announce(id=f"{OWNER}/a/1", actor=OWNER, to=(PUBLIC,), group=GROUP))],
        0.0,
    )
    join = only(sent, Join)
    reject = Reject(id=f"{OWNER}/a/2", actor=OWNER, to=(ALICE,), join=join.id, group=GROUP.iri, reason="no")
    alice, sent = step(alice_ctx, alice, [Envelope(OWNER, reject)], 1.0)
    assert sent == [] and GROUP.iri in alice.rejected and alice.pending_join is None
    alice, sent = step(alice_ctx, alice, [], 100.0)
    assert sent == []


def test_join_is_retried_after_the_join_timeout() -> None:
    alice_ctx, alice = member_node(ALICE)
    announce = Announce(id=f"{OWNER}/a/1", actor=OWNER, to=(PUBLIC,), group=GROUP)
    alice, first = step(alice_ctx, alice, [Envelope(OWNER, announce)], 0.0)
    alice, none = step(alice_ctx, alice, [], alice_ctx.join_timeout - 1)
    alice, again = step(alice_ctx, alice, [], alice_ctx.join_timeout)
    assert none == [] and only(again, Join).id != only(first, Join).id
    assert alice.counters["join-timeout"] == 1


def test_leave_notifies_members_and_owner_forgets_the_member() -> None:
    owner_ctx, owner = owner_node()
    owner, _ = step(owner_ctx, owner, [], 0.0)
    alice_ctx, alice = member_node(ALICE)
    alice, sent = step(
        alice_ctx,
        alice,
        [Envelope(OWNER, Announce(id=f"{OWNER}/a/1", actor=OWNER, to=(PUBLIC,), group=GROUP))],
        0.0,
    )
    owner, replies = step(owner_ctx, owner, [Envelope(ALICE, only(sent, Join))], 0.1)
    alice, _ = step(alice_ctx, alice, [Envelope(OWNER, only(replies, Accept))], 0.2)

    alice, sent = leave(alice, 0.5)
    goodbye = only(sent, Leave)
    assert goodbye.to == (OWNER,) and alice.membership is None and "#jazz" not in alice.seeks
    owner, _ = step(owner_ctx, owner, [Envelope(ALICE, goodbye)], 0.6)
    assert owner.owned[GROUP.iri].members == {OWNER}
    assert owner.membership is not None and owner.membership.members == {OWNER}


# garbage ------------------------------------------------------------------------------------------


def test_garbage_forgeries_and_strangers_are_dropped_and_counted() -> None:
    owner_ctx, owner = owner_node()
    owner, _ = step(owner_ctx, owner, [], 0.0)
    update = ModelUpdate(group=GROUP.iri, round=0, parameters={"artist_weight": torch.ones(3)}, samples=5)
    forged = Create(id=f"{ALICE}/a/1", actor=ALICE, to=(OWNER,), update=update)
    stranger = Create(id=f"{BOB}/a/1", actor=BOB, to=(OWNER,), update=update)
    misaddressed = Leave(id=f"{BOB}/a/2", actor=BOB, to=(ALICE,), group=GROUP.iri)
    inbox = [
        Envelope(BOB, None, "not JSON"),
        Envelope(BOB, forged),  # BOB's signature on ALICE's activity
        Envelope(BOB, stranger),
        Envelope(BOB, misaddressed),
    ]
    owner, replies = step(owner_ctx, owner, inbox, 0.1)
    counters = owner.counters
    assert counters["dropped:malformed"] == 1 and counters["dropped:forged"] == 1
    assert counters["dropped:not-a-member"] == 1 and counters["dropped:not-addressed"] == 1
    # The owner tells a non-member so that a node evicted while down can join again.
    assert only(replies, Remove).to == (BOB,)


def test_updates_with_private_or_misshapen_parameters_never_reach_a_merge() -> None:
    owner_ctx, owner = owner_node()
    owner, _ = step(owner_ctx, owner, [], 0.0)
    assert owner.membership is not None
    owner = replace(owner, membership=replace(owner.membership, members=frozenset({OWNER, ALICE})))
    bad = [
        {"listener_bias": torch.ones(1), "artist_weight": torch.ones(3)},
        {"artist_weight": torch.ones(4)},
    ]
    for index, parameters in enumerate(bad):
        update = ModelUpdate(group=GROUP.iri, round=0, parameters=parameters, samples=1)
        message = Create(id=f"{ALICE}/a/{index}", actor=ALICE, to=(OWNER,), update=update)
        owner, _ = step(owner_ctx, owner, [Envelope(ALICE, message)], 0.2)
    assert owner.counters["dropped:private-parameter"] == 1
    assert owner.counters["dropped:shape-mismatch"] == 1
    assert owner.membership is not None and ALICE not in owner.membership.pending.get(0, {})


# privacy ------------------------------------------------------------------------------------------


class LeakyLearner(LinearLearner):
    def train(self, weights, *, seed):  # type: ignore[no-untyped-def]
        result = super().train(weights, seed=seed)
        return TrainResult({**result.weights, "listener_embedding": torch.ones(2)}, result.samples)


def test_a_learner_inventing_parameters_is_stopped_before_publishing() -> None:
    base = learner()
    leaky = LeakyLearner(base.features, base.targets)
    state = initial_state(
        OWNER, seed=1, blueprint=blueprint(OWNER, base), weights=base.initial_weights(0), owns=(GROUP,)
    )
    ctx = context(leaky)
    state, _ = step(ctx, state, [], 0.0)
    with pytest.raises(PrivacyViolation):
        step(ctx, state, [], 1.0)


def test_shared_prefixes_agree_with_the_models() -> None:
    from models.lightgcn import PRIVATE_PREFIXES
    from models.lightgcn import SHARED_PREFIXES as MODEL_SHARED

    assert SHARED_PREFIXES == MODEL_SHARED
    assert not any(prefix.startswith(SHARED_PREFIXES) for prefix in PRIVATE_PREFIXES)


# wire ---------------------------------------------------------------------------------------------


def every_message() -> list[Message]:
    _, alice = member_node(ALICE)
    update = ModelUpdate(
        group=GROUP.iri,
        round=3,
        parameters={"artist_weight": torch.arange(3.0)},
        samples=4,
        metrics=(("mse", 0.5),),
    )
    change = {"artist_embedding.weight": torch.arange(12.0).reshape(4, 3) - 5.0}
    delta, _ = compress_with_feedback(change, fraction=0.5, quantize=True)
    compressed = ModelUpdate(group=GROUP.iri, round=3, delta=delta, samples=4)
    return [
        Announce(id=f"{OWNER}/a/1", actor=OWNER, to=(PUBLIC,), group=GROUP),
        Announce(
            id=f"{OWNER}/a/9",
            actor=OWNER,
            to=(PUBLIC,),
            group=replace(GROUP, row_fraction=0.05, quantize=True),
        ),
        Join(id=f"{ALICE}/a/1", actor=ALICE, to=(OWNER,), group=GROUP.iri, blueprint=alice.blueprint),
        Accept(
            id=f"{OWNER}/a/2",
            actor=OWNER,
            to=(ALICE,),
            join=f"{ALICE}/a/1",
            group=GROUP,
            members=(ALICE, OWNER),
            round=3,
            model=update,
        ),
        Reject(
            id=f"{OWNER}/a/3",
            actor=OWNER,
            to=(ALICE,),
            join=f"{ALICE}/a/1",
            group=GROUP.iri,
            reason="blocked",
        ),
        Leave(id=f"{ALICE}/a/2", actor=ALICE, to=(OWNER, BOB), group=GROUP.iri),
        Add(id=f"{OWNER}/a/4", actor=OWNER, to=(BOB,), member=ALICE, group=GROUP.iri),
        Remove(
            id=f"{OWNER}/a/5", actor=OWNER, to=(BOB, ALICE), member=ALICE, group=GROUP.iri, reason="silent"
        ),
        Create(id=f"{ALICE}/a/3", actor=ALICE, to=(OWNER,), update=update),
        Create(id=f"{ALICE}/a/4", actor=ALICE, to=(OWNER,), update=compressed),
    ]


def test_compressed_update_is_named_by_its_delta_bytes() -> None:
    compressed = every_message()[-1]
    assert isinstance(compressed, Create) and compressed.update.delta is not None
    assert compressed.update.names == ("artist_embedding.weight",)
    assert compressed.update.shapes == (("artist_embedding.weight", (4, 3)),)
    assert compressed.update.byte_size == 2 * 4 + 2 * 3 + 2 * 4  # int32 rows, int8 values, scales
    with pytest.raises(MessageError, match="either"):
        ModelUpdate(group=GROUP.iri, round=0, samples=1)


def test_a_groups_compression_settings_travel_with_it() -> None:
    announce = every_message()[1]
    decoded = WireCodec().decode(WireCodec().encode(announce))
    assert isinstance(decoded, Announce)
    assert decoded.group == replace(GROUP, row_fraction=0.05, quantize=True)
    with pytest.raises(MessageError, match="row fraction"):
        replace(GROUP, row_fraction=0.0)


@pytest.mark.parametrize("message", every_message(), ids=lambda m: m.activity_type)
def test_wire_round_trip(message: Message) -> None:
    codec = WireCodec()
    payload = codec.encode(message)
    activity = json.loads(payload.activity)
    assert activity["type"] == message.activity_type and activity["actor"] == message.actor
    decoded = codec.decode(payload)
    assert type(decoded) is type(message)
    assert codec.encode(decoded) == payload


@pytest.mark.parametrize("message", every_message(), ids=lambda m: m.activity_type)
def test_expanded_json_ld_means_the_same_message(message: Message) -> None:
    from federation.jsonld import expand

    codec = WireCodec()
    payload = codec.encode(message)
    activity = json.loads(payload.activity)
    expanded = expand(activity)
    assert "_:" not in json.dumps(expanded)  # every key is a real IRI: nothing lost to expansion
    decoded = from_jsonld(expanded, dict(payload.artifacts))
    assert codec.encode(decoded) == payload


def test_wire_rejects_garbage_with_one_line() -> None:
    codec = WireCodec()
    create = every_message()[-1]
    good = codec.encode(create)
    tampered = WirePayload(good.activity, ((good.artifacts[0][0], good.artifacts[0][1][:-1] + b"\x00"),))
    cases = [
        WirePayload(b"\xff not json"),
        WirePayload(b"[]"),
        WirePayload(json.dumps({"type": "Like", "id": f"{BOB}/1", "actor": BOB, "to": [OWNER]}).encode()),
        WirePayload(json.dumps({"type": "Join", "id": f"{BOB}/1", "actor": BOB, "to": [OWNER]}).encode()),
        WirePayload(good.activity),  # artifact missing
        tampered,
        "not a payload",
        WirePayload(json.dumps({"@context": "https://evil.example/ctx", "type": "Join"}).encode()),
    ]
    for payload in cases:
        with pytest.raises(MessageError) as raised:
            codec.decode(payload)
        assert "\n" not in str(raised.value)


def test_json_ld_with_an_unknown_remote_context_is_refused_without_fetching() -> None:
    document = {"@context": "https://evil.example/context.jsonld", "type": "Join", "id": f"{BOB}/1"}
    with pytest.raises(MessageError, match="not JSON-LD"):
        from_jsonld(document, {})
