"""The catalogue side of the knowledge-aware model, for a learner that trains it round by round.

A fungus node's graph holds its own listeners and the whole public catalogue: artists, their tags
and the Freebase entities they relate to. :class:`SideInformation` is that catalogue part of a
:class:`~models.lightgcn.KnowledgeLightGCN`: the artist-feature matrix, built once, and the sizes
of the tag and entity tables. Tag and entity IRIs are sorted catalogue IRIs, so the tables line up
row for row on every node of one catalogue and are shared with a learning group like the artist
table (names ``tag_*`` and ``entity_*``); listener rows never leave the node.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from models.adjacency import KnowledgeGraph, artist_features
from models.data import MusicTensors
from models.lightgcn import KnowledgeLightGCN

__all__ = ["SideInformation", "TagProfile"]


@dataclass(frozen=True, eq=False)
class SideInformation:
    """Artists' tags and entities as a row-normalised ``[A, T + E]`` matrix (and its transpose)."""

    num_tags: int
    num_entities: int
    features: torch.Tensor
    features_t: torch.Tensor

    @classmethod
    def of(cls, tensors: MusicTensors) -> SideInformation:
        """From a split's training tensors, so that held-out pairs' taggings are already gone."""
        features, transposed = artist_features(tensors)
        return cls(tensors.num_tags, tensors.num_entities, features, transposed)

    def graph(self, adjacency: torch.Tensor) -> KnowledgeGraph:
        """What the model propagates over: ``adjacency`` (listener–artist) plus the features."""
        return KnowledgeGraph(adjacency, self.features, self.features_t)

    def model(
        self, num_listeners: int, num_artists: int, embedding_dim: int, num_layers: int
    ) -> KnowledgeLightGCN:
        return KnowledgeLightGCN(
            num_listeners, num_artists, self.num_tags, self.num_entities, embedding_dim, num_layers
        )


class TagProfile:
    r"""The tag and knowledge-graph channel: how well an artist's tags and entities match a listener's.

    A content-based scorer in the vector-space tradition (tf-idf, cosine): every artist is the
    L2-normalised vector of its tags (weighted by how many listeners applied them) and entities,
    each scaled by its inverse document frequency over artists, so that "rock" counts less than
    "shoegaze". A listener's profile is the normalised sum of their training artists' vectors, and
    the score of an artist is the cosine :math:`\langle p_u, f_a \rangle`. Fused late with the
    embedding model's scores (:func:`models.fusion.blended`, weight chosen on validation), it lets
    artists with few listeners but telling tags reach the top. Built from training tensors only.
    """

    def __init__(self, tensors: MusicTensors) -> None:
        with warnings.catch_warnings():
            # CSR is "beta" in torch; its sparse-dense product is what makes scoring fast on CPU.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self._build(tensors)

    def _build(self, tensors: MusicTensors) -> None:
        num_artists, num_columns = tensors.num_artists, tensors.num_tags + tensors.num_entities
        tags, entities = tensors.artist_tags, tensors.artist_entities
        tag_counts = torch.ones(tags.shape[1])
        if tensors.artist_tag_weights is not None:
            tag_counts = tensors.artist_tag_weights.float().clamp(min=1.0)
        rows = torch.cat([tags[0], entities[0]])
        columns = torch.cat([tags[1], entities[2] + tensors.num_tags])
        frequency = torch.bincount(columns, minlength=num_columns).float().clamp(min=1.0)
        idf = torch.log(num_artists / frequency)
        values = torch.cat([tag_counts, torch.ones(entities.shape[1])]) * idf[columns]
        shape = (num_artists, num_columns)
        matrix = torch.sparse_coo_tensor(torch.stack([rows, columns]), values, shape, check_invariants=True)
        matrix = matrix.coalesce()  # an artist-entity pair under two relations adds up
        rows, values = matrix.indices()[0], matrix.values()
        norms = torch.zeros(num_artists).index_add_(0, rows, values.pow(2)).sqrt().clamp(min=1e-12)
        self.features = torch.sparse_coo_tensor(
            matrix.indices(), values / norms[rows], shape, is_coalesced=True, check_invariants=False
        ).to_sparse_csr()
        self.features_t = self.features.to_sparse_coo().t().coalesce().to_sparse_csr()
        listened = torch.sparse_coo_tensor(
            tensors.interactions,
            torch.ones(tensors.num_interactions),
            (tensors.num_listeners, num_artists),
            check_invariants=True,
        )
        self.listened = listened.coalesce().to_sparse_csr()

    def __call__(self, listeners: Tensor) -> Tensor:
        """Scores ``[B, A]`` of ``listeners``."""
        profile = torch.sparse.mm(self.features_t, self._rows(listeners).t()).t()  # [B, T + E]
        profile = profile / profile.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return torch.sparse.mm(self.features, profile.t()).t()

    def _rows(self, listeners: Tensor) -> Tensor:
        """The listeners' rows of the training matrix, dense ``[B, A]``."""
        crow, col = self.listened.crow_indices(), self.listened.col_indices()
        out = torch.zeros(listeners.numel(), self.listened.shape[1])
        for position, listener in enumerate(listeners.tolist()):
            out[position, col[crow[listener] : crow[listener + 1]]] = 1.0
        return out
