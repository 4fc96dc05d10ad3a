"""Non-learned baselines: most-popular artists and item-based k-nearest neighbours.

Each baseline is fitted on a split's training interactions only and returns a scorer with the
same signature as a trained embedding model's, so the evaluator treats them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Popularity", "ItemKNN"]


@dataclass(frozen=True, eq=False)
class Popularity:
    """Score every artist by its number of training listeners; the same list for everyone."""

    counts: Tensor  # [A]

    architecture = "popularity"

    @classmethod
    def fit(cls, train_edges: Tensor, num_artists: int) -> Popularity:
        return cls(torch.bincount(train_edges[1], minlength=num_artists).float())

    def score(self, listeners: Tensor) -> Tensor:
        return self.counts.expand(listeners.numel(), -1)

    def hyperparameters(self) -> dict[str, float | int | str]:
        return {}


@dataclass(frozen=True, eq=False)
class ItemKNN:
    r"""Item-based collaborative filtering (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

    With :math:`R \in \{0,1\}^{L \times A}` the training interactions, the cosine similarity
    :math:`s_{ij} = r_i^\top r_j / (\lVert r_i \rVert \lVert r_j \rVert)` is kept for each artist's
    ``neighbours`` most similar artists only (the neighbourhood, tuned on validation data), and a
    listener's score for artist ``j`` is :math:`\sum_{i \in R_u} s_{ij}`.

    ``similarity`` is a sparse CSR ``[A, A]`` matrix, row ``i`` holding artist ``i``'s neighbours.
    """

    liked: Tensor  # bool [L, A], the training interactions
    similarity: Tensor  # sparse CSR [A, A]
    neighbours: int

    architecture = "itemknn"

    @classmethod
    def fit(
        cls, train_edges: Tensor, num_listeners: int, num_artists: int, *, neighbours: int = 100
    ) -> ItemKNN:
        ones = torch.ones(train_edges.shape[1])
        rating = torch.sparse_coo_tensor(train_edges, ones, (num_listeners, num_artists)).coalesce()
        dense = rating.to_dense()
        norms = dense.pow(2).sum(dim=0).sqrt().clamp(min=1e-12)
        keep = min(neighbours, num_artists - 1)
        rows, cols, values = [], [], []
        # Dense blocks of the A x A product: 17,632 artists fit in a few hundred MB per block,
        # and only the top neighbours of each row are kept.
        block = 1024
        for start in range(0, num_artists, block):
            stop = min(start + block, num_artists)
            sims = (dense[:, start:stop].T @ dense) / (norms[start:stop, None] * norms[None, :])
            sims[torch.arange(stop - start), torch.arange(start, stop)] = 0.0
            top = sims.topk(keep, dim=1)
            positive = top.values > 0
            rows.append((torch.arange(start, stop)[:, None].expand_as(top.indices))[positive])
            cols.append(top.indices[positive])
            values.append(top.values[positive])
        similarity = torch.sparse_coo_tensor(
            torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(values), (num_artists, num_artists)
        ).to_sparse_csr()
        return cls(dense.bool(), similarity, neighbours)

    def score(self, listeners: Tensor) -> Tensor:
        return self.score_liked(self.liked[listeners].float())

    def score_liked(self, liked: Tensor) -> Tensor:
        """Scores for rows of a ``[B, A]`` 0/1 matrix of liked artists (also for unseen listeners)."""
        # (S^T liked^T)^T = liked S, with the sparse matrix on the left as torch.sparse.mm wants.
        return torch.sparse.mm(self._similarity_t, liked.T).T

    @property
    def _similarity_t(self) -> Tensor:
        cached = self.__dict__.get("_transposed")
        if cached is None:
            cached = self.similarity.to_sparse_coo().t().coalesce().to_sparse_csr()
            object.__setattr__(self, "_transposed", cached)
        return cached

    def hyperparameters(self) -> dict[str, float | int | str]:
        return {"neighbours": self.neighbours, "similarity": "cosine"}
