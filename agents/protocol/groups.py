"""Group formation, pure: which group a node joins, who founds one, and how duplicate groups merge.

Hosts that start apart, miss each other, or refuse a node would otherwise leave two groups for one
hashtag, or a node in none. Every rule here is a function of values every node can see (actor IRIs,
announced groups), so nodes that have heard the same announcements agree without a coordinator
(docs/spore-protocol.md section 4, "One group per hashtag"):

* **Rank.** ``rank(#h, actor) = sha256("#h actor")`` (rendezvous hashing). The founder of ``#h``
  among the nodes that seek it first is the one that ranks highest (:func:`founder_of`); unlike
  "the smallest IRI" it does not put every group on the host with the lowest port.
* **Preference.** Of two groups for one hashtag a node prefers the one its blueprint fits (same
  shared shapes), then one that has not refused it, then the one whose owner ranks higher, then the
  smaller IRI (:func:`prefers`). A node remembers only its preferred group per hashtag.
* **Duplicates.** An owner that hears of a group it prefers to its own for the same hashtag asks to
  join it; once accepted it dissolves its own group with a ``Leave`` to its members, who forget
  that group and join the preferred one. If the preferred group refuses, both stay (they cannot
  merge) and it is not asked again.
* **Fallback.** A node in no group for ``ctx.found_after`` seconds (refused everywhere, or no owner
  reachable, even with a join still pending) founds its own group for its first sought hashtag
  (``ctx.founding``); if another group for that hashtag turns up later, the duplicate rule merges
  them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from agents.protocol.context import NodeContext
from agents.protocol.messages import Announce, GroupInfo, Join, Leave, Message, Reject
from agents.protocol.rounds import start_round
from agents.protocol.state import Membership, NodeState, OwnedGroup, count

__all__ = [
    "dissolve_duplicates",
    "fits",
    "found_if_stranded",
    "founder_of",
    "founding_due",
    "on_announce",
    "on_join_elsewhere",
    "on_leave_of_owner",
    "prefers",
    "rank",
    "refuse",
    "seek",
]

Step = tuple[NodeState, list[Message]]


def rank(hashtag: str, actor: str) -> bytes:
    """The actor's rank for founding or owning ``hashtag``'s group (higher wins)."""
    return hashlib.sha256(f"{hashtag} {actor}".encode()).digest()


def founder_of(hashtag: str, candidates: Iterable[str]) -> str | None:
    """The candidate that founds ``hashtag``'s group: the highest rank (None without candidates)."""
    return max(candidates, key=lambda actor: (rank(hashtag, actor), actor), default=None)


def fits(state: NodeState, group: GroupInfo) -> bool:
    """Whether the node's shared parameters can be merged in ``group`` (a group without shapes takes any)."""
    return not group.shared_shapes or group.shared_shapes == state.blueprint.shared_shapes


def _key(state: NodeState, group: GroupInfo) -> tuple[bool, bool, bytes]:
    return fits(state, group), group.iri not in state.rejected, rank(group.hashtag, group.owner)


def prefers(state: NodeState, candidate: GroupInfo, current: GroupInfo | None) -> bool:
    """Whether ``candidate`` replaces ``current`` as the node's group for their hashtag."""
    if current is None:
        return True
    if candidate.iri == current.iri:
        return candidate != current  # the owner announced new settings
    mine, theirs = _key(state, candidate), _key(state, current)
    return mine > theirs or (mine == theirs and candidate.iri < current.iri)


def _owned_for(state: NodeState, hashtag: str) -> OwnedGroup | None:
    return next((owned for owned in state.owned.values() if owned.info.hashtag == hashtag), None)


def _join(state: NodeState, group: GroupInfo, now: float) -> Step:
    state, activity_id = state.next_id("join")
    join = Join(
        id=activity_id, actor=state.actor, to=(group.owner,), group=group.iri, blueprint=state.blueprint
    )
    return count(replace(state, pending_join=(group.iri, activity_id, now)), "sent:join"), [join]


def on_announce(ctx: NodeContext, state: NodeState, message: Message, now: float) -> Step:
    """Remember the preferred group per sought hashtag; an owner asks to join a group it prefers."""
    assert isinstance(message, Announce)
    group = message.group
    if group.hashtag not in state.seeks:
        return state, []
    own = _owned_for(state, group.hashtag)
    if own is not None:
        if group.iri == own.info.iri or not fits(state, group) or group.iri in state.rejected:
            return state, []
        if not prefers(state, group, own.info) or state.pending_join is not None:
            return state, []
        # A duplicate for our hashtag that wins: move there; our group is dissolved once accepted.
        return _join(count(state, "duplicate-group"), group, now)
    known = state.known_groups.get(group.hashtag)
    if not prefers(state, group, known):
        return state, []
    return replace(state, known_groups={**state.known_groups, group.hashtag: group}), []


