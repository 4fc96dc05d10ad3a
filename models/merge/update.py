"""Model updates as they reach the merge step, their validation, and stacking for row-wise rules.

An update carries only *shared* (item-side) parameters: the type refuses a ``listener_*`` name, so a
per-listener table cannot be handed to a group by mistake. For embedding tables a member may send
only the rows it touched (``rows[name]`` lists them, ``weights[name]`` holds those rows in order);
rules then merge each row over the members that sent it and keep the receiver's value for rows no
one sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor

from models.lightgcn import SHARED_PREFIXES

__all__ = [
    "MergeError",
    "InvalidUpdateError",
    "NonFiniteUpdateError",
    "IncompatibleUpdatesError",
    "AggregationError",
    "TooFewUpdatesError",
    "ModelUpdate",
    "RowStack",
    "stack_rows",
    "check_compatible",
    "parameter_names",
]


class MergeError(ValueError):
    """Updates cannot be merged; the message names the update and parameter at fault."""


class InvalidUpdateError(MergeError):
    """One update is malformed on its own (private parameter, bad row indices, negative count)."""


class NonFiniteUpdateError(InvalidUpdateError):
    """An update holds NaN or infinite values, which would poison every rule but the median."""


class IncompatibleUpdatesError(MergeError):
    """Updates disagree with each other or with the receiver's weights on names or shapes."""


class AggregationError(MergeError):
    """A rule's preconditions do not hold (no updates, too few for Krum, bad hyperparameters)."""


class TooFewUpdatesError(AggregationError):
    """A round brought fewer updates than the rule's guarantee needs (Krum: 2f + 3).

    Apart from other aggregation errors because a group can fall short in one round (members late,
    screened out, or simply few) and should still merge with a rule that works for any count.
    """


