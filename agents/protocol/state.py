"""A node's protocol state: immutable values that transition functions replace, never mutate.

Immutability is what makes the core pure: a step returns a new state, so the simulator can keep a
crashed node's last state as "what was on disk", replay a run for the same seed, and compare
traces. Mappings are copied on write (``{**old, key: value}``); tensors are never written in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor

from agents.protocol.messages import BlueprintSummary, CoListeningStatistics, GroupInfo, ModelUpdate

__all__ = [
    "Membership",
    "NodeState",
    "OwnedGroup",
    "Phase",
    "RoundRecord",
    "count",
    "initial_state",
]


class Phase:
    """Where a member is within its round (closed set)."""

    IDLE = "idle"  # not in a group, or finished its last round
    TRAINING = "training"  # local epochs running; publishes when they end
    GATHERING = "gathering"  # published; collecting peers' updates until complete or timeout


@dataclass(frozen=True)
class RoundRecord:
    """What one finished round produced at this node: who contributed and how the merge scored."""

    round: int
    contributors: tuple[str, ...]
    merged_sha256: str
    metrics: tuple[tuple[str, float], ...] = ()
    finished_at: float = 0.0


@dataclass(frozen=True)
class Membership:
    """The group this node trains with, as this node currently sees it."""

    group: GroupInfo
    members: frozenset[str]
    round: int
    phase: str = Phase.IDLE
    deadline: float | None = None
    # round -> sender -> update; only rounds not yet merged are kept.
    pending: Mapping[int, Mapping[str, ModelUpdate]] = field(default_factory=dict)
    joined_at: float = 0.0
    # Shared weights the current round's training started from: compressed updates are changes
    # relative to it, and rows that nobody sent keep its values.
    base: Mapping[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnedGroup:
    """A group this node hosts: it admits members and evicts the silent ones."""

    info: GroupInfo
    members: frozenset[str]
    # member -> last round it published (or the round it joined at).
    last_seen: Mapping[str, int] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NodeState:
    """Everything the protocol remembers about one node between steps."""

    actor: str
    seed: int
    blueprint: BlueprintSummary
    seeks: tuple[str, ...]
    weights: Mapping[str, Tensor]
    owned: Mapping[str, OwnedGroup] = field(default_factory=dict)
    known_groups: Mapping[str, GroupInfo] = field(default_factory=dict)
    membership: Membership | None = None
    pending_join: tuple[str, str, float] | None = None  # (group, join id, sent at)
    # Add/Remove from the owner that overtook our Accept: (member, added), applied when it arrives.
    early_roster: tuple[tuple[str, bool], ...] = ()
    rejected: frozenset[str] = frozenset()  # groups that refused us; not asked again
    # Since when the node has been in no group (None while in one); it founds its own after a while.
    groupless_since: float | None = None
    wakeup_at: float | None = None
    announced_at: float | None = None  # when this node last announced the groups it owns
    sequence: int = 0  # for activity ids
    rounds_done: int = 0
    last_round: RoundRecord | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    # Error feedback: what compression has not sent yet, added to the next round's change.
    residual: Mapping[str, Tensor] = field(default_factory=dict)
    # Defederation: actors this node no longer exchanges with (their deliveries are dropped), and
    # the injected defence's own memory (reasoning.defederation.Ledger), opaque to the core.
    blocked: frozenset[str] = frozenset()
    defence: Any = None
    # Co-listening statistics (agents/protocol/statistics.py): the latest each peer sent; the digest
    # of our own sent to each (group, peer) with the round it went at; and the digest each (group,
    # peer) acknowledged, so that they travel once per change and again only when unacknowledged.
    statistics: Mapping[str, CoListeningStatistics] = field(default_factory=dict)
    statistics_sent: Mapping[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    statistics_acked: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def next_id(self, kind: str) -> tuple[NodeState, str]:
        """A fresh activity id under this actor; ids are never reused, even across rounds."""
        sequence = self.sequence + 1
        return replace(self, sequence=sequence), f"{self.actor}/activities/{kind}-{sequence}"


def count(state: NodeState, key: str, amount: int = 1) -> NodeState:
    """``state`` with counter ``key`` increased (drops by reason, messages sent, rounds merged).

    Copies the instance dictionary instead of calling ``dataclasses.replace``: counting happens
    several times per delivered message, and ``replace`` re-runs ``__init__`` over every field.
    """
    changed = object.__new__(NodeState)
    changed.__dict__.update(state.__dict__)
    changed.__dict__["counters"] = {**state.counters, key: state.counters.get(key, 0) + amount}
    return changed


def initial_state(
    actor: str,
    *,
    seed: int,
    blueprint: BlueprintSummary,
    weights: Mapping[str, Tensor],
    seeks: tuple[str, ...] = (),
    owns: tuple[GroupInfo, ...] = (),
) -> NodeState:
    """A node before its first step; owners start as the only member of their groups."""
    owned = {
        info.iri: OwnedGroup(info=info, members=frozenset({actor}), last_seen={actor: 0}) for info in owns
    }
    known = {info.hashtag: info for info in owns}
    return NodeState(
        actor=actor,
        seed=seed,
        blueprint=blueprint,
        seeks=seeks,
        weights=dict(weights),
        owned=owned,
        known_groups=known,
    )