def refuse(state: NodeState, join: Join, reason: str, counter: str = "rejected") -> Step:
    """A ``Reject`` of ``join`` with ``reason``, counted under ``counter``."""
    state, activity_id = state.next_id("reject")
    reject = Reject(
        id=activity_id, actor=state.actor, to=(join.actor,), join=join.id, group=join.group, reason=reason
    )
    return count(state, counter), [reject]


def on_join_elsewhere(state: NodeState, join: Join) -> Step:
    """A Join for a group this node does not own (dissolved, or never founded): refuse it at once, so
    that the applicant looks elsewhere instead of waiting for its join timeout."""
    return refuse(state, join, "no such group here (dissolved or never founded)", "rejected:unknown-group")


def dissolve_duplicates(state: NodeState, joined: GroupInfo) -> Step:
    """Dissolve the groups this node owns for ``joined``'s hashtag: ``Leave`` to their members."""
    outbox: list[Message] = []
    owned = dict(state.owned)
    for iri, group in state.owned.items():
        if group.info.hashtag != joined.hashtag or iri == joined.iri:
            continue
        del owned[iri]
        members = tuple(sorted(group.members - {state.actor}))
        state = count(state, "dissolved")
        if members:
            state, activity_id = state.next_id("leave")
            outbox.append(Leave(id=activity_id, actor=state.actor, to=members, group=iri))
    return replace(state, owned=owned), outbox


def on_leave_of_owner(state: NodeState, message: Leave) -> NodeState | None:
    """The owner of our group left it: the group is dissolved. None when ``message`` is not that."""
    membership = state.membership
    if membership is None or membership.group.iri != message.group or membership.group.owner != message.actor:
        return None
    group = membership.group
    known = dict(state.known_groups)
    if known.get(group.hashtag) == group:
        del known[group.hashtag]  # the host offers, and the owners announce, the group to join next
    # Not marked as refused: its owner may found it again one day (the IRI is the owner's and the
    # hashtag's); a Join that reaches it dissolved is refused at once (on_join_elsewhere).
    return count(replace(state, membership=None, residual={}, known_groups=known), "group-dissolved")


def founding_due(ctx: NodeContext, state: NodeState) -> float | None:
    """When a node in no group founds its own (None: it will not)."""
    if ctx.founding is None or state.groupless_since is None or not state.seeks:
        return None
    return state.groupless_since + ctx.found_after


def seek(ctx: NodeContext, state: NodeState, now: float) -> Step:
    """A node in no group asks the owner of its preferred group for the first sought hashtag that
    has one it was not refused by; after ``ctx.found_after`` seconds without a group it founds one,
    whether or not a join is still pending."""
    if state.membership is not None or state.owned:
        return (replace(state, groupless_since=None) if state.groupless_since is not None else state), []
    if state.groupless_since is None:
        state = replace(state, groupless_since=now)
    due = founding_due(ctx, state)
    if due is not None and now >= due:
        # Groupless for long enough, though a group is known: its owner is unreachable (hosts that
        # cannot see each other) or keeps us waiting. Found our own; if the other group turns up,
        # the duplicate rule merges the two.
        return found_if_stranded(ctx, replace(state, pending_join=None), now)
    if state.pending_join is not None:
        return state, []
    for hashtag in state.seeks:
        group = state.known_groups.get(hashtag)
        if group is not None and group.iri not in state.rejected:
            return _join(state, group, now)
    return found_if_stranded(ctx, state, now)


def found_if_stranded(ctx: NodeContext, state: NodeState, now: float) -> Step:
    """Found the node's own group for its first hashtag when it has been in none long enough."""
    due = founding_due(ctx, state)
    if due is None or now < due:
        return state, []
    assert ctx.founding is not None
    info = ctx.founding(state.seeks[0])
    if info.owner != state.actor or info.hashtag != state.seeks[0]:
        raise ValueError(f"ctx.founding gave {info.iri} owned by {info.owner} for {state.seeks[0]}")
    owned = OwnedGroup(info=info, members=frozenset({state.actor}), last_seen={state.actor: 0})
    membership = Membership(group=info, members=frozenset({state.actor}), round=0, joined_at=now)
    state = replace(
        state,
        owned={**state.owned, info.iri: owned},
        known_groups={**state.known_groups, info.hashtag: info},
        membership=membership,
        groupless_since=None,
        announced_at=None,  # announced by the next step's timers
        residual={},
    )
    return count(start_round(ctx, state, now), "founded-alone"), []
