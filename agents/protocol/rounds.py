"""The round: train, publish, gather, merge, evaluate; synchronous group rounds and gossip.

Synchronous rounds (``Schedule.SYNC``): every member publishes its round-``r`` update to every other
member and merges when it holds an update from each member it knows, or when the group's round
timeout expires (slow and crashed peers cost at most one timeout per round). A member that sees
a peer publish a later round has fallen behind (it crashed, or its clock is slow) and jumps to that
round instead of replaying the ones it missed.

Gossip (``Schedule.GOSSIP``): every member publishes to ``fanout`` members drawn at random, gathers
for one round timeout, and merges its own update with the latest update of each sender it heard
from. Nobody waits for anybody, which suits large groups and the variance-corrected mean.

Randomness comes from the node's seed and the round number only, never from global state, so a run
is a function of its seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import replace

from torch import Tensor

from agents.protocol.context import NodeContext
from agents.protocol.learning import PrivacyViolation, TrainResult, WeightedParameters, is_shared, shared_part
from agents.protocol.messages import (
    Create,
    Message,
    ModelUpdate,
    Remove,
    Schedule,
    parameters_digest,
)
from agents.protocol.state import Membership, NodeState, Phase, RoundRecord, count
from agents.protocol.statistics import evaluate, share_statistics
from models.compression import compress_with_feedback, updated_rows

__all__ = [
    "accept_update",
    "finish_round_if_due",
    "node_random",
    "publish",
    "start_round",
]

Step = tuple[NodeState, list[Message]]


def node_random(state: NodeState, purpose: str, round_number: int) -> random.Random:
    """A random source for one purpose in one round: a pure function of the node's seed."""
    return random.Random(f"{state.seed}:{purpose}:{round_number}")


def start_round(ctx: NodeContext, state: NodeState, now: float) -> NodeState:
    """Begin local training; it ends (and the update is published) ``train_seconds`` later."""
    membership = state.membership
    assert membership is not None  # callers start rounds only for members
    if ctx.max_rounds is not None and membership.round >= ctx.max_rounds:
        return replace(state, membership=replace(membership, phase=Phase.IDLE, deadline=None))
    return replace(
        state,
        membership=replace(membership, phase=Phase.TRAINING, deadline=now + ctx.train_seconds),
    )


def publish(ctx: NodeContext, state: NodeState, now: float) -> Step:
    """Finish local training, keep the node's own update, and send it to the round's recipients."""
    membership = state.membership
    assert membership is not None and membership.phase == Phase.TRAINING
    round_number = membership.round
    base = shared_part(state.weights)
    result = ctx.learner.train(state.weights, seed=node_random(state, "train", round_number).getrandbits(31))
    shared = shared_part(result.weights)
    leaked = [name for name in result.weights if name not in shared and name not in state.weights]
    if leaked:
        raise PrivacyViolation(f"learner produced parameters the node did not have: {leaked}")
    update, residual = _update(state, membership, base, shared, result, ctx.training_step)
    if not all(is_shared(name) for name in update.names):
        raise PrivacyViolation("an update would carry a per-listener parameter")
    recipients = _recipients(state, membership, round_number)
    pending = {**membership.pending}
    pending[round_number] = {**pending.get(round_number, {}), state.actor: update}
    state = replace(
        state,
        weights=result.weights,
        residual=residual,
        membership=replace(
            membership,
            phase=Phase.GATHERING,
            deadline=now + membership.group.round_timeout,
            pending=pending,
            base=base,
        ),
    )
    if not recipients:
        return state, []
    state, shared_statistics = share_statistics(ctx, state, membership, recipients)
    state, activity_id = state.next_id("update")
    message = Create(id=activity_id, actor=state.actor, to=recipients, update=update)
    return count(state, "sent:update", len(recipients)), [*shared_statistics, message]


def _update(
    state: NodeState,
    membership: Membership,
    base: dict[str, Tensor],
    shared: dict[str, Tensor],
    result: TrainResult,
    step: float,
) -> tuple[ModelUpdate, Mapping[str, Tensor]]:
    """The round's update: full shared tensors, or the compressed change since ``base`` with error
    feedback (the group's ``row_fraction`` and ``quantize``); and the residual to carry forward."""
    group = membership.group
    samples, metrics = max(1, result.samples), tuple(sorted(result.metrics.items()))
    declared = {"metrics": metrics, "training_step": step}
    if group.row_fraction is None:
        full = ModelUpdate(group.iri, membership.round, shared, samples, **declared)
        return full, state.residual
    change = {name: shared[name] - base[name] for name in shared}
    delta, residual = compress_with_feedback(
        change, dict(state.residual) or None, fraction=group.row_fraction, quantize=group.quantize
    )
    return ModelUpdate(group.iri, membership.round, samples=samples, delta=delta, **declared), residual


