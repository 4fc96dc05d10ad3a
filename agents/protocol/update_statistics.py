"""Screening statistics of a round's updates: how each change's direction and size compare.

Computed by :class:`~agents.protocol.defence.LedgerDefence` before every merge and handed to the
pure rules of :mod:`reasoning.screening`. Each update is taken as its change from the round's base
(a compressed change as sent, full parameters minus the base). Direction and size are judged apart:
honest members step at different sizes, since their blueprints differ, but they step the same way;
sign-flipped and random updates point elsewhere, and a scaled one is too long
(:data:`reasoning.screening.MAGNITUDE_BOUND`).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import Tensor

from agents.protocol.messages import ModelUpdate
from models.compression import updated_rows
from models.merge.rules import coordinate_median, krum_scores

__all__ = ["STATISTICS", "magnitude_ratios", "screening_statistic", "update_scores"]

STATISTICS = ("median-distance", "krum")


def _change(update: ModelUpdate, base: Mapping[str, Tensor]) -> Tensor:
    """The update's change from the round's base as one flat vector in name order (a compressed
    change applied to the base first; a parameter the base lacks counts from zero)."""
    weights = updated_rows(base, update.delta)[0] if update.delta is not None else update.parameters
    return torch.cat(
        [
            (weights[name] - base[name] if name in base else weights[name]).reshape(-1).float()
            for name in sorted(weights)
        ]
    )


def _digest(base: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(base):
        digest.update(name.encode())
        digest.update(base[name].detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


# (statistic, base digest, (sender, sha256) of every update) -> (scores, magnitude ratios). Every
# member of a synchronous group screens the same updates from the same base; computing the
# statistics once per group instead of once per member took the defence from most of a simulated
# round's time to a small part of it. Bounded, like agents.protocol.learning's cache of prepared
# updates.
Scores = tuple[dict[str, float], dict[str, float]]
_SCORES: OrderedDict[tuple[str, str, tuple[tuple[str, str], ...]], Scores] = OrderedDict()
_SCORES_LIMIT = 64


def update_scores(updates: Mapping[str, ModelUpdate], base: Mapping[str, Tensor], statistic: str) -> Scores:
    key = (statistic, _digest(base), tuple(sorted((s, u.sha256) for s, u in updates.items())))
    if key in _SCORES:
        _SCORES.move_to_end(key)
        return _SCORES[key]
    changes = {s: _change(u, base) for s, u in updates.items()}
    found = (screening_statistic(changes, statistic), magnitude_ratios(changes))
    _SCORES[key] = found
    if len(_SCORES) > _SCORES_LIMIT:
        _SCORES.popitem(last=False)
    return found


def screening_statistic(changes: Mapping[str, Tensor], statistic: str) -> dict[str, float]:
    """Per sender, how far its change lies from the others' (larger is more suspicious).

    ``median-distance``: the L2 distance of the change's direction (the change scaled to unit length)
    to the coordinate-wise median of the directions (after Yin et al., ICML 2018, whose median is
    robust to a minority of arbitrary updates). Directions, because honest members step at different
    sizes (their blueprints differ): size is judged apart, by :func:`magnitude_ratios`. ``krum``: the
    Krum score (Blanchard et al., NeurIPS 2017) of the changes with the largest tolerated number of
    Byzantine members.
    """
    senders = sorted(changes)
    if len(senders) < 3:
        return {}
    flat = torch.stack([changes[s].float() for s in senders])
    if statistic == "krum":
        scores = krum_scores(flat, max(0, (len(senders) - 3) // 2))
    elif statistic == "median-distance":
        directions = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        scores = (directions - _median(directions)).norm(dim=1)
    else:
        raise ValueError(f"unknown screening statistic {statistic!r}; known: {STATISTICS}")
    return {sender: float(score) for sender, score in zip(senders, scores, strict=True)}


def magnitude_ratios(changes: Mapping[str, Tensor]) -> dict[str, float]:
    """Per sender, its change's norm over the median norm of the round's changes (three at least)."""
    if len(changes) < 3:
        return {}
    norms = {sender: float(change.float().norm()) for sender, change in changes.items()}
    middle = statistics.median(norms.values())
    return {sender: norm / max(middle, 1e-12) for sender, norm in norms.items()}


def _median(flat: Tensor) -> Tensor:
    """The coordinate-wise median of ``[n, D]`` via the merge library (members along the first axis)."""
    present = torch.ones(flat.shape, dtype=torch.bool)
    return coordinate_median(flat, present)
