"""Defederation in the protocol: screen each round's updates, accuse, block, weigh others' Flags.

:class:`LedgerDefence` is the :class:`~agents.protocol.context.Defence` a node's context carries.
Before every merge it computes screening statistics over the round's updates (each update's change
from the round's base, its distance to the coordinate-wise median of the changes, or its Krum
score; and, for metrics a peer claims that the node can measure itself, the node's own evaluation of
that update), hands them to the pure rules of :mod:`reasoning.defederation`, and turns the verdict
into protocol acts: outliers are left out of the merge, blocked peers are dropped from the roster
(and, by a group's owner, from the group), accusations travel as ``Flag`` to the group and blocks as
``Block`` to the blocked actor. Incoming ``Flag``/``Block``/``Undo`` are weighed the same way.
The node's :class:`~reasoning.defederation.Ledger` lives in ``NodeState.defence``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from agents.protocol.context import AdmissionPolicy, NodeContext
from agents.protocol.messages import Block, Flag, Join, Message, ModelUpdate, Remove, Undo
from agents.protocol.state import NodeState, OwnedGroup, count
from models.compression import updated_rows
from models.merge.rules import coordinate_median, krum_scores
from reasoning.defederation import (
    Accusation,
    DefederationPolicy,
    Ledger,
    enforce_host_policy,
    receive_accusation,
    record_screening,
    review_appeals,
)
from reasoning.defederation import Block as BlockRecord
from reasoning.screening import Evidence, Offence, check_claims, find_outliers
from reasoning.standing import host_of

__all__ = ["LedgerDefence", "admission_with_host_policy", "artifact_iri", "ledger_of", "screening_statistic"]

Step = tuple[NodeState, list[Message]]
STATISTICS = ("median-distance", "krum")


def ledger_of(state: NodeState) -> Ledger:
    """The node's defederation ledger (a fresh one before its first screening)."""
    ledger = state.defence
    return ledger if isinstance(ledger, Ledger) else Ledger(me=state.actor)


def artifact_iri(sender: str, update: ModelUpdate) -> str:
    """Where the update's content-addressed artifact lives (the same IRI the wire form announces)."""
    return f"{sender}/artifacts/{update.sha256}"


def _point(update: ModelUpdate, base: Mapping[str, Tensor]) -> Tensor:
    """The update as one flat vector in name order: its full parameters, or a compressed change
    applied to the round's base. Both statistics are translation invariant (a distance to the
    coordinate-wise median, distances between members), so parameters give the same scores as
    changes from the base, and full updates need no base at all."""
    weights = updated_rows(base, update.delta)[0] if update.delta is not None else update.parameters
    return torch.cat([weights[name].reshape(-1) for name in sorted(weights)])


# (statistic, (sender, sha256) of every full update) -> scores. Every member of a synchronous group
# screens the same updates; computing the statistic once per group instead of once per member took
# the defence from most of a simulated round's time to a small part of it. Bounded, like
# agents.protocol.learning's cache of prepared updates.
_SCORES: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], dict[str, float]] = OrderedDict()
_SCORES_LIMIT = 64


def _scores(
    updates: Mapping[str, ModelUpdate], base: Mapping[str, Tensor], statistic: str
) -> dict[str, float]:
    full = all(u.delta is None for u in updates.values())
    key = (statistic, tuple(sorted((s, u.sha256, u.training_step) for s, u in updates.items())))
    if full and key in _SCORES:
        _SCORES.move_to_end(key)
        return _SCORES[key]
    scores = screening_statistic(explained_changes(updates, base), statistic)
    if full:
        _SCORES[key] = scores
        if len(_SCORES) > _SCORES_LIMIT:
            _SCORES.popitem(last=False)
    return scores


# A declared training step explains a change at most this many times the round's median (or as
# many times smaller): a peer cannot make an arbitrary change look ordinary by declaring a huge step.
MAX_EXPLAINED = 4.0


