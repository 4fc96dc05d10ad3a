"""Co-listening statistics as a protocol message: who sends them, who keeps them, what they are for.

A group that sets ``statistics_noise`` asks each member to publish its noised co-listening
statistics (``models.itemgraph``) with a ``ShareStatistics`` activity. A member sends them along
with its round update to every recipient that does not hold its current version yet, so they
travel once per peer when it joins and again only when its listens change (the payload's SHA-256
is its version). Each member keeps the latest statistics of every peer and sums its group's itself
instead of trusting the owner with a sum: a malicious owner could otherwise redistribute anything,
and the sum is cheap. The learner blends RP3beta over that sum into its evaluation.

Receivers acknowledge what they keep (``AcceptStatistics``). A copy still unacknowledged
``RESEND_AFTER`` rounds after it went goes again, so a lost message (or a lost acknowledgement)
costs a delay, not the peer's statistics for good. A node that restarts forgets who holds what and
what it received: it sends its own to everyone again, listing the digests it holds (none), and a
peer whose acknowledged statistics are missing from that list sends them again too.

Pure functions over the node's state, like the rest of the core.
"""

from __future__ import annotations

from dataclasses import replace

from agents.protocol.context import NodeContext
from agents.protocol.learning import StatisticsLearner, Weights
from agents.protocol.messages import AcceptStatistics, CoListeningStatistics, Message, ShareStatistics
from agents.protocol.state import Membership, NodeState, count

__all__ = [
    "DEFAULT_NOISE",
    "RESEND_AFTER",
    "accept_statistics",
    "acknowledged",
    "evaluate",
    "group_statistics",
    "own_statistics",
    "share_statistics",
]

Step = tuple[NodeState, list[Message]]

# The noise served groups ask for: a tenth of a typical listener's entry (1/|r_u|, about 1/50 on
# Last.fm), the value the quality benchmark measures with (docs/spore-protocol.md section 11).
DEFAULT_NOISE = 0.005
# Rounds an unacknowledged copy waits before it goes again: the acknowledgement of a copy sent with
# a round's update normally arrives within that round, so one round of slack avoids double sends.
RESEND_AFTER = 2


def own_statistics(
    ctx: NodeContext, state: NodeState, membership: Membership
) -> CoListeningStatistics | None:
    """This node's statistics for its group, or None when the group or the learner shares none."""
    noise = membership.group.statistics_noise
    learner = ctx.learner
    if noise is None or not isinstance(learner, StatisticsLearner):
        return None
    data = learner.statistics_payload(noise, seed=state.seed)
    return CoListeningStatistics(membership.group.iri, data) if data else None


def share_statistics(
    ctx: NodeContext, state: NodeState, membership: Membership, recipients: tuple[str, ...]
) -> Step:
    """A ``ShareStatistics`` to the ``recipients`` that do not hold this node's current statistics."""
    if not recipients:
        return state, []
    mine = own_statistics(ctx, state, membership)
    if mine is None:
        return state, []
    group = membership.group.iri
    due = tuple(peer for peer in recipients if _due(state, (group, peer), mine.sha256))
    if not due:
        return state, []
    went = (mine.sha256, state.rounds_done)
    sent = {**state.statistics_sent, **{(group, peer): went for peer in due}}
    state, activity_id = state.next_id("statistics")
    holds = tuple(sorted(held.sha256 for held in state.statistics.values() if held.group == group))
    message = ShareStatistics(id=activity_id, actor=state.actor, to=due, statistics=mine, holds=holds)
    return count(replace(state, statistics_sent=sent), "sent:statistics", len(due)), [message]


def _due(state: NodeState, key: tuple[str, str], digest: str) -> bool:
    """Whether the (group, peer) ``key`` should get our statistics ``digest`` now."""
    if state.statistics_acked.get(key) == digest:
        return False
    sent = state.statistics_sent.get(key)
    return sent is None or sent[0] != digest or state.rounds_done - sent[1] >= RESEND_AFTER


def accept_statistics(ctx: NodeContext, state: NodeState, sender: str, share: ShareStatistics) -> Step:
    """Keep a group member's statistics (its latest replaces any earlier) and acknowledge them, or
    count why not."""
    statistics = share.statistics
    membership = state.membership
    if membership is None or statistics.group != membership.group.iri:
        return count(state, "dropped:not-my-group"), []
    if sender not in membership.members:
        return count(state, "dropped:not-a-member"), []
    learner = ctx.learner
    if membership.group.statistics_noise is None or not isinstance(learner, StatisticsLearner):
        return count(state, "dropped:unsupported"), []
    if learner.statistics_problem(statistics.data) is not None:
        return count(state, "dropped:malformed-statistics"), []
    key = (membership.group.iri, sender)
    sent, acked = state.statistics_sent, state.statistics_acked
    if key in acked:
        mine = own_statistics(ctx, state, membership)
        if mine is not None and acked[key] == mine.sha256 and mine.sha256 not in share.holds:
            # The sender acknowledged ours once and holds it no longer: it restarted. Ours goes
            # again with the next round's update.
            sent = {k: v for k, v in sent.items() if k != key}
            acked = {k: v for k, v in acked.items() if k != key}
    kept = {**state.statistics, sender: statistics}
    state = replace(state, statistics=kept, statistics_sent=sent, statistics_acked=acked)
    state, activity_id = state.next_id("accept-statistics")
    ack = AcceptStatistics(
        id=activity_id,
        actor=state.actor,
        to=(sender,),
        share=share.id,
        group=statistics.group,
        sha256=statistics.sha256,
    )
    return count(state, "received:statistics"), [ack]


def acknowledged(state: NodeState, sender: str, ack: AcceptStatistics) -> Step:
    """Remember which version of our statistics a group member holds."""
    membership = state.membership
    if membership is None or ack.group != membership.group.iri or sender not in membership.members:
        return count(state, "dropped:not-a-member"), []
    acked = {**state.statistics_acked, (ack.group, sender): ack.sha256}
    return count(replace(state, statistics_acked=acked), "received:statistics-ack"), []


def group_statistics(ctx: NodeContext, state: NodeState) -> list[bytes]:
    """This node's own statistics and those of its current group's members, in actor order."""
    membership = state.membership
    if membership is None:
        return []
    mine = own_statistics(ctx, state, membership)
    if mine is None:
        return []
    parts = {state.actor: mine.data}
    for sender, statistics in state.statistics.items():
        if sender in membership.members and statistics.group == membership.group.iri:
            parts[sender] = statistics.data
    return [parts[actor] for actor in sorted(parts)]


def evaluate(ctx: NodeContext, state: NodeState, weights: Weights) -> dict[str, float]:
    """The learner's metrics of ``weights``, blended with the group's item graph when it has one."""
    learner = ctx.learner
    if isinstance(learner, StatisticsLearner):  # without statistics, the model alone
        return learner.evaluate_with_statistics(weights, group_statistics(ctx, state))
    return learner.evaluate(weights)
