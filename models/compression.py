r"""Compressed model deltas: only the rows that changed, top-k with error feedback, int8 per row.

A node sends its group the *change* of its shared parameters since the last merge, not the
parameters: most artist rows are untouched by a node's listeners in a round, and the few that are
can be cut further. Three published steps, each a pure function here:

* **Row sparsity.** Only rows whose change is non-zero are candidates (an embedding row no local
  listener reached has a zero gradient).
* **Top-k with error feedback.** Of those, only the ``k`` rows with the largest L2 norm are sent;
  what is not sent (and the quantisation error of what is) is kept as a residual and added to the
  next round's change, so that nothing is lost, only delayed: "memory" in Stich, Cordonnier and
  Jaggi, NeurIPS 2018 ("Sparsified SGD with Memory", arXiv:1809.07599), first used for 1-bit SGD
  by Seide et al., Interspeech 2014. Selecting whole rows rather than single coordinates keeps one
  index per row instead of one per value.
* **Symmetric int8 per row.** Row ``r`` is sent as ``q_r = round(x_r / s_r)`` with
  ``s_r = max|x_r| / 127``; every value is recovered within ``s_r / 2``.

The wire format is safetensors (no pickle): per parameter ``<name>/rows`` (int32, increasing),
``<name>/values`` (int8 or float32) and, for int8, ``<name>/scales`` (float32); the header's
metadata holds one entry, ``spore-delta``, a JSON object with the format tag, every parameter's
full shape and the sender's free-form metadata (one entry because safetensors writes several in
hash order, and a content-addressed payload must serialise the same way every time).
:func:`decode` checks all of it and raises :class:`MalformedDeltaError` on anything else.
"""

from __future__ import annotations

import json
import lzma
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from models.lightgcn import SHARED_PREFIXES

__all__ = [
    "FORMAT",
    "MAX_PAYLOAD_BYTES",
    "CompressionError",
    "MalformedDeltaError",
    "RowDelta",
    "CompressedDelta",
    "ErrorFeedback",
    "changed_rows",
    "quantize_rows",
    "dequantize_rows",
    "top_k_rows",
    "compress_with_feedback",
    "encode",
    "decode",
    "updated_rows",
    "is_xz",
    "unxz",
    "full_copy_bytes",
]

FORMAT = "spore-delta/1"
HEADER_KEY = "spore-delta"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
INT8_LIMIT = 127


class CompressionError(ValueError):
    """A delta cannot be compressed or applied (bad shapes, non-finite values, bad settings)."""


class MalformedDeltaError(CompressionError):
    """Received bytes are not a well-formed SPORE delta; nothing from them may be used."""


@dataclass(frozen=True)
class RowDelta:
    """The sent change of one parameter: ``rows [k]`` (increasing), ``values [k, *row]`` as int8
    with ``scales [k]``, or as float32 with ``scales`` None; ``shape`` is the full parameter's."""

    rows: Tensor
    values: Tensor
    scales: Tensor | None
    shape: tuple[int, ...]

    def dequantized(self) -> Tensor:
        """The change of the sent rows as float32 ``[k, *row]``."""
        if self.scales is None:
            return self.values.to(torch.float32)
        return dequantize_rows(self.values, self.scales)

    def dense(self) -> Tensor:
        """The change as a full float32 tensor of ``shape``, zero on rows not sent."""
        out = torch.zeros(self.shape, dtype=torch.float32)
        out[self.rows.long()] = self.dequantized()
        return out


@dataclass(frozen=True)
class CompressedDelta:
    """What one node sends for one round: a :class:`RowDelta` per shared parameter."""

    parameters: Mapping[str, RowDelta]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def rows_sent(self) -> int:
        return sum(int(part.rows.numel()) for part in self.parameters.values())


def _rows_flat(values: Tensor) -> Tensor:
    """``[k, *row]`` as ``[k, prod(row)]``, also when ``k`` is zero."""
    return values.reshape(values.shape[0], math.prod(values.shape[1:]))


