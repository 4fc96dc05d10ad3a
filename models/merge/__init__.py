"""Merging a learning group's model updates: one interface, interchangeable rules.

:class:`ModelUpdate` is what a member sends (shared parameters only, optionally row-sparse);
:func:`rule_for` builds the rule a blueprint names by its ontology individual; every rule's
``aggregate(updates, reference=...)`` returns the merged shared weights. The rules themselves are
pure functions in :mod:`models.merge.rules`.
"""

from models.merge.strategies import (
    RULES,
    AggregationRule,
    CoordinateMedian,
    Krum,
    TrimmedMean,
    UnknownRuleError,
    VarianceCorrectedMean,
    WeightedMean,
    rule_for,
)
from models.merge.update import (
    AggregationError,
    IncompatibleUpdatesError,
    InvalidUpdateError,
    MergeError,
    ModelUpdate,
    NonFiniteUpdateError,
    TooFewUpdatesError,
)

__all__ = [
    "RULES",
    "AggregationError",
    "TooFewUpdatesError",
    "AggregationRule",
    "CoordinateMedian",
    "IncompatibleUpdatesError",
    "InvalidUpdateError",
    "Krum",
    "MergeError",
    "ModelUpdate",
    "NonFiniteUpdateError",
    "TrimmedMean",
    "UnknownRuleError",
    "VarianceCorrectedMean",
    "WeightedMean",
    "rule_for",
]
