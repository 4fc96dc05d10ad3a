"""The SPORE protocol: messages, node state and pure transition functions, independent of transport.

``step(ctx, state, inbox, now) -> (state, outbox)`` is the whole interface a transport needs; see
docs/spore-protocol.md for the protocol it implements.
"""

from agents.protocol.context import NodeContext, admission_policy
from agents.protocol.core import Envelope, HandlerRegistry, default_handlers, leave, step
from agents.protocol.learning import Learner, MergeRule, TrainResult, WeightedParameters, shared_part
from agents.protocol.messages import BlueprintSummary, GroupInfo, Schedule, shapes_of
from agents.protocol.state import NodeState, initial_state

__all__ = [
    "BlueprintSummary",
    "Envelope",
    "GroupInfo",
    "HandlerRegistry",
    "Learner",
    "MergeRule",
    "NodeContext",
    "NodeState",
    "Schedule",
    "TrainResult",
    "WeightedParameters",
    "admission_policy",
    "default_handlers",
    "initial_state",
    "leave",
    "shapes_of",
    "shared_part",
    "step",
]
