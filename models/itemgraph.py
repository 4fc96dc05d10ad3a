r"""The global item graph from co-listening statistics that nodes publish instead of their listens.

Item–item statistics are where federated recommenders lose most: a node sees how its own few hundred
listeners combine artists, while the centralized model sees everyone. Here every node publishes one
aggregate over its listeners, the listener-normalised co-listening matrix

.. math::
    S^{(k)} = \sum_{u \in k} \frac{r_u r_u^\top}{|r_u|}, \qquad
    S_{ij}^{(k)} = \sum_{u \in k} \frac{[u \text{ listened to } i \text{ and } j]}{|r_u|},

with Gaussian noise on every released entry, and a group sums what it receives: :math:`S = \sum_k S^{(k)}`
is exactly what one node holding everybody's listens would compute (up to the noise), whatever the
split. Scores come from RP3beta (Paudel, Christoffel, Newell and Bernstein, "Updatable, accurate,
diverse, and scalable recommendations for interactive applications", ACM TiiS 2017), a three-step
random walk listener → artist → listener → artist with popular targets damped:

.. math::
    W_{ij} = \frac{S_{ij}}{d_i \, d_j^{\beta}}, \quad d_i = \sum_j S_{ij}
    \text{ (the artist's listener count)}, \qquad \text{score}(u, j) = \sum_{i \in r_u} W_{ij}.

So no artist-degree vector has to be sent: the row sums of :math:`S` are the degrees.

Privacy (recorded in docs/spore-protocol.md, section 11): one listener changes :math:`S^{(k)}`'s upper
triangle by entries :math:`1/|r_u|` on :math:`|r_u|(|r_u|+1)/2` pairs, an L2 norm
:math:`\sqrt{(1 + 1/|r_u|)/2} \le 1`; noise of standard deviation ``sigma`` on each released entry is
the Gaussian mechanism with sensitivity 1 *on the released values*, but at the noise SPORE uses
(0.005) its epsilon is about 21,000 at delta 1e-5: no meaningful bound. Which pairs are released (the
support) is not noised either. It hides each listener's exact contribution, and no listener IRI,
interaction or per-listener row is ever part of the payload (:func:`models.privacy.check_outgoing`
runs on the encoded bytes). Nodes exchange these statistics as a protocol message
(``agents/protocol/statistics.py``).

Everything here is a pure function of tensors; the wire format is xz-compressed safetensors.
"""

from __future__ import annotations

import json
import lzma
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from models.compression import unxz

__all__ = [
    "FORMAT",
    "CoListening",
    "MalformedStatisticsError",
    "ItemGraph",
    "co_listening",
    "decode_statistics",
    "encode_statistics",
    "merge_statistics",
    "noised",
]

FORMAT = "spore-colistening/2"
# A copy of Last.fm statistics decodes to about 1 MB; anything past this is refused unread.
MAX_DECODED_BYTES = 256 * 2**20
PRESET = 6  # xz's default: preset 9 saves under 1 % here and needs a 64 MiB dictionary
HEADER_KEY = "spore-colistening"
DEFAULT_BETA = 0.3


class MalformedStatisticsError(ValueError):
    """Received bytes are not well-formed co-listening statistics; nothing from them may be used."""


@dataclass(frozen=True, eq=False)
class CoListening:
    """The upper triangle (``rows <= cols``, diagonal included) of one node's or a group's :math:`S`."""

    rows: Tensor  # int64 [n]
    cols: Tensor  # int64 [n]
    values: Tensor  # float32 [n]
    num_artists: int
    listeners: int  # how many listeners the statistics sum over (a count, sent in the clear)

    @property
    def entries(self) -> int:
        return int(self.values.numel())


