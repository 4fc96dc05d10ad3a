r"""LightGCN, BPR matrix factorisation and a knowledge-aware LightGCN, as parameter holders.

All three share one interface so that one trainer, one evaluator and one snapshot format serve
them: ``model(graph)`` returns the final ``(listener [L, d], artist [A, d])`` embeddings and
``model.ego(listeners, artists)`` the layer-0 rows that BPR's L2 term regularises. A score is the
dot product :math:`\hat y_{ua} = e_u^\top e_a`.

Parameter names are part of the federation protocol: everything named ``listener_*`` is private to
a node; ``artist_*``, ``tag_*`` and ``entity_*`` tables are item-side and may be shared.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.adjacency import KnowledgeGraph, ModelGraph, sparse_product, symmetric_propagate

__all__ = [
    "LightGCN",
    "KnowledgeLightGCN",
    "MatrixFactorization",
    "EmbeddingRecommender",
    "SHARED_PREFIXES",
    "PRIVATE_PREFIXES",
]

SHARED_PREFIXES = ("artist_", "tag_", "entity_")
PRIVATE_PREFIXES = ("listener_",)


class EmbeddingRecommender(nn.Module):
    """Listener and artist embedding tables; subclasses decide how the graph mixes them."""

    architecture = "abstract"

    def __init__(self, num_listeners: int, num_artists: int, embedding_dim: int, init_std: float) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.init_std = init_std
        self.listener_embedding = nn.Embedding(num_listeners, embedding_dim)
        self.artist_embedding = nn.Embedding(num_artists, embedding_dim)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Normal(0, ``init_std``) initialisation, the choice of the LightGCN authors' code."""
        for parameter in self.parameters():
            with torch.no_grad():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * self.init_std)

    @property
    def num_listeners(self) -> int:
        return self.listener_embedding.num_embeddings

    @property
    def num_artists(self) -> int:
        return self.artist_embedding.num_embeddings

    def ego(self, listeners: Tensor, artists: Tensor) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings of the given rows (what BPR's weight decay applies to)."""
        return self.listener_embedding(listeners), self.artist_embedding(artists)

    def forward(self, graph: ModelGraph) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, float | int | str]:
        return {"embedding_dim": self.embedding_dim, "init_std": self.init_std}


class MatrixFactorization(EmbeddingRecommender):
    r"""BPR matrix factorisation (Rendle et al., UAI 2009): :math:`\hat y_{ua} = p_u^\top q_a`.

    The graph argument is ignored; it exists so that the trainer treats every model alike.
    """

    architecture = "bpr-mf"

    def __init__(self, num_listeners: int, num_artists: int, embedding_dim: int = 64, init_std: float = 0.1):
        super().__init__(num_listeners, num_artists, embedding_dim, init_std)

    def forward(self, graph: ModelGraph = None) -> tuple[Tensor, Tensor]:
        return self.listener_embedding.weight, self.artist_embedding.weight


class LightGCN(EmbeddingRecommender):
    r"""LightGCN (He et al., SIGIR 2020, "LightGCN: Simplifying and Powering Graph Convolution Network
    for Recommendation", arXiv:2002.02126).

    With :math:`\tilde A = D^{-1/2} A D^{-1/2}` the normalised adjacency of the listener–artist graph
    and :math:`E^{(0)}` the stacked listener and artist embeddings,

    .. math::
        E^{(k+1)} = \tilde A E^{(k)}, \qquad E = \sum_{k=0}^{K} \alpha_k E^{(k)},
        \quad \alpha_k = \tfrac{1}{K+1}.

    Args:
        num_listeners, num_artists: table sizes.
        embedding_dim: ``d`` (default 64, as in the paper).
        num_layers: ``K`` (default 3, the paper's best on its data sets).
        init_std: standard deviation of the normal initialisation (default 0.1).

    ``forward(adjacency)`` takes the ``[L + A, L + A]`` sparse matrix of
    :func:`models.adjacency.bipartite_adjacency` and returns ``([L, d], [A, d])``.
    """

    architecture = "lightgcn"

    def __init__(
        self,
        num_listeners: int,
        num_artists: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        init_std: float = 0.1,
    ) -> None:
        super().__init__(num_listeners, num_artists, embedding_dim, init_std)
        self.num_layers = num_layers

    def node_tables(self) -> list[Tensor]:
        """Embedding tables in adjacency order (listeners, then artists, then any extra nodes)."""
        return [self.listener_embedding.weight, self.artist_embedding.weight]

    def forward(self, graph: ModelGraph) -> tuple[Tensor, Tensor]:
        if not isinstance(graph, Tensor):
            raise ValueError(f"{type(self).__name__} needs the normalised adjacency matrix")
        x = torch.cat(self.node_tables())
        total = x
        for _ in range(self.num_layers):
            x = symmetric_propagate(graph, x)
            total = total + x
        out = total / (self.num_layers + 1)
        listeners, artists = self.num_listeners, self.num_artists
        return out[:listeners], out[listeners : listeners + artists]

    def hyperparameters(self) -> dict[str, float | int | str]:
        return {**super().hyperparameters(), "num_layers": self.num_layers}