def _recipients(state: NodeState, membership: Membership, round_number: int) -> tuple[str, ...]:
    peers = sorted(membership.members - {state.actor} - state.blocked)
    if membership.group.schedule == Schedule.GOSSIP and len(peers) > membership.group.fanout:
        rng = node_random(state, "gossip", round_number)
        peers = sorted(rng.sample(peers, membership.group.fanout))
    return tuple(peers)


def accept_update(ctx: NodeContext, state: NodeState, sender: str, update: ModelUpdate, now: float) -> Step:
    """Check a peer's update against the group and keep it for the merge, or count why not."""
    membership = state.membership
    if membership is None or update.group != membership.group.iri:
        return count(state, "dropped:not-my-group"), []
    if sender not in membership.members:
        return _not_a_member(state, sender, membership)
    if not all(is_shared(name) for name in update.names):
        return _violation(
            ctx, count(state, "dropped:private-parameter"), sender, update, "a per-listener parameter", now
        )
    expected = membership.group.shared_shapes or state.blueprint.shared_shapes
    if update.shapes != expected:
        return _violation(
            ctx, count(state, "dropped:shape-mismatch"), sender, update, "not the group's shapes", now
        )
    if membership.phase == Phase.IDLE:
        return count(state, "dropped:after-last-round"), []
    schedule = membership.group.schedule
    if schedule == Schedule.SYNC and update.round < membership.round:
        return count(state, "dropped:stale"), []
    pending = {**membership.pending}
    pending[update.round] = {**pending.get(update.round, {}), sender: update}
    state = count(replace(state, membership=replace(membership, pending=pending)), "received:update")
    if schedule == Schedule.SYNC and update.round > membership.round:
        return _jump(ctx, state, update.round, now)
    return state, []


def _violation(
    ctx: NodeContext, state: NodeState, sender: str, update: ModelUpdate, what: str, now: float
) -> Step:
    """A member's update no valid peer sends: evidence for the defence (a strike), if there is one."""
    if ctx.defence is None:
        return state, []
    return ctx.defence.violation(ctx, state, sender, update, what, now)


def _not_a_member(state: NodeState, sender: str, membership: Membership) -> Step:
    """Drop the update; the owner also tells the sender, so that a node evicted while it was down
    learns it and joins again instead of publishing into the void."""
    state = count(state, "dropped:not-a-member")
    if membership.group.iri not in state.owned:
        return state, []
    state, activity_id = state.next_id("remove")
    notice = Remove(
        id=activity_id,
        actor=state.actor,
        to=(sender,),
        member=sender,
        group=membership.group.iri,
        reason="not a member",
    )
    return state, [notice]


def _jump(ctx: NodeContext, state: NodeState, round_number: int, now: float) -> Step:
    """Catch up with peers that are ahead: merge what this round has, then train for the later round.

    A peer publishing round ``r' > r`` has merged round ``r``, so waiting longer for round ``r``
    only delays; the updates already gathered still make a useful merge.
    """
    outbox: list[Message] = []
    membership = state.membership
    assert membership is not None
    if membership.phase == Phase.GATHERING:
        state, outbox = _finish_round(ctx, state, now)
        membership = state.membership
        if membership is None:
            return state, outbox
    if membership.round < round_number and membership.phase == Phase.TRAINING:
        pending = {r: updates for r, updates in membership.pending.items() if r >= round_number}
        state = replace(state, membership=replace(membership, round=round_number, pending=pending))
    return count(state, "jumped"), outbox


def finish_round_if_due(ctx: NodeContext, state: NodeState, now: float) -> Step:
    """Merge when the round is complete (sync) or its timeout has passed; then start the next."""
    membership = state.membership
    if membership is None or membership.phase != Phase.GATHERING or membership.deadline is None:
        return state, []
    current = membership.pending.get(membership.round, {})
    complete = membership.group.schedule == Schedule.SYNC and membership.members - state.blocked <= set(
        current
    )
    if not complete and now < membership.deadline:
        return state, []
    return _finish_round(ctx, state, now)


