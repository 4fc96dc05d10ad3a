r"""Aggregation rules as pure functions over stacked member tensors.

Every function takes ``values [n, R, *row]`` (member ``i``'s value of row ``r``), ``present [n, R]``
(whether member ``i`` sent row ``r``) and returns the merged ``[R, *row]``. A row is merged over
the members that sent it only; rows nobody sent come out unspecified and the caller keeps its own
value there. Nothing here mutates its inputs. Per-row weights are normalised in float64 and the
tensors are combined in their own dtype, in one pass (the stacks are the size of ``n`` models).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "weighted_mean",
    "variance_corrected_mean",
    "trimmed_mean",
    "coordinate_median",
    "krum_scores",
    "krum_select",
]


def _per_row(mask: Tensor, like: Tensor) -> Tensor:
    """``[n, R]`` reshaped to broadcast against ``like`` ``[n, R, *row]``."""
    return mask.reshape(*mask.shape, *([1] * (like.dim() - 2)))


def _per_merged_row(vector: Tensor, like: Tensor) -> Tensor:
    """``[R]`` reshaped to broadcast against ``like`` ``[R, *row]``."""
    return vector.reshape(-1, *([1] * (like.dim() - 1)))


def _row_weights(present: Tensor, weights: Tensor) -> Tensor:
    """Per-row member weights ``[n, R]``: the given weights where present, equal ones if all are zero."""
    weighted = weights.to(torch.float64)[:, None] * present
    equal = present.to(torch.float64)
    return torch.where(weighted.sum(dim=0, keepdim=True) > 0, weighted, equal)


def _normalised(w: Tensor) -> Tensor:
    """``[n, R]`` weights scaled to sum to one per row (rows with no weight stay zero)."""
    return w / w.sum(dim=0, keepdim=True).clamp(min=1e-300)


def _rows3(values: Tensor) -> Tensor:
    """``[n, R, *row]`` as ``[n, R, prod(row)]`` (also for 1-D parameters and empty tables)."""
    return values.reshape(values.shape[0], values.shape[1], math.prod(values.shape[2:]))


def _combine(share: Tensor, values: Tensor) -> Tensor:
    """``sum_i share[i, r] * values[i, r, ...]`` in ``values``' dtype."""
    return torch.einsum("nr,nrk->rk", share.to(values.dtype), _rows3(values)).reshape(values.shape[1:])


def weighted_mean(values: Tensor, present: Tensor, weights: Tensor) -> Tensor:
    r"""FedAvg (McMahan et al., AISTATS 2017, "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", arXiv:1602.05629): :math:`\bar x_r = \sum_i w_i x_{ir} / \sum_i w_i`
    over the members :math:`i` that sent row :math:`r`, with :math:`w_i` the member's number of
    training examples. Rows whose senders all report zero examples get the plain mean.
    """
    return _combine(_normalised(_row_weights(present, weights)), values)


def variance_corrected_mean(values: Tensor, present: Tensor, weights: Tensor) -> Tensor:
    r"""The weighted mean with each row rescaled to the weighted mean of its inputs' norms.

    Averaging ``n`` models trained apart (gossip between nodes with unrelated initialisations)
    shrinks each embedding row towards zero: for uncorrelated rows of equal norm,
    :math:`\lVert \bar x \rVert \approx \lVert x \rVert / \sqrt{n_\mathrm{eff}}` with
    :math:`n_\mathrm{eff} = (\sum w)^2 / \sum w^2`, and dot-product scores shrink with it. This is
    the "variance collapse" of Jordan et al., ICLR 2023 ("REPAIR: REnormalizing Permuted Activations
    for Interpolation Repair", arXiv:2211.08403), whose closed-form repair sets each unit's statistic
    in the merged model to the interpolation of the endpoints' statistics. Here a unit is an
    embedding row and its statistic the L2 norm that scales every score it takes part in:

    .. math:: \hat x_r = \bar x_r \cdot \min\Big(\frac{\sum_i w_i \lVert x_{ir}\rVert}{\sum_i w_i
              \lVert \bar x_r \rVert}, \sqrt{n_{\mathrm{eff},r}}\Big)

    The gain is capped at :math:`\sqrt{n_\mathrm{eff}}`, what fully uncorrelated inputs need: a
    larger shrinkage means the inputs cancel out, and amplifying their residue would amplify noise.
    A row sent by one member is returned unchanged.
    """
    mean = weighted_mean(values, present, weights).to(torch.float64)
    w = _row_weights(present, weights)
    norms = (
        values.to(torch.float64).flatten(start_dim=2).norm(dim=2)
        if values.dim() > 2
        else values.abs().double()
    )
    total = w.sum(dim=0).clamp(min=1e-300)
    target = (w * norms).sum(dim=0) / total
    current = mean.flatten(start_dim=1).norm(dim=1) if mean.dim() > 1 else mean.abs()
    effective = total.square() / w.square().sum(dim=0).clamp(min=1e-300)
    gain = torch.where(current > 1e-12, target / current.clamp(min=1e-12), torch.ones_like(current))
    gain = torch.minimum(gain, effective.sqrt())
    return (mean * _per_merged_row(gain, mean)).to(values.dtype)