def changed_rows(before: Tensor, after: Tensor) -> Tensor:
    """Indices (int64, increasing) of the rows in which ``after`` differs from ``before``."""
    if before.shape != after.shape:
        raise CompressionError(f"cannot compare shapes {tuple(before.shape)} and {tuple(after.shape)}")
    differs = _rows_flat(before != after).any(dim=1)
    return differs.nonzero().flatten()


def quantize_rows(values: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per row: ``(q [k, *row] int8, scales [k] float32)``, ``|x - q s| <= s / 2``."""
    flat = _rows_flat(values.detach().to(torch.float32))
    scales = flat.abs().amax(dim=1) / INT8_LIMIT if flat.shape[1] else torch.zeros(flat.shape[0])
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.round(flat / safe[:, None]).clamp(-INT8_LIMIT, INT8_LIMIT).to(torch.int8)
    return q.reshape(values.shape), scales


def dequantize_rows(q: Tensor, scales: Tensor) -> Tensor:
    """The float32 rows that :func:`quantize_rows` encoded."""
    return q.to(torch.float32) * scales.reshape(-1, *([1] * (q.dim() - 1)))


def top_k_rows(change: Tensor, k: int) -> Tensor:
    """The ``k`` non-zero rows of ``change`` with the largest L2 norm, as increasing int64 indices.

    Ties go to the lower index, so that every run picks the same rows.
    """
    norms = _rows_flat(change.detach().to(torch.float64)).norm(dim=1)
    nonzero = int((norms > 0).sum())
    k = min(k, nonzero)
    if k <= 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.sort(-norms, stable=True).indices[:k]
    return torch.sort(order).values


def compress_with_feedback(
    change: Mapping[str, Tensor],
    residual: Mapping[str, Tensor] | None = None,
    *,
    fraction: float = 0.1,
    quantize: bool = True,
) -> tuple[CompressedDelta, dict[str, Tensor]]:
    """Compress this round's ``change`` (full-shape float tensors of shared parameters) after adding
    the ``residual`` left from earlier rounds; return what to send and the new residual.

    Per parameter at most ``ceil(fraction * rows)`` rows are sent. By construction the sum of all
    sent deltas equals the sum of all changes minus the final residual. Inputs are not modified.
    """
    if not 0.0 < fraction <= 1.0 or not math.isfinite(fraction):
        raise CompressionError(f"the fraction of rows to send must be in (0, 1], got {fraction}")
    residual = residual or {}
    parts: dict[str, RowDelta] = {}
    remaining: dict[str, Tensor] = {}
    for name in sorted(change):
        if not name.startswith(SHARED_PREFIXES):
            raise CompressionError(f"{name!r} is not a shared parameter and is never sent")
        value = change[name]
        if value.dim() == 0 or not value.is_floating_point():
            raise CompressionError(f"{name!r} must be a floating-point tensor with rows")
        if not bool(torch.isfinite(value).all()):
            raise CompressionError(f"the change of {name!r} holds NaN or infinite values")
        carried = residual.get(name)
        if carried is not None and carried.shape != value.shape:
            raise CompressionError(
                f"the residual of {name!r} has shape {tuple(carried.shape)}, not {tuple(value.shape)}"
            )
        total = value.detach().to(torch.float32) + (carried if carried is not None else 0.0)
        rows = top_k_rows(total, math.ceil(fraction * value.shape[0]))
        if quantize:
            q, scales = quantize_rows(total[rows])
            part = RowDelta(rows.to(torch.int32), q, scales, tuple(value.shape))
        else:
            part = RowDelta(rows.to(torch.int32), total[rows].clone(), None, tuple(value.shape))
        left = total.clone()
        left[rows] -= part.dequantized()
        parts[name], remaining[name] = part, left
    return CompressedDelta(parts), remaining


class ErrorFeedback:
    """Holds one node's residuals between rounds and wires :func:`compress_with_feedback`."""

    def __init__(self, *, fraction: float = 0.1, quantize: bool = True) -> None:
        self.fraction = fraction
        self.quantize = quantize
        self.residual: dict[str, Tensor] = {}

    def compress(self, change: Mapping[str, Tensor]) -> CompressedDelta:
        delta, self.residual = compress_with_feedback(
            change, self.residual, fraction=self.fraction, quantize=self.quantize
        )
        return delta


def encode(delta: CompressedDelta) -> bytes:
    """The safetensors bytes of ``delta`` (deterministic for equal content)."""
    tensors: dict[str, Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for name, part in sorted(delta.parameters.items()):
        tensors[f"{name}/rows"] = part.rows.to(torch.int32).contiguous()
        tensors[f"{name}/values"] = part.values.contiguous()
        if part.scales is not None:
            tensors[f"{name}/scales"] = part.scales.to(torch.float32).contiguous()
        shapes[name] = list(part.shape)
    header = {"format": FORMAT, "shapes": shapes, "metadata": dict(delta.metadata)}
    return save_safetensors(tensors, metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})


def decode(
    data: bytes, *, expected: Mapping[str, torch.Size] | None = None, max_bytes: int = MAX_PAYLOAD_BYTES
) -> CompressedDelta:
    """Parse and check received bytes; ``expected`` (the receiver's shapes) must match if given.

    Refuses, with :class:`MalformedDeltaError`: oversized or truncated input, a header that is not
    SPORE's format, per-listener or unknown parameters, wrong dtypes, shapes that disagree with the
    header or with ``expected``, rows out of range, unsorted or repeated, and non-finite values.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedDeltaError(f"a delta is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise MalformedDeltaError(f"delta of {len(data)} bytes exceeds the limit of {max_bytes}")
    header = _header(data)
    shapes = _declared_shapes(header.get("shapes"))
    try:
        tensors = load_safetensors(data)
    except Exception as error:  # safetensors raises its own error type and, for odd input, others
        raise MalformedDeltaError(f"not a safetensors payload: {error}") from None
    parts = {name: _read_part(name, shape, tensors, expected) for name, shape in shapes.items()}
    known = {f"{name}/{kind}" for name in shapes for kind in ("rows", "values", "scales")}
    stray = sorted(set(tensors) - known)
    if stray:
        raise MalformedDeltaError(f"unexpected tensors in delta: {', '.join(stray[:5])}")
    extra = header.get("metadata", {})
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise MalformedDeltaError("delta metadata must map names to strings")
    return CompressedDelta(parts, extra)


def _header(data: bytes) -> dict[str, object]:
    if len(data) < 8:
        raise MalformedDeltaError("delta is shorter than a safetensors header")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise MalformedDeltaError("delta header is longer than the payload")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedDeltaError("delta header is not JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    try:
        ours = json.loads(metadata[HEADER_KEY]) if isinstance(metadata, dict) else None
    except (TypeError, KeyError, json.JSONDecodeError):
        ours = None
    if not isinstance(ours, dict) or ours.get("format") != FORMAT:
        raise MalformedDeltaError(f"delta header does not declare format {FORMAT}")
    return ours


def _declared_shapes(shapes: object) -> dict[str, tuple[int, ...]]:
    if not isinstance(shapes, dict):
        raise MalformedDeltaError("delta header lacks its parameter shapes")
    result: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        # Privacy: a per-listener table is refused on receipt too, not only when sending.
        if not name.startswith(SHARED_PREFIXES):
            raise MalformedDeltaError(f"delta carries {name!r}, which is not a shared parameter")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise MalformedDeltaError(f"delta declares a bad shape for {name!r}: {shape!r}")
        result[name] = tuple(shape)
    return result


def _read_part(
    name: str, shape: tuple[int, ...], tensors: dict[str, Tensor], expected: Mapping[str, torch.Size] | None
) -> RowDelta:
    if expected is not None:
        if name not in expected:
            raise MalformedDeltaError(f"delta carries {name!r}, which the receiver does not have")
        if tuple(expected[name]) != shape:
            raise MalformedDeltaError(
                f"delta declares {name!r} as {list(shape)}, the receiver has {list(expected[name])}"
            )
    rows, values, scales = (tensors.get(f"{name}/{kind}") for kind in ("rows", "values", "scales"))
    if rows is None or values is None:
        raise MalformedDeltaError(f"delta lacks the rows or values of {name!r}")
    if rows.dtype != torch.int32 or rows.dim() != 1:
        raise MalformedDeltaError(f"rows of {name!r} must be a 1-D int32 tensor")
    if tuple(values.shape) != (rows.numel(), *shape[1:]):
        raise MalformedDeltaError(
            f"values of {name!r} have shape {list(values.shape)} for {rows.numel()} rows"
        )
    if rows.numel() and (
        int(rows[0]) < 0 or int(rows[-1]) >= shape[0] or not bool((rows[1:] > rows[:-1]).all())
    ):
        raise MalformedDeltaError(f"rows of {name!r} must be increasing and within 0..{shape[0] - 1}")
    if values.dtype == torch.int8:
        if scales is None or scales.dtype != torch.float32 or tuple(scales.shape) != (rows.numel(),):
            raise MalformedDeltaError(f"int8 values of {name!r} need one float32 scale per row")
        if not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
            raise MalformedDeltaError(f"scales of {name!r} must be finite and non-negative")
        if values.numel() and int(values.min()) < -INT8_LIMIT:
            raise MalformedDeltaError(f"int8 values of {name!r} must lie in -127..127")
    elif values.dtype == torch.float32:
        if scales is not None:
            raise MalformedDeltaError(f"float32 values of {name!r} take no scales")
        if not bool(torch.isfinite(values).all()):
            raise MalformedDeltaError(f"values of {name!r} hold NaN or infinite numbers")
    else:
        raise MalformedDeltaError(f"values of {name!r} must be int8 or float32, not {values.dtype}")
    return RowDelta(rows, values, scales, shape)


def updated_rows(
    base: Mapping[str, Tensor], delta: CompressedDelta
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(weights, rows)`` for a row-sparse :class:`models.merge.ModelUpdate`: ``base`` plus the
    decoded change on the rows sent (the sender's new values, if ``base`` is what it started from).
    """
    weights: dict[str, Tensor] = {}
    rows: dict[str, Tensor] = {}
    for name, part in delta.parameters.items():
        if name not in base or tuple(base[name].shape) != part.shape:
            raise CompressionError(f"the delta of {name!r} does not fit the base weights")
        index = part.rows.long()
        weights[name] = base[name][index].to(torch.float32) + part.dequantized()
        rows[name] = index
    return weights, rows


def full_copy_bytes(shapes: Mapping[str, torch.Size | tuple[int, ...]]) -> int:
    """Bytes of one full float32 copy of the given parameters: the baseline a delta is compared to."""
    return sum(4 * math.prod(shape) for shape in shapes.values())


XZ_MAGIC = b"\xfd7zXZ\x00"


def is_xz(data: bytes) -> bool:
    return data[:6] == XZ_MAGIC


def unxz(data: bytes, *, limit: int) -> bytes:
    """The one xz stream ``data`` holds, refused (``ValueError``) past ``limit`` decoded bytes, so that
    a small payload cannot expand into gigabytes, and refused with trailing bytes or a bad check."""
    if not is_xz(data):
        raise ValueError("not xz-compressed")
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        out = decompressor.decompress(data, max_length=limit + 1)
    except lzma.LZMAError as error:
        raise ValueError(f"corrupt xz stream: {error}") from None
    if len(out) > limit:
        raise ValueError(f"decodes to more than {limit} bytes")
    if not decompressor.eof:
        raise ValueError("truncated xz stream")
    if decompressor.unused_data:
        raise ValueError("bytes after the xz stream")
    return out
