"""The protocol's learner over the models engineer's LightGCN: local BPR epochs on a node's own listens.

A node's graph holds its own listeners and every artist of the shared catalogue, so its artist table
lines up row for row with every other node's (catalogue IRIs are global) and can be merged, while
its listener table covers only its own listeners and never leaves it. Each round starts from the
weights the protocol hands in (the group model after a merge), not from a fresh initialisation,
which is why this does not call ``models.train.train_bpr`` (that trainer resets parameters and
keeps the best-validated epoch, both right for one run and wrong for one round).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from agents.protocol.learning import TrainResult, Weights
from models.adjacency import ModelGraph, bipartite_adjacency
from models.fusion import blended, standardised
from models.itemgraph import (
    DEFAULT_BETA,
    CoListening,
    ItemGraph,
    MalformedStatisticsError,
    co_listening,
    decode_statistics,
    encode_statistics,
    merge_statistics,
    noised,
)
from models.knowledge import SideInformation
from models.lightgcn import LightGCN
from models.metrics import RankingMetrics, evaluate_ranking
from models.train import bpr_epoch, embedding_scorer, evaluate_model

__all__ = [
    "BETAS",
    "BLEND_PREFIX",
    "BLEND_WEIGHTS",
    "BlendChoice",
    "LightGCNLearner",
    "blended",
    "standardised",
]

Scorer = Callable[[Tensor], Tensor]

# What a node tries on its validation listens (docs/spore-protocol.md section 11): RP3beta's popularity
# damping, and the model's share next to the item graph (0: the graph alone).
BETAS = (0.0, 0.2, 0.4, 0.6)
BLEND_PREFIX = "blend-"  # metrics of the blend, beside the model's own
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class BlendChoice:
    """The item graph's ``beta`` and the model's ``weight`` in the blend a node recommends with."""

    beta: float
    weight: float


# Statistics are large and every member of a group receives the same bytes and builds the same graph:
# decode each payload and build each summed graph once per process (bounded, least recent dropped).
_DECODED: OrderedDict[tuple[str, int], CoListening] = OrderedDict()
_GRAPHS: OrderedDict[tuple[tuple[str, ...], int, float], ItemGraph] = OrderedDict()


def _remember(cache: OrderedDict, key: object, make: Callable[[], object], limit: int) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    cache[key] = value = make()
    if len(cache) > limit:
        cache.popitem(last=False)
    return value


@dataclass(frozen=True, eq=False)
class LightGCNLearner:
    """LightGCN (He et al., SIGIR 2020) trained with BPR on one node's interactions.

    ``train_edges`` / ``held_out``: ``LongTensor [2, E]`` of (local listener id, global artist id);
    ``num_listeners`` is this node's listener count, ``num_artists`` the catalogue's. ``local_epochs``
    passes over ``train_edges`` per round in batches of ``batch_size``; Adam restarts each round
    (its moments describe the weights before the merge, not after).

    Co-listening statistics (``agents.protocol.statistics``): the node publishes those of
    ``train_edges`` and scores with RP3beta (``graph_beta``) over its group's sum, blended with
    weight ``blend_weight``. ``validation``: listens held out of training to choose those two on
    (:meth:`ranking` with ``validation=True``); they are masked, like training listens, when
    ranking ``held_out``.
    """

    train_edges: Tensor
    held_out: Tensor
    num_listeners: int
    num_artists: int
    embedding_dim: int = 64
    num_layers: int = 3
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    local_epochs: int = 1
    batch_size: int = 2048
    k: int = 20
    graph_beta: float = DEFAULT_BETA
    blend_weight: float = 1.0
    validation: Tensor | None = None
    side: SideInformation | None = None  # set: the knowledge-aware model (models/knowledge.py)
    _graph: ModelGraph = field(init=False, repr=False)
    _known: Tensor = field(init=False, repr=False)
    _module: LightGCN | None = field(init=False, repr=False, default=None)
    _payloads: dict[tuple[float, int], bytes] = field(init=False, repr=False, default_factory=dict)
    # Chosen on validation: beta once per set of statistics (with its standardised graph scores for
    # every listener), the blend at each evaluation; the last choice, for what the node publishes.
    _graph_choice: dict[tuple[str, ...], tuple[float, Tensor]] = field(
        init=False, repr=False, default_factory=dict
    )
    _last_choice: list[BlendChoice] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        graph = bipartite_adjacency(self.train_edges, self.num_listeners, self.num_artists)
        object.__setattr__(self, "_graph", graph if self.side is None else self.side.graph(graph))
        keys = self.train_edges[0] * self.num_artists + self.train_edges[1]
        object.__setattr__(self, "_known", torch.sort(keys).values)

    def _model(self, weights: Weights | None = None) -> LightGCN:
        """The node's one working module, loaded with ``weights`` (copied in, never aliased).

        Kept across rounds because building a module draws a random initialisation of every table
        only to overwrite it, which cost more than a local epoch on a small node; the protocol's
        weights stay immutable because ``load_state_dict`` copies into the module's own tensors.
        """
        model = self._module
        if model is None:
            model = self._new_module()
            object.__setattr__(self, "_module", model)
        if weights is not None:
            model.load_state_dict(dict(weights))
        return model

    def _new_module(self) -> LightGCN:
        if self.side is not None:
            return self.side.model(self.num_listeners, self.num_artists, self.embedding_dim, self.num_layers)
        return LightGCN(self.num_listeners, self.num_artists, self.embedding_dim, self.num_layers)

    def initial_weights(self, seed: int) -> dict[str, Tensor]:
        model = self._new_module()
        model.reset_parameters(torch.Generator().manual_seed(seed))
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

    def train(self, weights: Weights, *, seed: int) -> TrainResult:
        model = self._model(weights)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        model.train()
        # Every epoch has the same number of batches, so the mean of epoch means is the mean batch loss.
        losses = [
            bpr_epoch(
                model,
                self._graph,
                self.train_edges,
                self._known,
                optimizer,
                generator,
                batch_size=self.batch_size,
                weight_decay=self.weight_decay,
            )
            for _ in range(self.local_epochs)
        ]
        new = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return TrainResult(new, int(self.train_edges.shape[1]), {"loss": sum(losses) / max(1, len(losses))})

    def fine_tuned(self, weights: Weights, *, epochs: int, seed: int) -> dict[str, Tensor]:
        """``weights`` after ``epochs`` local epochs (a round's training without publishing)."""
        result = weights
        for epoch in range(epochs):
            result = self.train(result, seed=seed + epoch).weights
        return dict(result)

    def scorer(self, weights: Weights) -> Scorer:
        """Scores ``[B, A]`` of the node's (local) listeners under ``weights``."""
        return embedding_scorer(self._model(weights), self._graph)

    def graph_scorer(self, graph: ItemGraph) -> Scorer:
        """Scores ``[B, A]`` of the node's listeners by ``graph`` walks from their training artists."""

        def score(listeners: Tensor) -> Tensor:
            listened = torch.zeros(listeners.numel(), self.num_artists)
            rows = torch.full((self.num_listeners,), -1, dtype=torch.long)
            rows[listeners] = torch.arange(listeners.numel())
            mine = rows[self.train_edges[0]] >= 0
            listened[rows[self.train_edges[0, mine]], self.train_edges[1, mine]] = 1.0
            return graph.score(listened)

        return score

    def ranking(self, scorer: Scorer, *, validation: bool = False) -> RankingMetrics | None:
        """Full-ranking metrics of ``scorer`` on the held-out (or validation) edges, known artists
        masked: training artists, and validation artists when ranking the held-out edges."""
        target = self.validation if validation else self.held_out
        if target is None or target.shape[1] == 0:
            return None
        known = self.train_edges
        if not validation and self.validation is not None:
            known = torch.cat([known, self.validation], dim=1)
        return evaluate_ranking(
            scorer, target, known, num_listeners=self.num_listeners, num_artists=self.num_artists, k=self.k
        )

    def evaluate(self, weights: Weights) -> dict[str, float]:
        if self.held_out.shape[1] == 0:
            return {}
        if self.validation is not None:
            return self._metrics(self.ranking(self.scorer(weights)))
        model = self._model(weights)
        return self._metrics(evaluate_model(model, self._graph, self.held_out, self.train_edges, k=self.k))

    def _metrics(self, metrics: RankingMetrics | None) -> dict[str, float]:
        if metrics is None:
            return {}
        return {f"recall@{self.k}": metrics.recall, f"ndcg@{self.k}": metrics.ndcg}

    # Co-listening statistics (agents.protocol.learning.StatisticsLearner) ----------------------------

    def statistics_payload(self, noise: float, *, seed: int) -> bytes | None:
        """The encoded, noised statistics of this node's training listens (computed once per noise)."""
        key = (float(noise), seed)
        if key not in self._payloads:
            if self.train_edges.shape[1] == 0:
                return None
            own = co_listening(self.train_edges, self.num_listeners, self.num_artists)
            generator = torch.Generator().manual_seed(seed)
            # Released values are rounded to half the noise (free post-processing; models.itemgraph).
            quantum = noise / 2 if noise > 0 else None
            self._payloads[key] = encode_statistics(noised(own, noise, generator), quantum=quantum)
        return self._payloads[key]

    def statistics_problem(self, data: bytes) -> str | None:
        try:
            self._statistics(data)
        except MalformedStatisticsError as error:
            return str(error)
        return None

    def _statistics(self, data: bytes) -> CoListening:
        key = (hashlib.sha256(data).hexdigest(), self.num_artists)
        return _remember(_DECODED, key, lambda: decode_statistics(data, num_artists=self.num_artists), 64)

    def item_graph(self, statistics: Sequence[bytes], *, beta: float | None = None) -> ItemGraph:
        """RP3beta over the sum of ``statistics`` (own and peers'), built once per set and beta."""
        beta = self.graph_beta if beta is None else beta
        digests = tuple(sorted(hashlib.sha256(data).hexdigest() for data in statistics))

        def build() -> ItemGraph:
            parts = [self._statistics(data) for data in statistics]
            return ItemGraph.from_statistics(merge_statistics(parts), beta=beta)

        return _remember(_GRAPHS, (digests, self.num_artists, beta), build, 8)

    def blended_scorer(
        self,
        weights: Weights,
        statistics: Sequence[bytes],
        *,
        beta: float | None = None,
        weight: float | None = None,
    ) -> Scorer:
        """The node's recommendation scores: the item-graph walk plus ``weight`` times the model's."""
        graph = self.graph_scorer(self.item_graph(statistics, beta=beta))
        return blended(graph, self.scorer(weights), self.blend_weight if weight is None else weight)

    def evaluate_with_statistics(self, weights: Weights, statistics: Sequence[bytes]) -> dict[str, float]:
        """The model's metrics (``recall@k``, ``ndcg@k``: what its snapshot does, what peers can
        reproduce and the reasoner compares) and, with statistics, the metrics of the blend the node
        recommends with (``blend-recall@k``, ``blend-ndcg@k``), its settings chosen on validation."""
        model = self.evaluate(weights)
        if self.held_out.shape[1] == 0 or not statistics:
            self._last_choice.clear()  # the model alone: no blend to report
            return model
        choice = self.choose_blend(weights, statistics)
        scorer = self.blended_scorer(weights, statistics, beta=choice.beta, weight=choice.weight)
        blend = self._metrics(self.ranking(scorer))
        settings = {"graph_beta": choice.beta, "blend_weight": choice.weight}  # published (node_publish)
        return {**model, **{f"{BLEND_PREFIX}{name}": value for name, value in blend.items()}, **settings}

    @property
    def has_validation(self) -> bool:
        return self.validation is not None and self.validation.shape[1] > 0

    @property
    def last_choice(self) -> BlendChoice | None:
        """The blend chosen at the latest evaluation with statistics (None before one)."""
        return self._last_choice[-1] if self._last_choice else None

    def choose_beta(self, statistics: Sequence[bytes], betas: Sequence[float] = BETAS) -> float:
        """The ``beta`` whose item graph alone ranks this node's validation listens best (Recall@k;
        ties keep the earlier), chosen once per set of statistics; the default without validation."""
        return self._graph_scores(statistics, betas)[0]

    def _graph_scores(self, statistics: Sequence[bytes], betas: Sequence[float]) -> tuple[float, Tensor]:
        key = (*sorted(hashlib.sha256(data).hexdigest() for data in statistics), *map(str, betas))
        if key not in self._graph_choice:
            best: tuple[float, float] | None = None
            for beta in betas if self.has_validation else (self.graph_beta,):
                measured = self.ranking(
                    self.graph_scorer(self.item_graph(statistics, beta=beta)), validation=True
                )
                recall = measured.recall if measured is not None else 0.0
                if best is None or recall > best[0]:
                    best = (recall, beta)
            assert best is not None
            everyone = torch.arange(self.num_listeners)
            scores = standardised(self.graph_scorer(self.item_graph(statistics, beta=best[1]))(everyone))
            self._graph_choice.clear()  # one set of statistics at a time: a group's current sum
            self._graph_choice[key] = (best[1], scores)
        return self._graph_choice[key]

    def choose_blend(
        self,
        weights: Weights,
        statistics: Sequence[bytes],
        *,
        betas: Sequence[float] = BETAS,
        blend_weights: Sequence[float] = BLEND_WEIGHTS,
    ) -> BlendChoice:
        """``beta`` (:meth:`choose_beta`) and the model's weight in the blend that ranks this node's
        validation listens best (Recall@k; ties keep the earlier weight), for ``weights`` now.

        Without validation listens: the learner's ``graph_beta`` and ``blend_weight``.
        """
        if not self.has_validation:
            choice = BlendChoice(self.graph_beta, self.blend_weight)
        else:
            beta, graph = self._graph_scores(statistics, betas)
            model = standardised(self.scorer(weights)(torch.arange(self.num_listeners)))
            best: tuple[float, float] | None = None
            for weight in blend_weights:
                measured = self.ranking(
                    lambda listeners, weight=weight: graph[listeners] + weight * model[listeners],
                    validation=True,
                )
                recall = measured.recall if measured is not None else 0.0
                if best is None or recall > best[0]:
                    best = (recall, weight)
            assert best is not None
            choice = BlendChoice(beta, best[1])
        self._last_choice[:] = [choice]
        return choice
