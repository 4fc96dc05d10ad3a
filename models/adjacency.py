"""Symmetric-normalised adjacency matrices for LightGCN-style propagation.

Computed once per training graph and passed to the models on every call, so that an epoch's many
forward passes cost one sparse-dense product per layer each, not an edge-list scatter with
per-call degree normalisation (what ``torch_geometric.nn.models.LightGCN`` does on every call).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from models.data import MusicTensors

__all__ = [
    "KnowledgeGraph",
    "ModelGraph",
    "NodeLayout",
    "artist_feature_matrix",
    "artist_features",
    "knowledge_graph",
    "sparse_product",
    "bipartite_adjacency",
    "knowledge_adjacency",
    "normalized_adjacency",
    "symmetric_propagate",
]


@dataclass(frozen=True)
class NodeLayout:
    """Offsets of each node type in the stacked node matrix (listeners first, then artists, ...)."""

    sizes: tuple[tuple[str, int], ...]

    def offset(self, kind: str) -> int:
        total = 0
        for name, size in self.sizes:
            if name == kind:
                return total
            total += size
        raise KeyError(kind)

    @property
    def num_nodes(self) -> int:
        return sum(size for _, size in self.sizes)


class _SymmetricSparseProduct(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``, whose gradient is ``A @ grad`` again.

    torch's own backward for a CSR product transposes ``A`` on every call (a CSR-to-CSC conversion
    costing more than the product itself); our adjacencies are symmetric by construction, so the
    transpose is ``A`` and the backward pass is one more product with the same matrix.
    """

    @staticmethod
    def forward(ctx: Any, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adjacency, grad)


