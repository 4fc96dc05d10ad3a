"""The aggregation interface and the rules a blueprint can name, keyed by their ontology individuals.

Like Flower's strategies, a rule is one small interface (updates in, weights out) and the classes
only wire the pure functions of :mod:`models.merge.rules` to validated, canonically ordered input.
Updates are sorted by sender before merging, so the result does not depend on the order in which
they arrived (the simulator and the network deliver in different orders; both must merge alike).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from rdflib import URIRef
from torch import Tensor

from models.merge import rules
from models.merge.update import (
    AggregationError,
    IncompatibleUpdatesError,
    ModelUpdate,
    RowStack,
    TooFewUpdatesError,
    check_compatible,
    finite_or_raise,
    stack_rows,
)
from ontology import SPORE

__all__ = [
    "AggregationRule",
    "WeightedMean",
    "VarianceCorrectedMean",
    "TrimmedMean",
    "CoordinateMedian",
    "Krum",
    "RULES",
    "UnknownRuleError",
    "rule_for",
]


@runtime_checkable
class AggregationRule(Protocol):
    """Merges a group's updates into new shared weights.

    ``aggregate(updates, reference=...)`` returns a fresh tensor for every shared parameter.
    ``reference`` is the receiver's current shared weights: it supplies the rows no member sent,
    lets updates carry only the rows they touched, and fixes the expected names and shapes. The
    receiver's own update, if it should count, is one of ``updates``. Neither input is modified.
    """

    iri: URIRef

    def aggregate(
        self, updates: Sequence[ModelUpdate], *, reference: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]: ...


def _prepare(
    updates: Sequence[ModelUpdate], reference: Mapping[str, Tensor] | None
) -> tuple[list[ModelUpdate], dict[str, torch.Size]]:
    ordered = sorted(updates, key=lambda update: update.sender)
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        if earlier.sender == later.sender:
            # One member counted twice would double its say in every rule, robust ones included.
            raise IncompatibleUpdatesError(f"two updates from {later.sender} in one merge")
    if reference is not None:
        for name, value in reference.items():
            if not bool(torch.isfinite(value).all()):
                raise IncompatibleUpdatesError(f"the receiver's own {name!r} holds NaN or infinite values")
    return ordered, check_compatible(ordered, reference)


def _finish(merged: Tensor, stack: RowStack, reference: Tensor | None) -> Tensor:
    if reference is None:
        return merged
    return torch.where(
        stack.covered.reshape(-1, *([1] * (merged.dim() - 1))), merged, reference.to(merged.dtype)
    )


class _RowwiseRule:
    """Template for rules that merge each parameter independently from its :class:`RowStack`."""

    iri: URIRef

    def aggregate(
        self, updates: Sequence[ModelUpdate], *, reference: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        ordered, shapes = _prepare(updates, reference)
        result: dict[str, Tensor] = {}
        for name, shape in shapes.items():
            stack = stack_rows(ordered, name, shape, reference)
            own = reference[name] if reference is not None else None
            result[name] = _finish(self._merge(stack), stack, own)
        return result

    def _merge(self, stack: RowStack) -> Tensor:
        raise NotImplementedError


class WeightedMean(_RowwiseRule):
    """FedAvg's example-weighted mean (:func:`models.merge.rules.weighted_mean`)."""

    iri = SPORE.WeightedMean

    def _merge(self, stack: RowStack) -> Tensor:
        return rules.weighted_mean(stack.values, stack.present, stack.weights)


class VarianceCorrectedMean(_RowwiseRule):
    """The weighted mean with row norms restored (:func:`models.merge.rules.variance_corrected_mean`)."""

    iri = SPORE.VarianceCorrectedMean

    def _merge(self, stack: RowStack) -> Tensor:
        return rules.variance_corrected_mean(stack.values, stack.present, stack.weights)