def explained_changes(updates: Mapping[str, ModelUpdate], base: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each sender's change, divided by how much larger its declared training step (learning rate x
    local epochs) is than the round's median, within ``MAX_EXPLAINED``.

    Adam-trained changes grow about linearly with the learning rate and the epochs, so a member whose
    blueprint trains 2.5 times harder sends a change about 2.5 times longer than its peers': by size
    alone the same as an attacker that scales an honest change (docs/defederation.md). Judged against
    what its own signed declaration explains, it is ordinary, while an attacker that scales without
    declaring it stays far out. When every member declares the same step (one blueprint), nothing
    changes.
    """
    steps = {sender: update.training_step for sender, update in updates.items()}
    typical = float(torch.tensor(sorted(steps.values())).median()) if steps else 1.0
    changes = {}
    for sender, update in updates.items():
        ratio = min(MAX_EXPLAINED, max(1 / MAX_EXPLAINED, steps[sender] / typical))
        point = _point(update, base)
        names = sorted(update.parameters) if update.delta is None else sorted(base)
        if ratio != 1.0 and all(name in base for name in names):
            # Scale the change from the round's base, not the parameters (the statistics are
            # translation invariant, so staying in parameter space changes nothing else).
            start = torch.cat([base[name].reshape(-1) for name in names])
            point = start + (point - start) / ratio
        changes[sender] = point
    return changes


def screening_statistic(changes: Mapping[str, Tensor], statistic: str) -> dict[str, float]:
    """Per sender, how far its change lies from the others' (larger is more suspicious).

    ``median-distance``: the L2 distance to the coordinate-wise median of the changes (Yin et al.,
    ICML 2018, whose median is robust to a minority of arbitrary updates). ``krum``: the Krum score
    (Blanchard et al., NeurIPS 2017) with the largest tolerated number of Byzantine members.
    """
    senders = sorted(changes)
    if len(senders) < 3:
        return {}
    flat = torch.stack([changes[s].float() for s in senders])
    if statistic == "krum":
        scores = krum_scores(flat, max(0, (len(senders) - 3) // 2))
    elif statistic == "median-distance":
        scores = (flat - _median(flat)).norm(dim=1)
    else:
        raise ValueError(f"unknown screening statistic {statistic!r}; known: {STATISTICS}")
    return {sender: float(score) for sender, score in zip(senders, scores, strict=True)}


def _median(flat: Tensor) -> Tensor:
    """The coordinate-wise median of ``[n, D]`` via the merge library (members along the first axis)."""
    present = torch.ones(flat.shape, dtype=torch.bool)
    return coordinate_median(flat, present)


@dataclass(frozen=True)
class LedgerDefence:
    """Defederation by :mod:`reasoning.defederation` with one screening statistic and the claim check."""

    policy: DefederationPolicy = DefederationPolicy()
    statistic: str = "median-distance"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"unknown screening statistic {self.statistic!r}; known: {STATISTICS}")

    # Defence interface ------------------------------------------------------------------------------

    def screen(
        self,
        ctx: NodeContext,
        state: NodeState,
        contributions: Mapping[str, ModelUpdate],
        base: Mapping[str, Tensor],
        now: float,
    ) -> tuple[NodeState, list[Message], frozenset[str]]:
        membership = state.membership
        assert membership is not None
        round_number = membership.round
        ledger = ledger_of(state)
        ledger, lifted = review_appeals(ledger, self.policy, now)
        host_blocks: list[BlockRecord] = []
        for actor in sorted(set(contributions) | membership.members):
            ledger, block = enforce_host_policy(ledger, self.policy, actor, now)
            if block is not None:
                host_blocks.append(block)
        peers = {s: u for s, u in contributions.items() if s not in ledger.blocks}
        evidence = self._evidence(ctx, state, peers, base, round_number)
        ids = {
            e.offender: f"{state.actor}/activities/flag-r{round_number}-{i}" for i, e in enumerate(evidence)
        }
        ledger, accusations, blocks = record_screening(
            ledger,
            self.policy,
            round_number=round_number,
            screened=[s for s in peers if s != state.actor],
            evidence=evidence,
            now=now,
            accusation_id=ids,
        )
        state = replace(state, defence=ledger)
        state, outbox = self._lift(state, lifted)
        state, sent = self._apply(state, [*host_blocks, *blocks], accusations)
        excluded = frozenset(e.offender for e in evidence) | ledger.blocked
        return count(state, "screened"), [*outbox, *sent], excluded

    def receive(self, ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
        ledger = ledger_of(state)
        if isinstance(message, Flag):
            accusation = Accusation(
                id=message.id,
                accuser=message.actor,
                accused=message.accused,
                offence=Offence(message.offence),
                round=message.round,
                evidence=message.evidence,
                explanation=message.explanation,
                at=now,
            )
            ledger, block = receive_accusation(ledger, self.policy, accusation, now)
            state = count(replace(state, defence=ledger), "received:flag")
            return self._apply(state, [block] if block is not None else [], [])
        if isinstance(message, Block):
            return _blocked_by(state, message.actor), []
        if isinstance(message, Undo):
            return count(state, "unblocked-by"), []
        return count(state, "dropped:unsupported"), []

    def violation(
        self, ctx: NodeContext, state: NodeState, sender: str, update: ModelUpdate, what: str, now: float
    ) -> Step:
        """A strike for an update that fails the group's shapes. Only content from an authenticated
        sender counts: a bad signature names an actor it cannot prove, so it is never evidence
        against that actor (anyone could forge one to get an honest peer blocked)."""
        membership = state.membership
        round_number = membership.round if membership is not None else update.round
        evidence = Evidence(
            sender,
            Offence.SHAPE_VIOLATION,
            round_number,
            f"its round-{update.round} update carries {what}",
            artifacts=(artifact_iri(sender, update),),
        )
        ledger, accusations, blocks = record_screening(
            ledger_of(state),
            self.policy,
            round_number=round_number,
            screened=[],
            evidence=[evidence],
            now=now,
            accusation_id={sender: f"{state.actor}/activities/flag-shape-{update.sha256[:16]}"},
        )
        return self._apply(replace(state, defence=ledger), blocks, accusations)

    # internals -------------------------------------------------------------------------------------

    def _evidence(
        self,
        ctx: NodeContext,
        state: NodeState,
        updates: Mapping[str, ModelUpdate],
        base: Mapping[str, Tensor],
        round_number: int,
    ) -> list[Evidence]:
        artifacts = {s: artifact_iri(s, u) for s, u in updates.items()}
        statistic = _scores(updates, base, self.statistic)
        what = (
            "distance to the coordinate-wise median" if self.statistic == "median-distance" else "Krum score"
        )
        evidence = [
            e
            for e in find_outliers(
                statistic,
                round_number=round_number,
                threshold=self.policy.outlier_threshold,
                what=what,
                artifacts=artifacts,
            )
            if e.offender != state.actor
        ]
        measurable = {name for name, _ in (state.last_round.metrics if state.last_round else ())}
        for sender, update in sorted(updates.items()):
            claimed = {name: value for name, value in update.metrics if name in measurable}
            if sender == state.actor or not claimed:
                continue
            measured = ctx.learner.evaluate({**state.weights, **_parameters(update, base)})
            found = check_claims(
                claimed,
                measured,
                peer=sender,
                round_number=round_number,
                tolerance=self.policy.claim_tolerance,
                artifact=artifacts[sender],
            )
            if found is not None:
                evidence.append(found)
        return evidence

    def _apply(
        self, state: NodeState, blocks: Sequence[BlockRecord], accusations: Sequence[Accusation]
    ) -> Step:
        """Cut off the newly blocked actors and publish the node's own accusations."""
        outbox: list[Message] = []
        fresh = [b for b in blocks if b.actor not in state.blocked]
        if fresh:
            state, outbox = _cut_off(state, fresh)
        membership = state.membership
        audience = set(membership.members) | {membership.group.owner} if membership is not None else set()
        for accusation in accusations:
            to = tuple(sorted(audience - {state.actor, accusation.accused} - state.blocked))
            if not to:
                continue
            outbox.append(
                Flag(
                    id=accusation.id,
                    actor=state.actor,
                    to=to,
                    accused=accusation.accused,
                    offence=str(accusation.offence),
                    round=accusation.round,
                    evidence=accusation.evidence,
                    explanation=accusation.explanation,
                )
            )
            state = count(state, "sent:flag")
        return state, outbox

    def _lift(self, state: NodeState, lifted: Sequence[BlockRecord]) -> Step:
        outbox: list[Message] = []
        for record in lifted:
            state, block_id = state.next_id("block")
            block = Block(
                id=block_id, actor=state.actor, to=(record.actor,), blocked=record.actor, reason=record.reason
            )
            state, undo_id = state.next_id("undo")
            outbox.append(
                Undo(
                    id=undo_id,
                    actor=state.actor,
                    to=(record.actor,),
                    block=block,
                    reason="appeal window passed",
                )
            )
        if lifted:
            owned = {
                iri: replace(group, blocked=group.blocked - {r.actor for r in lifted})
                for iri, group in state.owned.items()
            }
            state = count(
                replace(state, blocked=state.blocked - {r.actor for r in lifted}, owned=owned),
                "unblocked",
                len(lifted),
            )
        return state, outbox