def co_listening(train_edges: Tensor, num_listeners: int, num_artists: int) -> CoListening:
    """:math:`S^{(k)}` of one node's training edges (``[2, E]``: local listener, global artist)."""
    listener, artist = train_edges
    degree = torch.bincount(listener, minlength=num_listeners).clamp(min=1).to(torch.float32)
    ratings = torch.sparse_coo_tensor(
        train_edges, torch.ones(listener.numel()), (num_listeners, num_artists), check_invariants=False
    ).coalesce()
    scaled = torch.sparse_coo_tensor(
        train_edges.flip(0), 1.0 / degree[listener], (num_artists, num_listeners), check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        product = torch.sparse.mm(scaled, ratings).coalesce()
    rows, cols = product.indices()
    upper = rows <= cols
    present = int(torch.unique(listener).numel()) if listener.numel() else 0
    return CoListening(rows[upper], cols[upper], product.values()[upper].float(), num_artists, present)


def noised(statistics: CoListening, sigma: float, generator: torch.Generator) -> CoListening:
    """Gaussian noise of standard deviation ``sigma`` on every released entry (see the module doc)."""
    if sigma < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    noise = torch.randn(statistics.values.shape, generator=generator) * sigma
    return CoListening(
        statistics.rows,
        statistics.cols,
        statistics.values + noise,
        statistics.num_artists,
        statistics.listeners,
    )


def merge_statistics(parts: Iterable[CoListening]) -> CoListening:
    """The group's :math:`S`: the sum of every node's statistics (entries absent from one part are 0)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no statistics to merge")
    num_artists = parts[0].num_artists
    if any(part.num_artists != num_artists for part in parts):
        raise ValueError("statistics over different catalogues cannot be merged")
    total = torch.sparse_coo_tensor(
        torch.stack([torch.cat([p.rows for p in parts]), torch.cat([p.cols for p in parts])]),
        torch.cat([p.values for p in parts]),
        (num_artists, num_artists),
        check_invariants=False,
    ).coalesce()
    rows, cols = total.indices()
    return CoListening(rows, cols, total.values(), num_artists, sum(p.listeners for p in parts))


def encode_statistics(statistics: CoListening, *, quantum: float | None = None) -> bytes:
    """xz-compressed safetensors in compressed sparse rows: ``indptr`` int32 ``[A + 1]``, ``cols`` int16
    (int32 for catalogues over 32,767 artists) and either ``counts`` (int16, or int32 where a value
    needs it), each value rounded to a multiple of ``quantum``, or ``values`` float16.

    Rounding noised values to half the noise's standard deviation (``quantum = sigma / 2``) is
    post-processing, so it costs no privacy, and adds a uniform error of ``quantum / sqrt(12)``: about
    1 % more noise. It leaves a few hundred distinct small integers, which xz packs four times tighter
    than float16 (docs/spore-protocol.md, section 11). xz, from the standard library, carries its own
    integrity check.
    """
    if quantum is not None and not quantum > 0:
        raise ValueError(f"quantum must be positive, got {quantum}")
    order = torch.argsort(statistics.rows * statistics.num_artists + statistics.cols)
    rows, cols = statistics.rows[order], statistics.cols[order]
    indptr = torch.zeros(statistics.num_artists + 1, dtype=torch.int32)
    indptr[1:] = torch.bincount(rows, minlength=statistics.num_artists).cumsum(0).to(torch.int32)
    header: dict[str, object] = {
        "format": FORMAT,
        "num_artists": statistics.num_artists,
        "listeners": statistics.listeners,
    }
    tensors = {"indptr": indptr, "cols": cols.to(_index_type(statistics.num_artists)).contiguous()}
    values = statistics.values[order]
    if quantum is None:
        tensors["values"] = values.clamp(-65000, 65000).to(torch.float16).contiguous()
    else:
        counts = torch.round(values / quantum).clamp(-(2**31) + 1, 2**31 - 1).to(torch.int64)
        fits = not counts.numel() or int(counts.abs().max()) <= torch.iinfo(torch.int16).max
        tensors["counts"] = counts.to(torch.int16 if fits else torch.int32).contiguous()
        header["quantum"] = quantum
    data = save_safetensors(tensors, metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=PRESET)


def _index_type(num_artists: int) -> torch.dtype:
    return torch.int16 if num_artists <= torch.iinfo(torch.int16).max else torch.int32


def decode_statistics(data: bytes, *, num_artists: int) -> CoListening:
    """Parse received statistics for a catalogue of ``num_artists``; refuse anything malformed."""
    try:
        raw = unxz(bytes(data), limit=MAX_DECODED_BYTES)
    except ValueError as error:
        raise MalformedStatisticsError(f"not SPORE co-listening statistics: {error}") from None
    try:
        tensors = load_safetensors(raw)
        length = int.from_bytes(raw[:8], "little")
        header = json.loads(json.loads(raw[8 : 8 + length])["__metadata__"][HEADER_KEY])
    except Exception as error:  # safetensors and json raise several types for odd input
        raise MalformedStatisticsError(f"not SPORE co-listening statistics: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise MalformedStatisticsError(f"statistics are not {FORMAT}")
    if header.get("num_artists") != num_artists:
        raise MalformedStatisticsError(
            f"statistics are over {header.get('num_artists')} artists, not {num_artists}"
        )
    values = _decoded_values(tensors, header)
    indptr, cols = tensors["indptr"], tensors["cols"]
    if indptr.dtype != torch.int32 or cols.dtype not in (torch.int16, torch.int32):
        raise MalformedStatisticsError("indptr must be int32 and cols int16 or int32")
    if cols.dim() != 1 or values.shape != cols.shape:
        raise MalformedStatisticsError("there must be one value per column index")
    steps = indptr[1:] - indptr[:-1] if indptr.numel() else indptr
    if indptr.shape != (num_artists + 1,) or int(indptr[0]) != 0 or int(indptr[-1]) != cols.numel():
        raise MalformedStatisticsError("indptr must run from 0 to the number of entries, one per artist")
    if bool((steps < 0).any()):
        raise MalformedStatisticsError("indptr must not decrease")
    rows = torch.repeat_interleave(torch.arange(num_artists), steps.long())
    cols = cols.long()
    if cols.numel() and (int(cols.max()) >= num_artists or bool((rows > cols).any())):
        raise MalformedStatisticsError("entries must lie in the upper triangle of the catalogue")
    if not bool(torch.isfinite(values).all()):
        raise MalformedStatisticsError("values must be finite")
    listeners = header.get("listeners")
    if not isinstance(listeners, int) or isinstance(listeners, bool) or listeners < 0:
        raise MalformedStatisticsError("the listener count must be a non-negative integer")
    return CoListening(rows, cols, values, num_artists, listeners)


def _decoded_values(tensors: dict[str, Tensor], header: dict[str, object]) -> Tensor:
    """float32 values from either encoding: float16 ``values``, or integer ``counts`` times the quantum."""
    quantum = header.get("quantum")
    if quantum is None:
        if set(tensors) != {"indptr", "cols", "values"}:
            raise MalformedStatisticsError(f"unexpected tensors {sorted(tensors)}")
        if tensors["values"].dtype != torch.float16:
            raise MalformedStatisticsError("values must be float16")
        return tensors["values"].to(torch.float32)
    if set(tensors) != {"indptr", "cols", "counts"}:
        raise MalformedStatisticsError(f"unexpected tensors {sorted(tensors)}")
    if isinstance(quantum, bool) or not isinstance(quantum, int | float) or not 0 < quantum < math.inf:
        raise MalformedStatisticsError("the quantum must be a positive number")
    if tensors["counts"].dtype not in (torch.int16, torch.int32):
        raise MalformedStatisticsError("counts must be int16 or int32")
    return tensors["counts"].to(torch.float64).mul(quantum).to(torch.float32)


@dataclass(frozen=True, eq=False)
class ItemGraph:
    """RP3beta transition weights over the merged co-listening graph; scores listeners of one node."""

    transposed: Tensor  # sparse CSR [A, A], W^T, so that scores^T = W^T r^T is one sparse-dense product
    beta: float

    @classmethod
    def from_statistics(cls, statistics: CoListening, *, beta: float = DEFAULT_BETA) -> ItemGraph:
        # Noise can push small entries below zero; a negative co-listening weight means nothing, and
        # clamping is post-processing of released values, so it costs no privacy.
        values = statistics.values.clamp(min=0.0)
        off = statistics.rows != statistics.cols
        rows = torch.cat([statistics.rows, statistics.cols[off]])
        cols = torch.cat([statistics.cols, statistics.rows[off]])
        values = torch.cat([values, values[off]])
        degree = torch.zeros(statistics.num_artists).index_add_(0, rows, values).clamp(min=1e-6)
        keep = rows != cols  # an artist recommending itself is masked anyway
        rows, cols = rows[keep], cols[keep]
        weights = values[keep] / degree[rows] / degree[cols].pow(beta)
        shape = (statistics.num_artists, statistics.num_artists)
        transposed = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), weights, shape, check_invariants=False
        ).coalesce()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return cls(transposed.to_sparse_csr(), beta)

    def score(self, listened: Tensor) -> Tensor:
        """Scores ``[B, A]`` for ``listened``, a dense ``[B, A]`` 0/1 matrix of training artists."""
        return (self.transposed @ listened.T.to(torch.float32)).T