class _SparseProduct(torch.autograd.Function):
    """``M @ x`` with the transpose precomputed once, for the same reason as above."""

    @staticmethod
    def forward(ctx: Any, matrix: torch.Tensor, transposed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.transposed = transposed
        return torch.sparse.mm(matrix, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, torch.sparse.mm(ctx.transposed, grad)


def sparse_product(matrix: torch.Tensor, transposed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` whose backward pass uses ``transposed`` (which must be ``matrix.T``)."""
    return _SparseProduct.apply(matrix, transposed, x)


def symmetric_propagate(adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One propagation step ``adjacency @ x``; ``adjacency`` must be symmetric (all ours are)."""
    return _SymmetricSparseProduct.apply(adjacency, x)


def normalized_adjacency(
    source: torch.Tensor, target: torch.Tensor, num_nodes: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The CSR matrix :math:`D^{-1/2} A D^{-1/2}` of the undirected graph with edges (source, target).

    Each edge is added in both directions; duplicate edges are summed. Isolated nodes keep a zero
    row (their degree is treated as one to avoid a division by zero).
    """
    rows = torch.cat([source, target])
    cols = torch.cat([target, source])
    values = torch.ones(rows.numel()) if weight is None else torch.cat([weight, weight]).float()
    shape = (num_nodes, num_nodes)
    matrix = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values, shape, check_invariants=False
    ).coalesce()
    rows, cols = matrix.indices()
    values = matrix.values()
    degree = torch.zeros(num_nodes).scatter_add_(0, rows, values).clamp(min=1.0)
    inv_sqrt = degree.pow(-0.5)
    values = inv_sqrt[rows] * values * inv_sqrt[cols]
    coo = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values, shape, is_coalesced=True, check_invariants=False
    )
    with warnings.catch_warnings():
        # CSR is "beta" in torch; its sparse-dense product is what makes propagation fast on CPU.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def bipartite_adjacency(interactions: torch.Tensor, num_listeners: int, num_artists: int) -> torch.Tensor:
    """Normalised adjacency of the listener–artist graph; node ids: listeners, then artists."""
    return normalized_adjacency(interactions[0], interactions[1] + num_listeners, num_listeners + num_artists)


def knowledge_adjacency(
    tensors: MusicTensors,
    *,
    tag_weight_floor: float = 0.0,
    use_entities: bool = True,
    side_weight: float = 1.0,
) -> tuple[torch.Tensor, NodeLayout]:
    """Normalised adjacency over listeners, artists, tags and knowledge-graph entities.

    Listener–artist edges come from ``tensors.interactions`` (pass the training tensors of a split,
    never the full set). Artist–tag edges whose weight is at most ``tag_weight_floor`` are dropped,
    which removes the long tail of tags a single listener applied once. Relation types are not
    distinguished: an artist–entity triple becomes one undirected artist–entity edge. Side edges
    (tags, entities) weigh ``side_weight`` against 1 for a listening, so that an artist's many tags
    do not drown its few listeners in the normalisation.
    """
    layout = NodeLayout(
        (
            ("listener", tensors.num_listeners),
            ("artist", tensors.num_artists),
            ("tag", tensors.num_tags),
            ("entity", tensors.num_entities if use_entities else 0),
        )
    )
    artist0, tag0, entity0 = layout.offset("artist"), layout.offset("tag"), layout.offset("entity")
    sources = [tensors.interactions[0]]
    targets = [tensors.interactions[1] + artist0]
    tag_edges = tensors.artist_tags
    if tensors.artist_tag_weights is not None and tag_weight_floor > 0:
        tag_edges = tag_edges[:, tensors.artist_tag_weights > tag_weight_floor]
    sources.append(tag_edges[0] + artist0)
    targets.append(tag_edges[1] + tag0)
    if use_entities:
        sources.append(tensors.artist_entities[0] + artist0)
        targets.append(tensors.artist_entities[2] + entity0)
    source, target = torch.cat(sources), torch.cat(targets)
    weight = torch.full((source.numel(),), float(side_weight))
    weight[: tensors.interactions.shape[1]] = 1.0
    adjacency = normalized_adjacency(source, target, layout.num_nodes, weight)
    return adjacency, layout


@dataclass(frozen=True)
class KnowledgeGraph:
    """What :class:`models.lightgcn.KnowledgeLightGCN` propagates over.

    ``adjacency``: the propagation graph (listener–artist, or with tag and entity nodes);
    ``artist_features``: the row-normalised sparse ``[A, T + E]`` artist–tag/entity matrix, or
    ``None`` when tags and entities are nodes of ``adjacency`` instead.
    """

    adjacency: torch.Tensor
    artist_features: torch.Tensor | None
    artist_features_t: torch.Tensor | None = None


ModelGraph = torch.Tensor | KnowledgeGraph | None
"""What a model's ``forward`` takes: an adjacency, a :class:`KnowledgeGraph`, or nothing (BPR-MF)."""


def artist_feature_matrix(tensors: MusicTensors, *, tag_weight_floor: float = 0.0) -> torch.Tensor:
    """Row-normalised sparse ``[A, T + E]``: each artist's tags (columns ``0..T-1``) and entities.

    A tag counts as many times as listeners applied it to the artist (``artist_tag_weights``, at
    least once), an entity once, and each row sums to one: an artist is mostly what many people
    called it, and little what one person once did. On Last.fm-2k this weighting lifted the
    knowledge-aware model's Recall@20 from about 0.275 to 0.279 (docs/benchmarks.md).
    Artists without features have an empty row.
    """
    tag_edges = tensors.artist_tags
    tag_values = torch.ones(tag_edges.shape[1])
    if tensors.artist_tag_weights is not None:
        tag_values = tensors.artist_tag_weights.float().clamp(min=1.0)
        if tag_weight_floor > 0:
            keep = tensors.artist_tag_weights > tag_weight_floor
            tag_edges, tag_values = tag_edges[:, keep], tag_values[keep]
    rows = torch.cat([tag_edges[0], tensors.artist_entities[0]])
    cols = torch.cat([tag_edges[1], tensors.artist_entities[2] + tensors.num_tags])
    # An artist-entity pair under two relations is one feature.
    entity_values = torch.ones(tensors.artist_entities.shape[1])
    shape = (tensors.num_artists, tensors.num_tags + tensors.num_entities)
    keys = rows * shape[1] + cols
    unique, first = _first_occurrence(keys)
    rows, cols = unique // shape[1], unique % shape[1]
    values = torch.cat([tag_values, entity_values])[first]
    totals = torch.zeros(shape[0]).scatter_add_(0, rows, values).clamp(min=1e-12)
    coo = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values / totals[rows], shape, is_coalesced=True, check_invariants=False
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def _first_occurrence(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and, for each, the position of its first occurrence in ``keys``."""
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    first = torch.full((unique.numel(),), keys.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel()), reduce="amin")
    return unique, first


def knowledge_graph(tensors: MusicTensors, *, side_information: str = "features") -> KnowledgeGraph:
    """The graph a :class:`~models.lightgcn.KnowledgeLightGCN` needs, from training tensors only."""
    if side_information == "nodes":
        return KnowledgeGraph(knowledge_adjacency(tensors)[0], None)
    adjacency = bipartite_adjacency(tensors.interactions, tensors.num_listeners, tensors.num_artists)
    return KnowledgeGraph(adjacency, *artist_features(tensors))


def artist_features(tensors: MusicTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`artist_feature_matrix` and its transpose (for the backward pass), both CSR."""
    features = artist_feature_matrix(tensors)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        transposed = features.to_sparse_coo().t().coalesce().to_sparse_csr()
    return features, transposed
