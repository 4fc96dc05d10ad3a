"""The catalogue side of the knowledge-aware model, for a learner that trains it round by round.

A fungus node's graph holds its own listeners and the whole public catalogue: artists, their tags
and the Freebase entities they relate to. :class:`SideInformation` is that catalogue part of a
:class:`~models.lightgcn.KnowledgeLightGCN`: the artist-feature matrix, built once, and the sizes
of the tag and entity tables. Tag and entity IRIs are sorted catalogue IRIs, so the tables line up
row for row on every node of one catalogue and are shared with a learning group like the artist
table (names ``tag_*`` and ``entity_*``); listener rows never leave the node.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.adjacency import KnowledgeGraph, artist_features
from models.data import MusicTensors
from models.lightgcn import KnowledgeLightGCN

__all__ = ["SideInformation"]


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
