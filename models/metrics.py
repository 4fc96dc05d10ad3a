"""Full-ranking evaluation with PyG's link-prediction metrics.

The metrics themselves come from :mod:`torch_geometric.metrics` (``LinkPredRecall``,
``LinkPredNDCG``, ``LinkPredHitRatio``, ``LinkPredCoverage``), which are streaming (update /
compute / reset) and tested upstream; this module only ranks artists and feeds them. Definitions,
as PyG computes them, averaged over listeners that have at least one held-out artist:

* Recall@K = hits in the top K / number of held-out artists (not ``min(K, |test|)``; RecBole and the
  reference figures in the data README use the same definition);
* NDCG@K = DCG of the top K with binary relevance / ideal DCG of ``min(K, |test|)`` hits;
* hit rate@K = share of listeners with at least one hit in the top K;
* coverage@K = share of the catalogue that appears in anybody's top K.

Ranking is over *all* artists (no sampled negatives); artists the listener met in training (and, for
the test part, in validation) are masked so that they can neither be recommended nor count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch_geometric.metrics import (
    LinkPredCoverage,
    LinkPredHitRatio,
    LinkPredMetricCollection,
    LinkPredNDCG,
    LinkPredRecall,
)

__all__ = ["RankingMetrics", "evaluate_ranking", "top_k_excluding"]

Scorer = Callable[[torch.Tensor], torch.Tensor]
"""Maps a ``LongTensor [B]`` of listener ids to scores ``[B, num_artists]``."""


@dataclass(frozen=True)
class RankingMetrics:
    k: int
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    listeners: int

    def as_dict(self) -> dict[str, float]:
        return {
            f"recall@{self.k}": self.recall,
            f"ndcg@{self.k}": self.ndcg,
            f"hit_rate@{self.k}": self.hit_rate,
            f"coverage@{self.k}": self.coverage,
        }


def top_k_excluding(
    scores: torch.Tensor, k: int, exclude_rows: torch.Tensor, exclude_cols: torch.Tensor
) -> torch.Tensor:
    """Indices of the ``k`` best columns per row of ``scores`` after masking excluded cells.

    ``exclude_rows``/``exclude_cols`` are row positions within ``scores`` and artist ids.
    """
    scores = scores.clone()
    scores[exclude_rows, exclude_cols] = float("-inf")
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


def _csr(edges: torch.Tensor, num_listeners: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row pointers and artist ids of ``edges`` grouped by listener."""
    order = torch.argsort(edges[0], stable=True)
    artists = edges[1, order]
    counts = torch.bincount(edges[0], minlength=num_listeners)
    pointer = torch.zeros(num_listeners + 1, dtype=torch.long)
    pointer[1:] = counts.cumsum(0)
    return pointer, artists


def evaluate_ranking(
    scorer: Scorer,
    held_out: torch.Tensor,
    exclude: torch.Tensor,
    *,
    num_listeners: int,
    num_artists: int,
    k: int,
    batch_size: int = 512,
) -> RankingMetrics:
    """Rank all artists for every listener in ``held_out`` ([2, N]) and measure the top ``k``.

    ``exclude`` ([2, M]) holds the (listener, artist) pairs to mask: the training edges, plus the
    validation edges when measuring on test.
    """
    metrics = LinkPredMetricCollection(
        [
            LinkPredRecall(k=k),
            LinkPredNDCG(k=k),
            LinkPredHitRatio(k=k),
            LinkPredCoverage(k=k, num_dst_nodes=num_artists),
        ]
    )
    listeners = torch.unique(held_out[0])
    held_pointer, held_artists = _csr(held_out, num_listeners)
    ex_pointer, ex_artists = _csr(exclude, num_listeners)
    with torch.no_grad():
        for start in range(0, listeners.numel(), batch_size):
            batch = listeners[start : start + batch_size]
            scores = scorer(batch)
            ex_rows, ex_cols = _gather(batch, ex_pointer, ex_artists)
            top = top_k_excluding(scores, k, ex_rows, ex_cols)
            label_rows, label_cols = _gather(batch, held_pointer, held_artists)
            metrics.update(top, torch.stack([label_rows, label_cols]))
    values = {name.split("@")[0]: float(value) for name, value in metrics.compute().items()}
    return RankingMetrics(
        k=k,
        recall=values["LinkPredRecall"],
        ndcg=values["LinkPredNDCG"],
        hit_rate=values["LinkPredHitRatio"],
        coverage=values["LinkPredCoverage"],
        listeners=int(listeners.numel()),
    )


def _gather(
    batch: torch.Tensor, pointer: torch.Tensor, artists: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row position in batch, artist id) for every artist listed for the batch's listeners."""
    starts, ends = pointer[batch], pointer[batch + 1]
    lengths = ends - starts
    rows = torch.repeat_interleave(torch.arange(batch.numel()), lengths)
    offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
    return rows, artists[torch.repeat_interleave(starts, lengths) + offsets]
