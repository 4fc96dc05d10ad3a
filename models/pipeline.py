"""Fitting a recommender on a split, the same way for the benchmark, the CLI and a node.

Model selection never looks at the test part. When a split has a validation part (RecBole's
8:1:1), training stops early on it and the best-validated parameters are kept. When it has none
(the 80/20 protocol), a validation part is carved out of each listener's training interactions
(1/8 of them, RecBole's ratio rule), the number of epochs (or ItemKNN's neighbourhood) is chosen
there, and the model is then refitted on the whole training part with that choice, so the final
model sees exactly the data that a model trained without validation would see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from models.adjacency import ModelGraph, bipartite_adjacency, knowledge_graph
from models.baselines import ItemKNN, Popularity
from models.data import MusicTensors
from models.fusion import blended, choose_weight
from models.knowledge import TagProfile
from models.lightgcn import EmbeddingRecommender, KnowledgeLightGCN, LightGCN, MatrixFactorization
from models.metrics import RankingMetrics, evaluate_ranking
from models.split import InteractionSplit, SplitProtocol, split_per_listener
from models.train import TrainConfig, TrainingReport, embedding_scorer, evaluate_model, train_bpr

__all__ = [
    "EMBEDDING_MODELS",
    "FitResult",
    "build_graph",
    "evaluate_on_test",
    "fit_embedding_model",
    "fit_itemknn",
    "fit_popularity",
    "graph_for_model",
    "new_model",
    "selection_split",
]

EMBEDDING_MODELS = ("lightgcn", "knowledge-lightgcn", "knowledge-lightgcn-nodes", "bpr-mf", "lightgcn-tags")
# Kinds whose embedding scores are fused with the tag and entity channel (models.knowledge.TagProfile),
# its weight chosen on validation. "lightgcn-tags" is the ablation: the same channel on plain LightGCN.
TAG_CHANNEL = ("knowledge-lightgcn", "lightgcn-tags")
SELECTION = SplitProtocol(
    name="selection-7-1", ratios=(7.0, 1.0), description="validation carved from the training part"
)
ITEMKNN_NEIGHBOURHOODS = (50, 100, 200, 400, 800, 1600)
# Matrix factorisation has no propagation to smooth it and overfits within a few epochs at LightGCN's
# L2 weight; 1e-2 was the best of {1e-4, 1e-2} on Last.fm-2k (Recall@20 0.176 -> 0.215).
WEIGHT_DECAY = {"bpr-mf": 1e-2}

Scorer = Callable[[Tensor], Tensor]


@dataclass
class FitResult:
    """A fitted recommender with its scorer, timings and the choices made on validation data."""

    name: str
    scorer: Scorer
    seconds: float
    epochs: int = 0
    model: EmbeddingRecommender | None = None
    graph: ModelGraph = None
    report: TrainingReport | None = None
    selection: TrainingReport | None = None
    chosen: dict[str, float] = field(default_factory=dict)
    fused: bool = False  # the scorer adds the tag channel to the model's scores

    @property
    def seconds_per_epoch(self) -> float | None:
        if self.report is None or self.report.epochs_run == 0:
            return None
        return self.report.seconds_per_epoch


def build_graph(kind: str, train: MusicTensors) -> ModelGraph:
    """The propagation graph a model kind needs, from training interactions only."""
    if kind in ("lightgcn", "lightgcn-tags"):
        return bipartite_adjacency(train.interactions, train.num_listeners, train.num_artists)
    if kind == "knowledge-lightgcn":
        return knowledge_graph(train, side_information="features")
    if kind == "knowledge-lightgcn-nodes":
        return knowledge_graph(train, side_information="nodes")
    if kind == "bpr-mf":
        return None
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(EMBEDDING_MODELS)}")


def graph_for_model(model: EmbeddingRecommender, tensors: MusicTensors) -> ModelGraph:
    """The graph a (loaded) model propagates over, built from ``tensors``' interactions."""
    kind = model.architecture
    if isinstance(model, KnowledgeLightGCN) and model.side_information == "nodes":
        kind = "knowledge-lightgcn-nodes"
    return build_graph(kind, tensors)


def new_model(
    kind: str, tensors: MusicTensors, *, embedding_dim: int = 64, num_layers: int = 3
) -> EmbeddingRecommender:
    if kind in ("lightgcn", "lightgcn-tags"):
        return LightGCN(tensors.num_listeners, tensors.num_artists, embedding_dim, num_layers)
    if kind in ("knowledge-lightgcn", "knowledge-lightgcn-nodes"):
        return KnowledgeLightGCN(
            tensors.num_listeners,
            tensors.num_artists,
            tensors.num_tags,
            tensors.num_entities,
            embedding_dim,
            num_layers,
            side_information="nodes" if kind.endswith("-nodes") else "features",
        )
    if kind == "bpr-mf":
        return MatrixFactorization(tensors.num_listeners, tensors.num_artists, embedding_dim)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(EMBEDDING_MODELS)}")


