"""Per-listener random splits of the interactions into training, validation and test parts.

Three protocols are named here: the recommender benchmark reports the first and the last, and
federated nodes choose their settings on the validation part of the second:

* ``PROTOCOL_80_20``: each listener's interactions are shuffled with a seeded generator and 20 % go
  to test (the protocol of the reference figures in the data README).
* ``PROTOCOL_70_10_20``: the same with 10 % held out of training for validation (served nodes and
  the federated quality benchmark choose the item graph's blend on it).
* ``PROTOCOL_RECBOLE``: RecBole's default evaluation setting, ``eval_args = {split: {RS: [0.8, 0.1,
  0.1]}, order: RO, group_by: user, mode: full}``: the interactions are randomly ordered, grouped by
  user, and each user's list is cut by ratio 8:1:1 (``Dataset._calcu_split_ids`` in
  ``recbole/data/dataset/dataset.py``). The published LightGCN figure on Last.fm
  (Recall@10 0.2064, NDCG@10 0.1972, RecBole-GNN) was measured this way.

Part sizes follow RecBole's rule exactly, for both protocols: every part but the first gets
``floor(ratio * n)``, the first (training) part takes the rest, and a part whose share is below one
interaction gets one, taken from training, as long as training keeps more than one. So a listener
with a single interaction keeps it in training.

How the split avoids leakage:

* the parts are disjoint sets of interactions (duplicate listener–artist pairs are refused, since a
  duplicate could land in training and test at once);
* only the training part is kept in :attr:`InteractionSplit.train`, which is what models build
  their graph from: test edges never enter the normalised adjacency, the popularity counts, or the
  item–item similarities;
* a listener's taggings of the artists in their held-out parts are dropped from the training
  tensors, and the artist–tag edges and weights recounted without them
  (:meth:`~models.data.MusicTensors.without_taggings_of`), so tags cannot carry a test pair into
  training (an edge only a held-out tagging supported disappears);
* evaluation ranks all artists but masks the listener's training (and, for test, validation)
  artists, the full-ranking protocol of LightGCN and RecBole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.data import MusicTensors, MusicTensorsError

__all__ = [
    "PROTOCOL_70_10_20",
    "PROTOCOL_80_20",
    "PROTOCOL_RECBOLE",
    "InteractionSplit",
    "SplitProtocol",
    "part_sizes",
    "split_per_listener",
]


@dataclass(frozen=True)
class SplitProtocol:
    """A named per-listener ratio split; ``ratios`` are (train, test) or (train, valid, test)."""

    name: str
    ratios: tuple[float, ...]
    description: str

    def __post_init__(self) -> None:
        if len(self.ratios) not in (2, 3) or any(r <= 0 for r in self.ratios):
            raise ValueError("ratios must be two or three positive numbers")


PROTOCOL_80_20 = SplitProtocol(
    name="random-80-20",
    ratios=(0.8, 0.2),
    description="per-listener random split, 80% training / 20% test, full ranking over all artists",
)
PROTOCOL_70_10_20 = SplitProtocol(
    name="random-70-10-20",
    ratios=(0.7, 0.1, 0.2),
    description="per-listener random split, 70% training / 10% validation / 20% test, full ranking",
)
PROTOCOL_RECBOLE = SplitProtocol(
    name="recbole-ro-8-1-1",
    ratios=(0.8, 0.1, 0.1),
    description=(
        "RecBole default: random ordering, grouped by listener, ratio split 8:1:1 "
        "(train/valid/test), full ranking over all artists"
    ),
)


@dataclass(frozen=True, eq=False)
class InteractionSplit:
    """The training tensors plus held-out ``[2, N]`` (listener, artist) edges."""

    protocol: SplitProtocol
    seed: int
    train: MusicTensors
    valid: torch.Tensor | None
    test: torch.Tensor

    def describe(self) -> str:
        valid = 0 if self.valid is None else self.valid.shape[1]
        return (
            f"{self.protocol.description}; seed {self.seed}; {self.train.num_interactions} training, "
            f"{valid} validation, {self.test.shape[1]} test interactions"
        )


def part_sizes(counts: torch.Tensor, ratios: tuple[float, ...]) -> torch.Tensor:
    """Interactions per part for listeners with ``counts`` interactions: ``LongTensor [L, parts]``.

    RecBole's ``_calcu_split_ids`` on a vector of counts (see the module docstring).
    """
    total_ratio = sum(ratios)
    shares = torch.tensor([r / total_ratio for r in ratios], dtype=torch.float64)
    n = counts.to(torch.float64).unsqueeze(1)
    exact = n * shares  # [L, parts]
    sizes = exact.floor().long()
    sizes[:, 0] = counts - sizes[:, 1:].sum(dim=1)
    for part in range(len(ratios) - 1, 0, -1):
        # RecBole walks the parts from the last one and stops once training is down to one.
        enough = sizes[:, 0] > 1
        below_one = (exact[:, part] > 0) & (exact[:, part] < 1)
        bump = enough & below_one
        sizes[bump, part] += 1
        sizes[bump, 0] -= 1
        if not bool(enough.any()):
            break
    return sizes


def _rank_within_listener(listener: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random rank for every edge among its listener's edges (0 = first in the shuffled list)."""
    shuffled = torch.randperm(listener.numel(), generator=generator)
    order = shuffled[torch.argsort(listener[shuffled], stable=True)]
    grouped = listener[order]
    starts = torch.searchsorted(grouped, grouped, side="left")
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - starts
    return rank


def split_per_listener(tensors: MusicTensors, protocol: SplitProtocol, seed: int) -> InteractionSplit:
    """Split ``tensors``' interactions per listener by ``protocol`` with a seeded shuffle."""
    listener, artist = tensors.interactions
    pair = listener * tensors.num_artists + artist
    if torch.unique(pair).numel() != pair.numel():
        raise MusicTensorsError("duplicate listener-artist interactions; aggregate them before splitting")
    generator = torch.Generator().manual_seed(seed)
    rank = _rank_within_listener(listener, generator)
    counts = torch.bincount(listener, minlength=tensors.num_listeners)
    sizes = part_sizes(counts, protocol.ratios)
    bounds = sizes.cumsum(dim=1)[listener]  # [E, parts]: end rank of each part for the edge's listener
    part = (rank.unsqueeze(1) >= bounds).sum(dim=1)
    train_mask = part == 0
    held_out = [tensors.interactions[:, part == p] for p in range(1, len(protocol.ratios))]
    train = tensors.with_interactions(
        tensors.interactions[:, train_mask], tensors.play_counts[train_mask]
    ).without_taggings_of(tensors.interactions[:, ~train_mask])
    valid = held_out[0] if len(held_out) == 2 else None
    return InteractionSplit(protocol=protocol, seed=seed, train=train, valid=valid, test=held_out[-1])