class KnowledgeLightGCN(LightGCN):
    r"""LightGCN whose artists also draw on their tags and knowledge-graph entities.

    Two published ways of letting item side information into LightGCN, chosen by ``side_information``:

    * ``"features"`` (default): an artist's layer-0 embedding is its own row plus the mean of its
      tags' and entities' embeddings, :math:`e_a^{(0)} = q_a + \sum_f F_{af} z_f` with :math:`F` the
      row-normalised artist–feature matrix, as in LightFM's hybrid representations (Kula, "Metadata
      Embeddings for User and Item Cold-start Recommendations", CBRecSys 2015); propagation is then
      LightGCN's over the listener–artist graph. Artists with few listeners borrow from artists that
      share their tags. ``graph`` is a :class:`models.adjacency.KnowledgeGraph` holding both matrices.
    * ``"nodes"``: tags and entities become extra nodes of the propagation graph (the collaborative
      knowledge graph of KGAT, Wang et al., KDD 2019, without its relation attention); ``graph`` holds
      :func:`models.adjacency.knowledge_adjacency`. On Last.fm-2k this did worse than plain LightGCN
      (see docs/benchmarks.md): popular tags link thousands of artists and over-smooth them.

    Tag and entity tables are item-side parameters (``tag_embedding.weight``,
    ``entity_embedding.weight``) and may be shared with a learning group like the artist table.
    """

    architecture = "knowledge-lightgcn"

    def __init__(
        self,
        num_listeners: int,
        num_artists: int,
        num_tags: int,
        num_entities: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        init_std: float = 0.1,
        side_information: str = "features",
    ) -> None:
        if side_information not in ("features", "nodes"):
            raise ValueError(f"side_information must be 'features' or 'nodes', not {side_information!r}")
        super().__init__(num_listeners, num_artists, embedding_dim, num_layers, init_std)
        self.side_information = side_information
        self.tag_embedding = nn.Embedding(num_tags, embedding_dim)
        self.entity_embedding = nn.Embedding(num_entities, embedding_dim)
        self._features: KnowledgeGraph | None = None

    def node_tables(self) -> list[Tensor]:
        side = [self.tag_embedding.weight, self.entity_embedding.weight]
        if self.side_information == "nodes":
            return [*super().node_tables(), *side]
        assert self._features is not None and self._features.artist_features is not None
        features, transposed = self._features.artist_features, self._features.artist_features_t
        assert transposed is not None
        artists = self.artist_embedding.weight + sparse_product(features, transposed, torch.cat(side))
        return [self.listener_embedding.weight, artists]

    def forward(self, graph: ModelGraph) -> tuple[Tensor, Tensor]:
        if not isinstance(graph, KnowledgeGraph):
            raise ValueError("KnowledgeLightGCN needs a models.adjacency.KnowledgeGraph")
        self._features = graph
        try:
            return super().forward(graph.adjacency)
        finally:
            self._features = None

    def hyperparameters(self) -> dict[str, float | int | str]:
        return {**super().hyperparameters(), "side_information": self.side_information}