def _parameters(update: ModelUpdate, base: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    if update.delta is None:
        return update.parameters
    weights, _ = updated_rows(base, update.delta)
    return weights


def _cut_off(state: NodeState, blocks: Sequence[BlockRecord]) -> Step:
    """Add ``blocks`` to the node's blocked set, drop them from its roster and from groups it owns
    (telling the remaining members with ``Remove``), and tell each blocked actor with ``Block``."""
    actors = {b.actor for b in blocks}
    blocked = state.blocked | actors
    outbox: list[Message] = []
    membership = state.membership
    if membership is not None:
        membership = replace(membership, members=membership.members - actors)
    owned: dict[str, OwnedGroup] = {}
    for iri, group in state.owned.items():
        removed = sorted(group.members & actors)
        members = group.members - actors
        owned[iri] = replace(
            group,
            members=members,
            blocked=group.blocked | actors,
            last_seen={m: r for m, r in group.last_seen.items() if m in members},
        )
        for actor in removed:
            to = tuple(sorted((members | {actor}) - {state.actor}))
            state, activity_id = state.next_id("remove")
            reason = next(b.reason for b in blocks if b.actor == actor)
            outbox.append(
                Remove(
                    id=activity_id,
                    actor=state.actor,
                    to=to,
                    member=actor,
                    group=iri,
                    reason=f"blocked: {reason}"[:300],
                )
            )
    state = replace(state, blocked=blocked, membership=membership, owned=owned)
    for block in sorted(blocks, key=lambda b: b.actor):
        state, activity_id = state.next_id("block")
        outbox.append(
            Block(
                id=activity_id,
                actor=state.actor,
                to=(block.actor,),
                blocked=block.actor,
                reason=block.reason[:300],
            )
        )
    return count(state, "blocked", len(actors)), outbox


def _blocked_by(state: NodeState, actor: str) -> NodeState:
    """Someone blocked this node: stop sending to it; if it owns the node's group, the node is out."""
    state = count(state, "blocked-by")
    membership = state.membership
    if membership is None or actor not in membership.members | {membership.group.owner}:
        return state
    if membership.group.owner == actor:
        return replace(state, membership=None, rejected=state.rejected | {membership.group.iri})
    return replace(state, membership=replace(membership, members=membership.members - {actor}))


def admission_with_host_policy(policy: DefederationPolicy, admission: AdmissionPolicy) -> AdmissionPolicy:
    """An admission policy that first refuses applicants on hosts the blueprint defederates."""

    def admit(group: OwnedGroup, join: Join) -> str | None:
        host = host_of(join.actor)
        if host in policy.blocked_hosts:
            return f"host {host} is defederated by policy"
        return admission(group, join)

    return admit
