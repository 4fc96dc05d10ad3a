"""The protocol core: ``step(ctx, state, inbox, now) -> (state, outbox)``, pure and transport-free.

A step handles the inbox one envelope at a time through handlers registered by message class (the
most specific class wins, a catch-all takes the rest, two handlers for one class is an error, as in
Fedify's activity listeners), then runs the node's timers (end of training, round timeout, join
timeout, re-announcement) and finally seeks a group if it has none. The transport delivers each
outbox message to the actors in its ``to`` and calls ``step`` again at ``state.wakeup_at``.

The transport authenticates senders (HTTP signatures over ActivityPub; the simulator by
construction) and hands the authenticated sender in the envelope; the core refuses any activity
whose ``actor`` is not that sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from agents.protocol.context import NodeContext
from agents.protocol.groups import (
    dissolve_duplicates,
    founding_due,
    on_announce,
    on_join_elsewhere,
    on_leave_of_owner,
    refuse,
    seek,
)
from agents.protocol.learning import shared_part
from agents.protocol.messages import (
    PUBLIC,
    Accept,
    AcceptStatistics,
    Add,
    Announce,
    Block,
    Create,
    Flag,
    Join,
    Leave,
    Message,
    ModelUpdate,
    Reject,
    Remove,
    ShareStatistics,
    Undo,
)
from agents.protocol.rounds import accept_update, finish_round_if_due, publish, start_round
from agents.protocol.state import Membership, NodeState, Phase, count
from agents.protocol.statistics import accept_statistics, acknowledged

__all__ = ["Envelope", "Handler", "HandlerRegistry", "default_handlers", "leave", "step"]

Step = tuple[NodeState, list[Message]]
Handler = Callable[[NodeContext, NodeState, Message, float], Step]


@dataclass(frozen=True)
class Envelope:
    """One delivery: the authenticated sender and the message, or why it could not be decoded."""

    sender: str
    message: Message | None
    error: str = ""


class HandlerRegistry:
    """Handlers keyed by message class; dispatch walks the class hierarchy, most specific first."""

    def __init__(self) -> None:
        self._handlers: dict[type[Message], Handler] = {}

    def on(self, message_type: type[Message]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if message_type in self._handlers:
                raise ValueError(f"a handler for {message_type.__name__} is already registered")
            self._handlers[message_type] = handler
            return handler

        return register

    def handler_for(self, message: Message) -> Handler | None:
        for cls in type(message).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None


def step(
    ctx: NodeContext,
    state: NodeState,
    inbox: Iterable[Envelope],
    now: float,
    *,
    handlers: HandlerRegistry | None = None,
) -> Step:
    """One transition of a node: handle ``inbox`` at time ``now``, run due timers, seek a group."""
    registry = handlers or _DEFAULT
    outbox: list[Message] = []
    for envelope in inbox:
        state, sent = _deliver(ctx, state, envelope, now, registry)
        outbox.extend(sent)
    state, sent = _timers(ctx, state, now)
    outbox.extend(sent)
    state, sent = seek(ctx, state, now)
    outbox.extend(sent)
    if state.owned and state.announced_at is None:  # a group founded just now (groups.seek)
        state, sent = _announce(state, now)
        outbox.extend(sent)
    return replace(state, wakeup_at=_next_wakeup(ctx, state, now)), outbox


def _deliver(
    ctx: NodeContext, state: NodeState, envelope: Envelope, now: float, registry: HandlerRegistry
) -> Step:
    message = envelope.message
    if message is None:
        return count(state, "dropped:malformed"), []
    if message.actor != envelope.sender:
        # An activity must come from its own actor; a relay or forger is not trusted to speak for it.
        return count(state, "dropped:forged"), []
    if envelope.sender in state.blocked:
        # Defederated: nothing from a blocked actor is acted on (reasoning/defederation.py decides).
        return count(state, "dropped:blocked"), []
    if state.actor not in message.to and PUBLIC not in message.to:
        return count(state, "dropped:not-addressed"), []
    handler = registry.handler_for(message)
    if handler is None:
        return count(state, "dropped:unsupported"), []
    return handler(ctx, count(state, f"received:{message.activity_type}"), message, now)


def _timers(ctx: NodeContext, state: NodeState, now: float) -> Step:
    outbox: list[Message] = []
    if state.owned and (
        state.announced_at is None
        or (ctx.announce_interval is not None and now >= state.announced_at + ctx.announce_interval)
    ):
        state, sent = _announce(state, now)
        outbox.extend(sent)
    if state.membership is None:
        for owned in state.owned.values():  # an owner trains with its own group
            latest = max(owned.last_seen.values(), default=0)
            own = Membership(group=owned.info, members=owned.members, round=latest, joined_at=now)
            state = start_round(ctx, replace(state, membership=own), now)
            break
    membership = state.membership
    if (
        membership is not None
        and membership.phase == Phase.TRAINING
        and membership.deadline is not None
        and now >= membership.deadline
    ):
        state, sent = publish(ctx, state, now)
        outbox.extend(sent)
    state, sent = finish_round_if_due(ctx, state, now)
    outbox.extend(sent)
    if state.pending_join is not None and now >= state.pending_join[2] + ctx.join_timeout:
        state = count(replace(state, pending_join=None), "join-timeout")
    return state, outbox


def _announce(state: NodeState, now: float) -> Step:
    outbox: list[Message] = []
    for iri in sorted(state.owned):
        state, activity_id = state.next_id("announce")
        outbox.append(Announce(id=activity_id, actor=state.actor, to=(PUBLIC,), group=state.owned[iri].info))
    return replace(state, announced_at=now), outbox


def _next_wakeup(ctx: NodeContext, state: NodeState, now: float) -> float | None:
    """The earliest timer still ahead. A step handles every timer that is due, so one at or before
    ``now`` that is still set cannot act yet (a founding that waits on a pending join): waking for
    it again at the same instant would loop without end."""
    times: list[float] = []
    if state.membership is not None and state.membership.deadline is not None:
        times.append(state.membership.deadline)
    if state.pending_join is not None:
        times.append(state.pending_join[2] + ctx.join_timeout)
    if state.owned and ctx.announce_interval is not None and state.announced_at is not None:
        times.append(state.announced_at + ctx.announce_interval)
    if state.membership is None and not state.owned and (due := founding_due(ctx, state)) is not None:
        times.append(due)
    ahead = [time for time in times if time > now]
    return min(ahead) if ahead else None


def leave(state: NodeState, now: float) -> Step:
    """Leave the current group and stop seeking its hashtag (the reasoner's "switch group" act)."""
    membership = state.membership
    if membership is None:
        return state, []
    recipients = tuple(sorted((membership.members | {membership.group.owner}) - {state.actor}))
    seeks = tuple(tag for tag in state.seeks if tag != membership.group.hashtag)
    state = replace(state, membership=None, seeks=seeks, wakeup_at=None, residual={})
    if not recipients:
        return state, []
    state, activity_id = state.next_id("leave")
    return state, [Leave(id=activity_id, actor=state.actor, to=recipients, group=membership.group.iri)]


# Handlers ------------------------------------------------------------------------------------------


def default_handlers() -> HandlerRegistry:
    """A fresh registry with the protocol's handlers; callers may add handlers for new subclasses."""
    registry = HandlerRegistry()
    registry.on(Announce)(on_announce)
    registry.on(Join)(_on_join)
    registry.on(Accept)(_on_accept)
    registry.on(Reject)(_on_reject)
    registry.on(Leave)(_on_leave)
    registry.on(Add)(_on_add)
    registry.on(Remove)(_on_remove)
    registry.on(Create)(_on_create)
    registry.on(ShareStatistics)(_on_statistics)
    registry.on(AcceptStatistics)(_on_statistics_ack)
    registry.on(Flag)(_on_defederation)
    registry.on(Block)(_on_defederation)
    registry.on(Undo)(_on_defederation)
    registry.on(Message)(_on_other)
    return registry


def _on_other(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    return count(state, "dropped:unsupported"), []


def _on_join(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Join)
    owned = state.owned.get(message.group)
    if owned is None:
        return on_join_elsewhere(state, message)
    reason = ctx.admission(owned, message)
    if reason is not None:
        return refuse(state, message, reason)
    membership = state.membership
    round_number = (
        membership.round if membership is not None and membership.group.iri == owned.info.iri else 0
    )
    newcomer = message.actor not in owned.members
    members = owned.members | {message.actor}
    owned = replace(owned, members=members, last_seen={**owned.last_seen, message.actor: round_number})
    state = replace(state, owned={**state.owned, owned.info.iri: owned})
    if membership is not None and membership.group.iri == owned.info.iri:
        state = replace(state, membership=replace(membership, members=members))
    model = ModelUpdate(
        group=owned.info.iri, round=round_number, parameters=shared_part(state.weights), samples=1
    )
    state, activity_id = state.next_id("accept")
    outbox: list[Message] = [
        Accept(
            id=activity_id,
            actor=state.actor,
            to=(message.actor,),
            join=message.id,
            group=owned.info,
            members=tuple(sorted(members)),
            round=round_number,
            model=model,
        )
    ]
    others = tuple(sorted(members - {state.actor, message.actor}))
    if newcomer and others:
        state, activity_id = state.next_id("add")
        outbox.append(
            Add(id=activity_id, actor=state.actor, to=others, member=message.actor, group=owned.info.iri)
        )
    return count(state, "admitted"), outbox


def _on_accept(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Accept)
    pending = state.pending_join
    if pending is None or pending[1] != message.join or pending[0] != message.group.iri:
        return count(state, "dropped:unsolicited"), []
    weights = dict(state.weights)
    if message.model is not None:
        if message.model.shapes != state.blueprint.shared_shapes:
            return count(replace(state, pending_join=None), "dropped:shape-mismatch"), []
        weights.update(message.model.parameters)
    state, dissolved = dissolve_duplicates(state, message.group)  # an owner that moved to a better group
    members = (set(message.members) - state.blocked) | {state.actor}
    for member, added in state.early_roster:
        if added:
            members.add(member)
        else:
            members.discard(member)
    membership = Membership(
        group=message.group,
        members=frozenset(members),
        round=message.round,
        joined_at=now,
    )
    state = replace(
        state,
        weights=weights,
        residual={},  # changes not yet sent were relative to a model this group never had
        pending_join=None,
        early_roster=(),
        membership=membership,
        known_groups={**state.known_groups, message.group.hashtag: message.group},
    )
    return start_round(ctx, count(state, "joined"), now), dissolved


def _on_reject(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Reject)
    pending = state.pending_join
    if pending is None or pending[1] != message.join:
        return count(state, "dropped:unsolicited"), []
    return replace(state, pending_join=None, rejected=state.rejected | {message.group}), []


def _on_leave(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Leave)
    dissolved = on_leave_of_owner(state, message)
    if dissolved is not None:
        return dissolved, []
    owned = state.owned.get(message.group)
    if owned is not None:
        members = owned.members - {message.actor}
        last_seen = {m: r for m, r in owned.last_seen.items() if m != message.actor}
        state = replace(
            state, owned={**state.owned, message.group: replace(owned, members=members, last_seen=last_seen)}
        )
    membership = state.membership
    if membership is not None and membership.group.iri == message.group:
        state = replace(state, membership=replace(membership, members=membership.members - {message.actor}))
    return state, []


def _from_owner(state: NodeState, message: Add | Remove) -> Membership | None:
    membership = state.membership
    if membership is None or membership.group.iri != message.group or membership.group.owner != message.actor:
        return None
    return membership


def _early(state: NodeState, message: Add | Remove) -> NodeState | None:
    """Keep a roster change that overtook the Accept of our pending join to that group."""
    pending = state.pending_join
    known = next((g for g in state.known_groups.values() if g.iri == message.group), None)
    if pending is None or pending[0] != message.group or known is None or known.owner != message.actor:
        return None
    note = (message.member, isinstance(message, Add))
    return replace(state, early_roster=(*state.early_roster, note))


def _on_add(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Add)
    membership = _from_owner(state, message)
    if membership is None:
        early = _early(state, message)
        return (early, []) if early is not None else (count(state, "dropped:not-from-owner"), [])
    if message.member in state.blocked:
        return count(state, "dropped:blocked-member"), []
    return replace(state, membership=replace(membership, members=membership.members | {message.member})), []


def _on_remove(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Remove)
    membership = _from_owner(state, message)
    if membership is None:
        early = _early(state, message)
        return (early, []) if early is not None else (count(state, "dropped:not-from-owner"), [])
    if message.member == state.actor:
        return count(replace(state, membership=None), "removed"), []
    return replace(state, membership=replace(membership, members=membership.members - {message.member})), []


def _on_create(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, Create)
    return accept_update(ctx, state, message.actor, message.update, now)


def _on_statistics(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, ShareStatistics)
    return accept_statistics(ctx, state, message.actor, message)


def _on_statistics_ack(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    assert isinstance(message, AcceptStatistics)
    return acknowledged(state, message.actor, message)


def _on_defederation(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    if ctx.defence is None:
        return count(state, "dropped:unsupported"), []
    return ctx.defence.receive(ctx, state, message, now)


_DEFAULT = default_handlers()