class TrimmedMean(_RowwiseRule):
    """Yin et al.'s trimmed mean, dropping a ``beta`` fraction at each end of every coordinate."""

    iri = SPORE.TrimmedMean

    def __init__(self, *, beta: float = 0.2) -> None:
        beta = finite_or_raise(beta, "beta")
        if not 0.0 <= beta < 0.5:
            raise AggregationError(f"the trimmed mean's beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def _merge(self, stack: RowStack) -> Tensor:
        return rules.trimmed_mean(stack.values, stack.present, beta=self.beta)


class CoordinateMedian(_RowwiseRule):
    """Yin et al.'s coordinate-wise median."""

    iri = SPORE.CoordinateMedian

    def _merge(self, stack: RowStack) -> Tensor:
        return rules.coordinate_median(stack.values, stack.present)


class Krum:
    """Krum and Multi-Krum (Blanchard et al., NeurIPS 2017) over whole shared models.

    Members are compared on all shared parameters at once, each completed with the receiver's
    values for the rows it did not send (a row not sent is a row not changed). The merged model is
    the plain mean of the ``num_selected`` best-scored members, each row over those of them that
    sent it; other rows keep the receiver's values.
    """

    iri = SPORE.Krum

    def __init__(self, *, num_byzantine: int = 1, num_selected: int = 1) -> None:
        for label, value in (("num_byzantine", num_byzantine), ("num_selected", num_selected)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise AggregationError(f"Krum's {label} must be an integer, got {value!r}")
        if num_byzantine < 0 or num_selected < 1:
            raise AggregationError("Krum needs num_byzantine >= 0 and num_selected >= 1")
        self.num_byzantine = num_byzantine
        self.num_selected = num_selected

    def select(
        self, updates: Sequence[ModelUpdate], *, reference: Mapping[str, Tensor] | None = None
    ) -> list[ModelUpdate]:
        """The updates Krum keeps, best first (what a node may also log as evidence)."""
        ordered, shapes = _prepare(updates, reference)
        return [ordered[i] for i in self._select(ordered, shapes, reference)]

    def _select(
        self,
        ordered: list[ModelUpdate],
        shapes: dict[str, torch.Size],
        reference: Mapping[str, Tensor] | None,
    ) -> list[int]:
        n = len(ordered)
        if n < 2 * self.num_byzantine + 3:
            raise TooFewUpdatesError(
                f"Krum with num_byzantine={self.num_byzantine} needs at least "
                f"{2 * self.num_byzantine + 3} updates, got {n}"
            )
        if self.num_selected > n:
            raise TooFewUpdatesError(f"Multi-Krum cannot select {self.num_selected} of {n} updates")
        flat = torch.cat(
            [
                stack_rows(ordered, name, shape, reference, complete=True).values.flatten(start_dim=1)
                for name, shape in shapes.items()
            ],
            dim=1,
        )
        return rules.krum_select(flat, self.num_byzantine, self.num_selected).tolist()

    def aggregate(
        self, updates: Sequence[ModelUpdate], *, reference: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        ordered, shapes = _prepare(updates, reference)
        chosen = [ordered[i] for i in sorted(self._select(ordered, shapes, reference))]
        result: dict[str, Tensor] = {}
        for name, shape in shapes.items():
            stack = stack_rows(chosen, name, shape, reference)
            equal = torch.ones_like(stack.weights)
            merged = rules.weighted_mean(stack.values, stack.present, equal)
            result[name] = _finish(merged, stack, reference[name] if reference is not None else None)
        return result


RULES: Mapping[URIRef, Callable[..., AggregationRule]] = {
    SPORE.WeightedMean: WeightedMean,
    SPORE.VarianceCorrectedMean: VarianceCorrectedMean,
    SPORE.TrimmedMean: TrimmedMean,
    SPORE.CoordinateMedian: CoordinateMedian,
    SPORE.Krum: Krum,
}


class UnknownRuleError(AggregationError):
    """A blueprint names an aggregation rule this node does not implement."""


def rule_for(iri: str | URIRef, **params: Any) -> AggregationRule:
    """The rule a blueprint's ``spore:aggregationRule`` names, built with its hyperparameters.

    >>> rule_for(SPORE.TrimmedMean, beta=0.25).beta
    0.25
    """
    factory = RULES.get(URIRef(str(iri)))
    if factory is None:
        known = ", ".join(sorted(str(key) for key in RULES))
        raise UnknownRuleError(f"unknown aggregation rule <{iri}>; known rules: {known}")
    try:
        return factory(**params)
    except TypeError as error:
        raise AggregationError(f"bad hyperparameters for <{iri}>: {error}") from None
