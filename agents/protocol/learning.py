"""What the protocol needs from learning: a learner that trains on a node's own data, and a merge rule.

Both are small interfaces so that the same core drives LightGCN on Last.fm in the benchmark and a
tiny deterministic learner in the tests. Weights are a flat ``name -> tensor`` mapping holding the
whole model; the names decide what is shared (:func:`is_shared`): item-side rows travel, per-listener
rows never leave the node.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = [
    "SHARED_PREFIXES",
    "Learner",
    "MergeRule",
    "PrivacyViolation",
    "RuleResolver",
    "StatisticsLearner",
    "TrainResult",
    "Weights",
    "WeightedParameters",
    "is_shared",
    "resolve_rule",
    "shared_part",
]

Weights = Mapping[str, Tensor]

# The same split as models/lightgcn.py (SHARED_PREFIXES / PRIVATE_PREFIXES), repeated so that the
# protocol imports no torch model code; tests/test_protocol.py checks that the two agree.
SHARED_PREFIXES: tuple[str, ...] = ("artist_", "tag_", "entity_")


class PrivacyViolation(RuntimeError):
    """A node was about to send a parameter that is not shared (a per-listener row)."""


def is_shared(name: str) -> bool:
    """Whether a parameter may leave its node: only item-side tables are shared."""
    return name.startswith(SHARED_PREFIXES)


def shared_part(weights: Weights) -> dict[str, Tensor]:
    """The shared parameters of a model; the only part that is ever published."""
    return {name: tensor for name, tensor in weights.items() if is_shared(name)}


@dataclass(frozen=True)
class TrainResult:
    """New weights after local epochs, how many interactions produced them, and training metrics."""

    weights: dict[str, Tensor]
    samples: int
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Learner(Protocol):
    """Local training and evaluation on one node's own data.

    Implementations hold the node's data (and may share read-only catalogue tensors with other
    nodes); they must not mutate the weights they are given, and must be deterministic for a seed,
    because the simulator's traces are compared across runs.
    """

    def initial_weights(self, seed: int) -> dict[str, Tensor]:
        """A fresh model (shared and private parameters) for this node."""
        ...

    def train(self, weights: Weights, *, seed: int) -> TrainResult:
        """Train local epochs starting from ``weights``; return new weights, never mutating inputs."""
        ...

    def evaluate(self, weights: Weights) -> dict[str, float]:
        """Metrics of ``weights`` on the node's local validation data."""
        ...


@runtime_checkable
class StatisticsLearner(Protocol):
    """A learner that publishes its node's co-listening statistics and scores with its group's sum.

    Optional: the core shares statistics only in a group that asks for them
    (``GroupInfo.statistics_noise``) and only from learners that implement this
    (``agents/protocol/statistics.py``); payloads are ``models.itemgraph`` safetensors bytes.
    """

    def statistics_payload(self, noise: float, *, seed: int) -> bytes | None:
        """This node's noised statistics (None: it has no listens to describe)."""
        ...

    def statistics_problem(self, data: bytes) -> str | None:
        """Why received statistics cannot be used (a one-line reason), or None if they can."""
        ...

    def evaluate_with_statistics(self, weights: Weights, statistics: Sequence[bytes]) -> dict[str, float]:
        """Metrics of ``weights`` blended with the item graph summed from ``statistics``."""
        ...


@dataclass(frozen=True)
class WeightedParameters:
    """One contribution to a merge: shared parameters and their weight (training interactions)."""

    parameters: Weights
    weight: float
    source: str = ""
    digest: str = ""  # SHA-256 of the parameters when known (a content address, section 6 of the doc)
    rows: Mapping[str, Tensor] | None = None  # row-sparse: parameters[name] holds only these rows


class MergeRule(Protocol):
    """Merges the group's contributions into one set of shared parameters (pure, no mutation).

    ``reference`` is the receiver's own current shared weights: robust rules and row-sparse
    updates fall back on it for rows nobody sent.
    """

    def __call__(
        self, contributions: Sequence[WeightedParameters], *, reference: Weights | None = None
    ) -> dict[str, Tensor]: ...


RuleResolver = Callable[[str], MergeRule]


# Content address -> the merge library's validated update. Eight members of a group merge the same
# eight updates; validating each once instead of at every receiver saved a sixth of a simulated
# round. Bounded so that it never keeps more than a few rounds of a large simulation alive.
_PREPARED: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
_PREPARED_LIMIT = 256


def _prepared(item: WeightedParameters, index: int) -> Any:
    from models.merge import ModelUpdate

    sender = item.source or f"urn:spore:contribution:{index}"
    examples = max(0, round(item.weight))
    key = (sender, item.digest, examples)
    if item.digest and key in _PREPARED:
        _PREPARED.move_to_end(key)
        return _PREPARED[key]
    update = ModelUpdate(
        sender=sender, round=0, weights=item.parameters, num_examples=examples, rows=item.rows or {}
    )
    if item.digest:
        _PREPARED[key] = update
        if len(_PREPARED) > _PREPARED_LIMIT:
            _PREPARED.popitem(last=False)
    return update


COORDINATE_MEDIAN = "https://w3id.org/spore/ns#CoordinateMedian"


@cache
def resolve_rule(rule_iri: str) -> MergeRule:
    """The merge rule the ontology individual ``rule_iri`` names, from :mod:`models.merge`.

    ``models.merge`` rules aggregate its own ``ModelUpdate`` values (sender, round, weights,
    number of examples); this adapter is the one place that knows that calling convention.
    Raises ``models.merge.UnknownRuleError`` for an IRI no rule implements.

    A round with fewer updates than the rule's guarantee needs (Krum: 2f + 3) is merged with the
    coordinate-wise median instead, the robust rule that is defined for any count; stopping the
    group's rounds for good, as raising would, is worse than a weaker guarantee for one round.
    """
    from models.merge import TooFewUpdatesError, rule_for

    rule = rule_for(rule_iri)

    def merge(
        contributions: Sequence[WeightedParameters], *, reference: Weights | None = None
    ) -> dict[str, Tensor]:
        updates = [_prepared(item, index) for index, item in enumerate(contributions)]
        try:
            return rule.aggregate(updates, reference=reference)
        except TooFewUpdatesError:
            return rule_for(COORDINATE_MEDIAN).aggregate(updates, reference=reference)

    return merge