def selection_split(split: InteractionSplit) -> InteractionSplit:
    """Training and validation parts for model selection: the split's own, or carved from training."""
    if split.valid is not None:
        return split
    carved = split_per_listener(split.train, SELECTION, seed=split.seed + 1)
    return replace(carved, valid=carved.test, test=split.test)


def fit_embedding_model(
    kind: str,
    split: InteractionSplit,
    config: TrainConfig,
    *,
    monitor_test: bool = False,
    progress: bool = True,
    embedding_dim: int = 64,
    num_layers: int = 3,
) -> FitResult:
    """Train ``kind`` with early stopping on validation NDCG (refitting when validation was carved).

    ``monitor_test`` records test metrics at every evaluation of the final fit (never used for a
    decision) so the benchmark can trace quality against training time.
    """
    tensors = split.train
    started = time.perf_counter()
    if kind in WEIGHT_DECAY:
        config = replace(config, weight_decay=WEIGHT_DECAY[kind])
    selection = selection_split(split)
    model = new_model(kind, tensors, embedding_dim=embedding_dim, num_layers=num_layers)
    graph = build_graph(kind, selection.train)
    monitor = _test_monitor(split, graph, config.k) if monitor_test and split.valid is not None else None
    report = train_bpr(
        model,
        graph,
        selection.train.interactions,
        config,
        valid_edges=selection.valid,
        monitor=monitor,
        progress=progress,
        description=f"{kind} ({split.protocol.name})",
    )
    first = report
    weight = 0.0
    if kind in TAG_CHANNEL:
        assert selection.valid is not None
        weight, _ = choose_weight(
            embedding_scorer(model, graph),
            TagProfile(selection.train),
            selection.valid,
            selection.train.interactions,
            num_listeners=tensors.num_listeners,
            num_artists=tensors.num_artists,
            k=config.k,
        )
    if split.valid is None:
        # Refit on the whole training part for the epoch count that validation chose.
        graph = build_graph(kind, tensors)
        refit = replace(config, epochs=max(1, report.best_epoch))
        monitor = _test_monitor(split, graph, config.k) if monitor_test else None
        report = train_bpr(
            model,
            graph,
            tensors.interactions,
            refit,
            monitor=monitor,
            progress=progress,
            description=f"{kind} refit",
        )
    scorer = embedding_scorer(model, graph)
    if weight > 0:
        scorer = blended(scorer, TagProfile(tensors), weight)
    seconds = time.perf_counter() - started
    return FitResult(
        name=kind,
        scorer=scorer,
        seconds=seconds,
        epochs=report.best_epoch,
        model=model,
        graph=graph,
        report=report,
        selection=first if first is not report else None,
        chosen={"epochs": report.best_epoch, **({"tag_weight": weight} if kind in TAG_CHANNEL else {})},
        fused=weight > 0,
    )


def _test_monitor(
    split: InteractionSplit, graph: ModelGraph, k: int
) -> Callable[[EmbeddingRecommender], RankingMetrics]:
    exclude = _exclusions(split)
    return lambda model: evaluate_model(model, graph, split.test, exclude, k=k)


def _exclusions(split: InteractionSplit) -> Tensor:
    """What to mask when ranking for the test part: training plus validation interactions."""
    if split.valid is None:
        return split.train.interactions
    return torch.cat([split.train.interactions, split.valid], dim=1)


def fit_popularity(split: InteractionSplit) -> FitResult:
    started = time.perf_counter()
    model = Popularity.fit(split.train.interactions, split.train.num_artists)
    return FitResult(name="popularity", scorer=model.score, seconds=time.perf_counter() - started)


def fit_itemknn(
    split: InteractionSplit, *, k: int, neighbourhoods: tuple[int, ...] = ITEMKNN_NEIGHBOURHOODS
) -> FitResult:
    """ItemKNN with the neighbourhood size that ranks validation best (NDCG@k), refitted if carved."""
    tensors = split.train
    started = time.perf_counter()
    selection = selection_split(split)
    best, best_ndcg = neighbourhoods[0], -1.0
    for size in neighbourhoods:
        candidate = ItemKNN.fit(
            selection.train.interactions, tensors.num_listeners, tensors.num_artists, neighbours=size
        )
        assert selection.valid is not None
        ndcg = evaluate_ranking(
            candidate.score,
            selection.valid,
            selection.train.interactions,
            num_listeners=tensors.num_listeners,
            num_artists=tensors.num_artists,
            k=k,
        ).ndcg
        if ndcg > best_ndcg:
            best, best_ndcg = size, ndcg
            model = candidate
    if split.valid is None:
        model = ItemKNN.fit(tensors.interactions, tensors.num_listeners, tensors.num_artists, neighbours=best)
    return FitResult(
        name="itemknn", scorer=model.score, seconds=time.perf_counter() - started, chosen={"neighbours": best}
    )


def evaluate_on_test(result: FitResult, split: InteractionSplit, k: int) -> RankingMetrics:
    """Full-ranking test metrics with training (and validation) interactions masked."""
    return evaluate_ranking(
        result.scorer,
        split.test,
        _exclusions(split),
        num_listeners=split.train.num_listeners,
        num_artists=split.train.num_artists,
        k=k,
    )