def _sorted_present(values: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Values sorted along the member axis with absent rows pushed last (as +inf), and row counts."""
    filled = values.masked_fill(~_per_row(present, values), math.inf)
    return torch.sort(filled, dim=0).values, present.sum(dim=0)


def trimmed_mean(values: Tensor, present: Tensor, *, beta: float) -> Tensor:
    r"""Coordinate-wise trimmed mean (Yin et al., ICML 2018, "Byzantine-Robust Distributed
    Learning: Towards Optimal Statistical Rates", arXiv:1803.01498, Definition 2): per coordinate,
    drop the :math:`\lfloor \beta c_r \rfloor` largest and smallest of the :math:`c_r` values sent
    for row :math:`r` and average the rest (``floor`` as in ``scipy.stats.trim_mean``).
    ``0 <= beta < 0.5``; weights are ignored, as in the paper.
    """
    if not 0.0 <= beta < 0.5:
        raise ValueError(f"the trimmed fraction must be in [0, 0.5), got {beta}")
    ordered, count = _sorted_present(values, present)
    cut = torch.floor(count.to(torch.float64) * beta).to(torch.int64)
    position = torch.arange(values.shape[0])[:, None]
    keep = (position >= cut) & (position < count - cut)
    kept = torch.where(_per_row(keep, ordered), ordered, torch.zeros((), dtype=ordered.dtype))
    denominator = (count - 2 * cut).clamp(min=1).to(ordered.dtype)
    return kept.sum(dim=0) / _per_merged_row(denominator, kept[0])


def coordinate_median(values: Tensor, present: Tensor) -> Tensor:
    r"""Coordinate-wise median (Yin et al., ICML 2018, Definition 1) over the members that sent each
    row; with an even count, the mean of the two middle values (``numpy.median``'s convention, not
    ``torch.median``'s lower median, so that the rule is symmetric in its inputs).
    """
    ordered, count = _sorted_present(values, present)
    low = ((count - 1).clamp(min=0) // 2)[None]
    high = (count // 2).clamp(max=values.shape[0] - 1)[None]
    shape = (1, *ordered.shape[1:])
    lower = torch.gather(ordered, 0, _per_row(low, ordered).expand(shape))
    upper = torch.gather(ordered, 0, _per_row(high, ordered).expand(shape))
    middle = (lower + upper) / 2
    return torch.where(torch.isfinite(middle), middle, torch.zeros((), dtype=middle.dtype))[0]


def krum_scores(flat: Tensor, num_byzantine: int) -> Tensor:
    r"""Krum scores (Blanchard et al., NeurIPS 2017, "Machine Learning with Adversaries: Byzantine
    Tolerant Gradient Descent"): :math:`s(i) = \sum_{j \in N_i} \lVert x_i - x_j \rVert^2` over the
    :math:`n - f - 2` nearest other members. ``flat`` is ``[n, D]``; needs :math:`n \ge 2f + 3`.
    """
    n = flat.shape[0]
    if num_byzantine < 0 or n < 2 * num_byzantine + 3:
        raise ValueError(
            f"Krum with f={num_byzantine} needs at least {2 * num_byzantine + 3} updates, got {n}"
        )
    x = flat.to(torch.float64)
    # The matrix-product shortcut of cdist loses precision for nearby points; exact differences keep
    # the choice of Krum stable when two members are almost equally central.
    distances = torch.cdist(x[None], x[None], compute_mode="donot_use_mm_for_euclid_dist")[0].square()
    distances.fill_diagonal_(math.inf)
    nearest = torch.sort(distances, dim=1).values[:, : n - num_byzantine - 2]
    return nearest.sum(dim=1)


def krum_select(flat: Tensor, num_byzantine: int, num_selected: int = 1) -> Tensor:
    """Indices of the ``num_selected`` members with the lowest Krum scores, lowest first; ties go
    to the earlier member. ``num_selected = 1`` is Krum, more is Multi-Krum (Blanchard et al., §5),
    whose merged model is the mean of the selected members.
    """
    scores = krum_scores(flat, num_byzantine)
    if not 1 <= num_selected <= flat.shape[0]:
        raise ValueError(f"Multi-Krum selects between 1 and {flat.shape[0]} updates, got {num_selected}")
    return torch.sort(scores, stable=True).indices[:num_selected]