@dataclass(frozen=True)
class ModelUpdate:
    """One member's shared parameters after its local training, as sent to its group.

    ``weights`` maps a shared parameter name (``artist_embedding.weight``...) to its values: the
    whole tensor, or, when ``rows`` names that parameter, only the listed rows (``weights[name]``
    is ``[len(rows[name]), *row_shape]``). ``rows[name]`` is a 1-D integer tensor of distinct,
    non-negative row indices. ``num_examples`` is the number of training interactions behind the
    update (FedAvg's weight). Tensors are not copied: callers must not modify them afterwards.
    """

    sender: str
    round: int
    weights: Mapping[str, Tensor]
    num_examples: int
    rows: Mapping[str, Tensor] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sender:
            raise InvalidUpdateError("an update needs its sender's IRI")
        if isinstance(self.round, bool) or not isinstance(self.round, int) or self.round < 0:
            raise InvalidUpdateError(f"update from {self.sender}: round must be a non-negative integer")
        if (
            isinstance(self.num_examples, bool)
            or not isinstance(self.num_examples, int)
            or self.num_examples < 0
        ):
            raise InvalidUpdateError(
                f"update from {self.sender}: num_examples must be a non-negative integer"
            )
        if not self.weights:
            raise InvalidUpdateError(f"update from {self.sender} carries no parameters")
        for name, value in self.weights.items():
            self._check_tensor(name, value)
        for name, index in self.rows.items():
            self._check_rows(name, index)
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "rows", MappingProxyType(dict(self.rows)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def _check_tensor(self, name: str, value: Tensor) -> None:
        # Privacy by construction: listener tables describe people and must never reach a group.
        if not name.startswith(SHARED_PREFIXES):
            raise InvalidUpdateError(
                f"update from {self.sender}: {name!r} is not a shared parameter "
                f"(shared names start with {', '.join(SHARED_PREFIXES)})"
            )
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise InvalidUpdateError(f"update from {self.sender}: {name!r} must be a floating-point tensor")
        if value.dim() == 0:
            raise InvalidUpdateError(f"update from {self.sender}: {name!r} must have at least one dimension")
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteUpdateError(f"update from {self.sender}: {name!r} holds NaN or infinite values")

    def _check_rows(self, name: str, index: Tensor) -> None:
        if name not in self.weights:
            raise InvalidUpdateError(f"update from {self.sender}: rows given for {name!r} but no values")
        if not isinstance(index, Tensor) or index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
            raise InvalidUpdateError(
                f"update from {self.sender}: rows of {name!r} must be a 1-D integer tensor"
            )
        if index.numel() != self.weights[name].shape[0]:
            raise InvalidUpdateError(
                f"update from {self.sender}: {name!r} has {self.weights[name].shape[0]} rows of values "
                f"for {index.numel()} row indices"
            )
        if index.numel() and int(index.min()) < 0:
            raise InvalidUpdateError(f"update from {self.sender}: rows of {name!r} must be non-negative")
        if torch.unique(index).numel() != index.numel():
            raise InvalidUpdateError(f"update from {self.sender}: rows of {name!r} repeat an index")

    def is_sparse(self, name: str) -> bool:
        """Whether this update carries only some rows of ``name``."""
        return name in self.rows


def parameter_names(updates: Sequence[ModelUpdate], reference: Mapping[str, Tensor] | None) -> list[str]:
    """The names the merged result will hold: the receiver's own, or else the updates' (sorted)."""
    if reference is not None:
        return sorted(reference)
    return sorted({name for update in updates for name in update.weights})


def check_compatible(
    updates: Sequence[ModelUpdate], reference: Mapping[str, Tensor] | None
) -> dict[str, torch.Size]:
    """Each parameter's full shape, after checking every update against it.

    Without the receiver's weights, every update must send every parameter in full (otherwise
    the rows nobody sent would have no value); with them, an update may omit parameters or rows.
    """
    if not updates:
        raise AggregationError("no updates to aggregate")
    names = parameter_names(updates, reference)
    shapes: dict[str, torch.Size] = {}
    for name in names:
        if reference is not None:
            shapes[name] = reference[name].shape
            continue
        for update in updates:
            if name not in update.weights or update.is_sparse(name):
                raise IncompatibleUpdatesError(
                    f"update from {update.sender} lacks rows of {name!r} and no reference weights were given"
                )
        shapes[name] = updates[0].weights[name].shape
    for update in updates:
        extra = set(update.weights) - set(names)
        if extra:
            raise IncompatibleUpdatesError(
                f"update from {update.sender} sends parameters the receiver lacks: {', '.join(sorted(extra))}"
            )
        for name in update.weights:
            _check_shape(update, name, shapes[name])
    return shapes


def _check_shape(update: ModelUpdate, name: str, shape: torch.Size) -> None:
    value = update.weights[name]
    if update.is_sparse(name):
        index = update.rows[name]
        if tuple(value.shape[1:]) != tuple(shape[1:]):
            raise IncompatibleUpdatesError(
                f"update from {update.sender}: rows of {name!r} have shape {tuple(value.shape[1:])}, "
                f"expected {tuple(shape[1:])}"
            )
        if index.numel() and int(index.max()) >= shape[0]:
            raise IncompatibleUpdatesError(
                f"update from {update.sender}: row {int(index.max())} of {name!r} is out of range "
                f"({shape[0]} rows)"
            )
    elif value.shape != shape:
        raise IncompatibleUpdatesError(
            f"update from {update.sender}: {name!r} has shape {tuple(value.shape)}, expected {tuple(shape)}"
        )


@dataclass(frozen=True)
class RowStack:
    """One parameter across members: ``values [n, R, *row]``, ``present [n, R]``, ``weights [n]``.

    Rows a member did not send are masked out by ``present``; row-wise rules must ignore them.
    """

    values: Tensor
    present: Tensor
    weights: Tensor

    @property
    def covered(self) -> Tensor:
        """Rows that at least one member sent."""
        return self.present.any(dim=0)


def stack_rows(
    updates: Sequence[ModelUpdate],
    name: str,
    shape: torch.Size,
    reference: Mapping[str, Tensor] | None,
    *,
    complete: bool = False,
) -> RowStack:
    """Densify one parameter across updates (see :class:`RowStack`); inputs are left untouched.

    Rows a member did not send are zero, or with ``complete`` the reference's value (for rules
    that compare whole models, where a row not sent is a row not changed).
    """
    base = reference[name] if reference is not None else None
    dtype = base.dtype if base is not None else updates[0].weights[name].dtype
    values = torch.zeros((len(updates), *shape), dtype=dtype)
    present = torch.zeros((len(updates), shape[0]), dtype=torch.bool)
    for i, update in enumerate(updates):
        if name in update.weights and not update.is_sparse(name):
            values[i] = update.weights[name]
            present[i] = True
            continue
        if complete and base is not None:
            values[i] = base
        if name in update.weights:
            index = update.rows[name].long()
            values[i, index] = update.weights[name].to(dtype)
            present[i, index] = True
    weights = torch.tensor([float(u.num_examples) for u in updates], dtype=torch.float64)
    return RowStack(values=values, present=present, weights=weights)


def finite_or_raise(value: float, what: str) -> float:
    """A hyperparameter as float, refusing NaN/inf (which would silently disable a robust rule)."""
    number = float(value)
    if not math.isfinite(number):
        raise AggregationError(f"{what} must be finite, got {value!r}")
    return number