def _finish_round(ctx: NodeContext, state: NodeState, now: float) -> Step:
    """Merge the round's contributions, evaluate, evict the silent (owner), start the next round."""
    membership = state.membership
    assert membership is not None
    current = membership.pending.get(membership.round, {})
    if membership.group.schedule == Schedule.GOSSIP:
        latest: dict[str, ModelUpdate] = {}
        for round_number in sorted(membership.pending):
            latest.update(membership.pending[round_number])
        contributions = latest
    else:
        contributions = dict(current)
    base = dict(membership.base) or shared_part(state.weights)
    screened: list[Message] = []
    if ctx.defence is not None:
        # Defederation screens the updates before they are merged; those it leaves out never count.
        state, screened, excluded = ctx.defence.screen(ctx, state, contributions, base, now)
        contributions = {sender: u for sender, u in contributions.items() if sender not in excluded}
        membership = state.membership
        assert membership is not None
    names = sorted(contributions)
    rule = ctx.rule_for(membership.group.aggregation_rule)
    merged = rule(
        [_contribution(name, contributions[name], base) for name in names],
        reference=base,
    )
    weights = {**state.weights, **{name: tensor.detach() for name, tensor in merged.items()}}
    metrics = tuple(sorted(evaluate(ctx, state, weights).items())) if ctx.evaluate else ()
    record = RoundRecord(
        round=membership.round,
        contributors=tuple(names),
        merged_sha256=parameters_digest(shared_part(weights)),
        metrics=metrics,
        finished_at=now,
    )
    next_round = membership.round + 1
    pending = {r: ups for r, ups in membership.pending.items() if r >= next_round}
    if membership.group.schedule == Schedule.GOSSIP:
        pending = {}
    state = replace(
        state,
        weights=weights,
        rounds_done=state.rounds_done + 1,
        last_round=record,
        membership=replace(membership, round=next_round, pending=pending, phase=Phase.IDLE),
    )
    state, outbox = _evict_silent(ctx, count(state, "merged"), membership.round, names)
    outbox = [*screened, *outbox]
    if state.membership is None:
        return state, outbox
    return start_round(ctx, state, now), outbox


def _contribution(sender: str, update: ModelUpdate, base: Mapping[str, Tensor]) -> WeightedParameters:
    """A merge input; a compressed change is applied to this node's own ``base`` (identical to the
    sender's when both merged the same updates last round, as in a lossless synchronous group)."""
    if update.delta is None:
        return WeightedParameters(update.parameters, float(update.samples), sender, update.sha256)
    weights, rows = updated_rows(base, update.delta)
    # No digest: the reconstruction depends on this node's base, so it must not be shared.
    return WeightedParameters(weights, float(update.samples), sender, rows=rows)


def _evict_silent(ctx: NodeContext, state: NodeState, round_number: int, heard: list[str]) -> Step:
    """An owner removes members it has not heard from for ``evict_after`` rounds."""
    membership = state.membership
    assert membership is not None
    owned = state.owned.get(membership.group.iri)
    if owned is None:
        return state, []
    last_seen = {**owned.last_seen, **{member: round_number for member in heard if member in owned.members}}
    window = ctx.evict_after
    if owned.info.schedule == Schedule.GOSSIP:
        # A gossiping owner hears from a given member only about fanout/(n-1) of the rounds.
        window *= math.ceil(max(1, len(owned.members) - 1) / owned.info.fanout)
    silent = sorted(
        member
        for member in owned.members
        if member != state.actor and round_number - last_seen.get(member, round_number) >= window
    )
    members = owned.members - set(silent)
    last_seen = {member: seen for member, seen in last_seen.items() if member in members}
    state = replace(
        state,
        owned={**state.owned, owned.info.iri: replace(owned, members=members, last_seen=last_seen)},
        membership=replace(membership, members=membership.members - set(silent)),
    )
    outbox: list[Message] = []
    for member in silent:
        recipients = tuple(sorted((members | {member}) - {state.actor}))
        state, activity_id = state.next_id("remove")
        outbox.append(
            Remove(
                id=activity_id,
                actor=state.actor,
                to=recipients,
                member=member,
                group=owned.info.iri,
                reason=f"silent for {window} rounds",
            )
        )
        state = count(state, "evicted")
    return state, outbox
