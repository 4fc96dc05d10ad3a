"""What a node's protocol core is given from outside: learner, merge rules, admission, timing.

Everything impure or configurable is injected here, once per node, so the transition functions
stay pure: the same context and state with the same inbox and ``now`` give the same result under
the simulator and under HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor

from agents.protocol.learning import Learner, RuleResolver, is_shared, resolve_rule
from agents.protocol.messages import BlueprintSummary, GroupInfo, Join, Message, ModelUpdate
from agents.protocol.state import NodeState, OwnedGroup

__all__ = ["AdmissionPolicy", "Defence", "NodeContext", "admission_policy"]

# Returns None to admit, or a one-line reason for the Reject.
AdmissionPolicy = Callable[[OwnedGroup, Join], str | None]


def admission_policy(
    validate_blueprint: Callable[[BlueprintSummary], str | None] | None = None,
) -> AdmissionPolicy:
    """The group admission rule: not blocked, mergeable shapes, and a valid blueprint.

    ``validate_blueprint`` is where a host plugs SHACL validation of the fetched blueprint (it is
    I/O, so it stays outside the pure core); it returns a reason to refuse or None.
    """

    def admit(group: OwnedGroup, join: Join) -> str | None:
        if join.actor in group.blocked:
            return "blocked by the group"
        published = [name for name, _ in join.blueprint.shared_shapes]
        if not published or not all(is_shared(name) for name in published):
            return "blueprint publishes no shared parameters or names per-listener ones"
        if group.info.shared_shapes and join.blueprint.shared_shapes != group.info.shared_shapes:
            return "shared parameter shapes differ from the group's"
        if validate_blueprint is not None:
            return validate_blueprint(join.blueprint)
        return None

    return admit


class Defence(Protocol):
    """Defederation plugged into the core (``agents/protocol/defence.py``): screening a round's
    updates before the merge, and acting on Flag/Block/Undo. Both are pure, like the core."""

    def screen(
        self,
        ctx: NodeContext,
        state: NodeState,
        contributions: Mapping[str, ModelUpdate],
        base: Mapping[str, Tensor],
        now: float,
    ) -> tuple[NodeState, list[Message], frozenset[str]]:
        """Judge the round's updates; the new state, messages to send, and senders left out."""
        ...

    def receive(
        self, ctx: NodeContext, state: NodeState, message: Message, now: float
    ) -> tuple[NodeState, list[Message]]:
        """Act on a Flag, Block or Undo addressed to this node."""
        ...

    def violation(
        self, ctx: NodeContext, state: NodeState, sender: str, update: ModelUpdate, what: str, now: float
    ) -> tuple[NodeState, list[Message]]:
        """A member (authenticated ``sender``) sent an update that fails the group's shapes."""
        ...


@dataclass(frozen=True)
class NodeContext:
    """Injected dependencies and timing of one node (virtual seconds under the simulator).

    ``train_seconds`` is how long local epochs take (a slow peer has a larger value).
    ``max_rounds`` stops training when the group's round number reaches it (rounds 0 .. max-1).
    ``evict_after`` is how many rounds an owner waits for a silent member before removing it
    (times (n-1)/fanout under gossip). ``announce_interval`` re-announces owned groups so that nodes
    that boot late find them (None: announce once). ``founding`` and ``found_after``: see
    :mod:`agents.protocol.groups` (the fallback when no group takes the node).
    """

    learner: Learner
    rule_for: RuleResolver = resolve_rule
    admission: AdmissionPolicy = field(default_factory=admission_policy)
    train_seconds: float = 1.0
    max_rounds: int | None = None
    join_timeout: float = 10.0
    evict_after: int = 3
    announce_interval: float | None = None
    evaluate: bool = True
    defence: Defence | None = None
    # How much training one round's update took, as the node's blueprint declares it (learning rate
    # times local epochs): the defence judges a peer's change against what its declaration explains.
    training_step: float = 1.0
    # The group this node would found for a hashtag, when it has been in no group for
    # ``found_after`` seconds (agents/protocol/groups.py); None: it never founds one on its own.
    founding: Callable[[str], GroupInfo] | None = None
    found_after: float = 30.0
