"""Co-listening statistics as a protocol message: who sends them, who keeps them, what they are for.

A group that sets ``statistics_noise`` asks each member to publish its noised co-listening
statistics (``models.itemgraph``) with a ``ShareStatistics`` activity. A member sends them along
with its round update to every recipient that does not hold its current version yet, so they
travel once per peer when it joins and again only when its listens change (the payload's SHA-256
is its version). Each member keeps the latest statistics of every peer and sums its group's itself
instead of trusting the owner with a sum: a malicious owner could otherwise redistribute anything,
and the sum is cheap. The learner blends RP3beta over that sum into its evaluation. A node that
restarts (its memory of who holds what is not checkpointed) sends its statistics to everyone again;
a peer that receives a version it already held takes that as the restart it is and sends its own
again too, so the restarted node ends with the whole group's.

Pure functions over the node's state, like the rest of the core.
"""

from __future__ import annotations

from dataclasses import replace

from agents.protocol.context import NodeContext
from agents.protocol.learning import StatisticsLearner, Weights
from agents.protocol.messages import CoListeningStatistics, Message, ShareStatistics
from agents.protocol.state import Membership, NodeState, count

__all__ = [
    "DEFAULT_NOISE",
    "accept_statistics",
    "evaluate",
    "group_statistics",
    "own_statistics",
    "share_statistics",
]

Step = tuple[NodeState, list[Message]]

# The noise served groups ask for: a tenth of a typical listener's entry (1/|r_u|, about 1/50 on
# Last.fm), the value the quality benchmark measures with (docs/spore-protocol.md section 11).
DEFAULT_NOISE = 0.005


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
    due = tuple(peer for peer in recipients if state.statistics_sent.get((group, peer)) != mine.sha256)
    if not due:
        return state, []
    sent = {**state.statistics_sent, **{(group, peer): mine.sha256 for peer in due}}
    state, activity_id = state.next_id("statistics")
    message = ShareStatistics(id=activity_id, actor=state.actor, to=due, statistics=mine)
    return count(replace(state, statistics_sent=sent), "sent:statistics", len(due)), [message]


def accept_statistics(
    ctx: NodeContext, state: NodeState, sender: str, statistics: CoListeningStatistics
) -> Step:
    """Keep a group member's statistics (its latest replaces any earlier), or count why not."""
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
    sent = state.statistics_sent
    held = state.statistics.get(sender)
    if held is not None and held.sha256 == statistics.sha256:
        # A node sends one version to a peer once; the same version again means the sender lost
        # its memory (a restart), and with it what it had received: ours goes again next round.
        sent = {key: digest for key, digest in sent.items() if key != (membership.group.iri, sender)}
    kept = {**state.statistics, sender: statistics}
    return count(replace(state, statistics=kept, statistics_sent=sent), "received:statistics"), []


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
    parts = group_statistics(ctx, state)
    if parts and isinstance(learner, StatisticsLearner):
        return learner.evaluate_with_statistics(weights, parts)
    return learner.evaluate(weights)
