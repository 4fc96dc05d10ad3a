"""The quality half of bench/fungiverse.py: centralized, silo, FedAvg and SPORE on Last.fm-2k.

Every method sees the same per-listener split (``models.split``, one seed): 70 % training, 10 %
validation (carved out of the former 80 % training part; the 20 % test part is unchanged), and is
scored the same way: full ranking over all artists, training and validation artists masked,
Recall@20 and NDCG@20 averaged over all listeners of all nodes (each node's mean weighted by its
listeners). Only SPORE has settings to choose, and it chooses them on validation, never on test.
Federated methods run in the protocol simulator, with the privacy check
(``models.privacy.check_outgoing``) on every payload that leaves a node, on the wire bytes.

* centralized: one LightGCN over everybody's listens (the ceiling);
* silo: each node's LightGCN trained on its listeners alone, same trainer;
* FedAvg: the protocol's weighted mean of the artist table every round, full fp32 copies;
* SPORE: co-listening statistics shared as a protocol message (``ShareStatistics``, once per peer,
  privacy-checked with every other payload), LightGCN co-trained with compressed updates (top rows,
  int8, error feedback), a few local epochs after the last merge, and recommendations from the
  standardised sum of the RP3beta walk over the summed graph and the model's scores. Each node
  chooses RP3beta's ``beta`` on its own validation listens by the walk's Recall@20 once it holds its
  group's statistics, and the blend weight by the blend's validation Recall@20 at every evaluation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents.protocol.recommender import BETAS, BLEND_WEIGHTS, BlendChoice
from agents.protocol.statistics import group_statistics
from agents.protocol.wire import WireCodec, WirePayload
from agents.recsys_scenario import (
    IID,
    NON_IID,
    NodeData,
    deal_listeners,
    fungiverse_over,
)
from models.adjacency import bipartite_adjacency
from models.compression import full_copy_bytes
from models.data import MusicTensors
from models.lightgcn import LightGCN
from models.metrics import RankingMetrics
from models.privacy import check_outgoing
from models.split import PROTOCOL_70_10_20, split_per_listener
from models.train import TrainConfig, evaluate_model, train_bpr

K = 20


@dataclass
class Settings:
    """One benchmark run's knobs (docs/spore-protocol.md section 11 records runs at 0.05 and 0.02 rows)."""

    nodes: int = 8
    seed: int = 0
    embedding_dim: int = 64
    num_layers: int = 3
    central_epochs: int = 150
    silo_epochs: int = 100
    rounds: int = 100
    every: int = 10  # evaluate every this many epochs or rounds
    row_fraction: float = 0.02  # 7 copies a round stay under 5 % of one fp32 copy
    fine_tune_epochs: int = 3
    noise: float = 0.005
    betas: tuple[float, ...] = BETAS  # RP3beta popularity damping, chosen on validation
    blend_weights: tuple[float, ...] = BLEND_WEIGHTS  # the model's share, chosen on validation


@dataclass
class Trace:
    """Quality against progress: (step, training seconds so far, Recall@K, NDCG@K)."""

    points: list[tuple[int, float, float, float]] = field(default_factory=list)

    def add(self, step: int, seconds: float, metrics: tuple[float, float]) -> None:
        self.points.append((step, seconds, *metrics))

    def final(self) -> tuple[float, float]:
        return self.points[-1][2], self.points[-1][3]

    def to_95(self) -> tuple[int, float]:
        """The first step (and seconds) at which Recall@K reached 95 % of its final value."""
        target = 0.95 * self.final()[0]
        return next((step, seconds) for step, seconds, recall, _ in self.points if recall >= target)


def micro_average(parts: list[RankingMetrics | None]) -> tuple[float, float]:
    """Recall and NDCG over all listeners of all nodes: node means weighted by their listeners."""
    present = [part for part in parts if part is not None]
    total = sum(part.listeners for part in present)
    recall = sum(part.recall * part.listeners for part in present) / total
    ndcg = sum(part.ndcg * part.listeners for part in present) / total
    return recall, ndcg


def subsample(tensors: MusicTensors, listeners: int, seed: int) -> MusicTensors:
    """The first ``listeners`` of a seeded shuffle, with their interactions (for development runs)."""
    chosen = torch.sort(
        torch.randperm(tensors.num_listeners, generator=torch.Generator().manual_seed(seed))[:listeners]
    ).values
    local = torch.full((tensors.num_listeners,), -1, dtype=torch.long)
    local[chosen] = torch.arange(chosen.numel())
    keep = local[tensors.interactions[0]] >= 0
    edges = tensors.interactions[:, keep]
    return MusicTensors(
        listeners=tuple(tensors.listeners[int(i)] for i in chosen),
        artists=tensors.artists,
        tags=(),
        entities=(),
        relations=(),
        interactions=torch.stack([local[edges[0]], edges[1]]),
        play_counts=tensors.play_counts[keep],
        artist_tags=torch.empty(2, 0, dtype=torch.long),
        artist_entities=torch.empty(3, 0, dtype=torch.long),
        artist_names=tensors.artist_names,
    )


def centralized(tensors: MusicTensors, settings: Settings) -> dict[str, Any]:
    """LightGCN over all listeners at once, test quality traced every ``every`` epochs."""
    split = split_per_listener(tensors, PROTOCOL_70_10_20, settings.seed)
    train, test = split.train.interactions, split.test
    assert split.valid is not None
    known = torch.cat([train, split.valid], dim=1)
    model = LightGCN(tensors.num_listeners, tensors.num_artists, settings.embedding_dim, settings.num_layers)
    graph = bipartite_adjacency(train, tensors.num_listeners, tensors.num_artists)
    config = TrainConfig(epochs=settings.central_epochs, eval_every=settings.every, k=K, seed=settings.seed)
    report = train_bpr(
        model,
        graph,
        train,
        config,
        monitor=lambda m: evaluate_model(m, graph, test, known, k=K),
        progress=False,
    )
    trace = Trace()
    for record in report.history:
        if record.extra is not None:
            trace.add(record.epoch, record.seconds, (record.extra.recall, record.extra.ndcg))
    return _summary("centralized LightGCN", "epochs", trace, bytes_per_round=0)


def silo(tensors: MusicTensors, data: list[NodeData], settings: Settings) -> dict[str, Any]:
    """Each node's LightGCN on its own listeners, the centralized trainer with the protocol's batch."""
    traces: list[list[tuple[int, float, RankingMetrics]]] = []
    for mine in data:
        count = int(mine.listeners.numel())
        model = LightGCN(count, tensors.num_artists, settings.embedding_dim, settings.num_layers)
        graph = bipartite_adjacency(mine.train_edges, count, tensors.num_artists)
        config = TrainConfig(
            epochs=settings.silo_epochs, batch_size=2048, eval_every=settings.every, k=K, seed=settings.seed
        )
        report = train_bpr(
            model,
            graph,
            mine.train_edges,
            config,
            monitor=lambda m, g=graph, d=mine: evaluate_model(m, g, d.held_out, _known(d), k=K),
            progress=False,
        )
        traces.append([(r.epoch, r.seconds, r.extra) for r in report.history if r.extra is not None])
    trace = Trace()
    for points in zip(*traces, strict=True):
        seconds = sum(point[1] for point in points)
        trace.add(points[0][0], seconds, micro_average([point[2] for point in points]))
    return _summary("silo (each node alone)", "epochs", trace, bytes_per_round=0)


def _known(mine: NodeData) -> torch.Tensor:
    """What ranking on test masks: training and validation listens."""
    parts = [mine.train_edges] + ([mine.validation] if mine.validation is not None else [])
    return torch.cat(parts, dim=1)


class _PrivacyTap:
    """Checks every payload that leaves a node against that node's listeners.

    The simulator calls the tap once per recipient with the same payload object; checking it once
    per send is enough, and holding the last payload (not its ``id``) rules out a reused id.
    """

    def __init__(self) -> None:
        self.listeners: dict[str, list[str]] = {}
        self.checked = 0
        self.statistics_bytes: dict[str, int] = {}  # sender -> statistics artifact bytes, every copy
        self._last: WirePayload | None = None

    def __call__(self, sender: str, recipient: str, payload: WirePayload) -> None:
        if b"spore:CoListeningStatistics" in payload.activity:
            sent = sum(len(blob) for _, blob in payload.artifacts)
            self.statistics_bytes[sender] = self.statistics_bytes.get(sender, 0) + sent
        if payload is self._last:
            return
        self._last = payload
        iris = self.listeners[sender]
        check_outgoing(payload.activity, iris)
        for _, artifact in payload.artifacts:
            check_outgoing(artifact, iris)
        self.checked += 1


def protocol_run(
    tensors: MusicTensors, data: list[NodeData], settings: Settings, *, row_fraction: float | None
) -> list[dict[str, Any]]:
    """Co-train through the simulator round by round; trace quality every ``every`` rounds.

    Members share their co-listening statistics over the protocol with their first update. With
    ``row_fraction`` None (full fp32 updates) the run yields two methods from the same co-training:
    FedAvg (the merged model alone: the baseline, which never looks at the shared graph) and SPORE
    uncompressed (the same model blended with the graph, then fine-tuned). With a ``row_fraction``
    it yields SPORE.
    """
    tap = _PrivacyTap()
    world = fungiverse_over(
        tensors,
        data,
        seed=settings.seed,
        group_size=settings.nodes,
        embedding_dim=settings.embedding_dim,
        num_layers=settings.num_layers,
        max_rounds=settings.rounds,
        evaluate=False,
        row_fraction=row_fraction,
        quantize=row_fraction is not None,
        statistics_noise=settings.noise,
        round_timeout=60.0,
        simulator_options={"codec": WireCodec(), "tap": tap},
    )
    tap.listeners = {actor: world.listener_iris(i) for i, actor in enumerate(world.actors)}
    simulator = world.simulator
    choices: dict[str, BlendChoice] = {}

    def quality(weights_of: Callable[[int, str], Any], graph: bool) -> tuple[float, float]:
        """Test metrics; with the graph, blended as each node chooses on its validation listens (the
        learner's own choice, as served nodes make it)."""
        parts = []
        for index, actor in enumerate(world.actors):
            learner = world.learner(actor)
            weights = weights_of(index, actor)
            if not graph:
                parts.append(learner.ranking(learner.scorer(weights)))
                continue
            held = group_statistics(simulator.nodes[actor].ctx, simulator.state(actor))
            assert held, "the node holds no co-listening statistics"
            choice = learner.choose_blend(
                weights, held, betas=settings.betas, blend_weights=settings.blend_weights
            )
            choices[actor] = choice
            scorer = learner.blended_scorer(weights, held, beta=choice.beta, weight=choice.weight)
            parts.append(learner.ranking(scorer))
        return micro_average(parts)

    spore, model_only, spent = Trace(), Trace(), 0.0
    for round_number in range(1, settings.rounds + 1):
        started = time.perf_counter()
        simulator.run_until(
            lambda s, r=round_number: all(s.state(a).rounds_done >= r for a in world.actors),
            limit=simulator.now + 1000.0,
            tick=0.5,
        )
        spent += time.perf_counter() - started
        if round_number % settings.every == 0 or round_number == settings.rounds:
            current = lambda i, a: simulator.state(a).weights  # noqa: E731
            spore.add(round_number, spent, quality(current, graph=True))
            if row_fraction is None:
                model_only.add(round_number, spent, quality(current, graph=False))
    if settings.fine_tune_epochs:
        started = time.perf_counter()
        tuned = [
            world.learner(a).fine_tuned(simulator.state(a).weights, epochs=settings.fine_tune_epochs, seed=i)
            for i, a in enumerate(world.actors)
        ]
        tuning = time.perf_counter() - started
        spore.add(settings.rounds, spent + tuning, quality(lambda i, a: tuned[i], graph=True))
    merged = sum(simulator.state(a).rounds_done for a in world.actors)
    update_bytes = simulator.stats.get("update-bytes", 0)
    statistics_bytes = sum(tap.statistics_bytes.values())
    per_round = update_bytes / max(1, merged)
    per_message = update_bytes / max(1, simulator.stats.get("updates", 1))
    full = full_copy_bytes(dict(simulator.state(world.actors[0]).blueprint.shared_shapes))
    traffic = {
        "bytes_per_update": per_message,
        "update_share_of_full_copy": per_message / full,
        "node_round_share_of_full_copy": per_round / full,
        "full_copy_bytes": full,
        "payloads_checked": tap.checked,
        "row_fraction": row_fraction,
    }
    statistics = {
        "statistics_bytes_per_node_once": max(tap.statistics_bytes.values(), default=0),
        "statistics_messages": sum(
            simulator.state(a).counters.get("sent:statistics", 0) for a in world.actors
        ),
        "bytes_per_node_round_with_statistics": (update_bytes + statistics_bytes) / max(1, merged),
        "chosen_beta": {actor: c.beta for actor, c in choices.items()},
        "chosen_blend_weight": {actor: c.weight for actor, c in choices.items()},
    }
    name = "SPORE" if row_fraction is not None else "SPORE, uncompressed"
    methods = [{**_summary(name, "rounds", spore, bytes_per_round=per_round), **traffic, **statistics}]
    if row_fraction is None:
        methods.insert(0, {**_summary("FedAvg", "rounds", model_only, bytes_per_round=per_round), **traffic})
    return methods


def _summary(method: str, unit: str, trace: Trace, *, bytes_per_round: float) -> dict[str, Any]:
    recall, ndcg = trace.final()
    step, seconds = trace.to_95()
    return {
        "method": method,
        "recall": recall,
        "ndcg": ndcg,
        "unit": unit,
        "to_95_steps": step,
        "to_95_seconds": seconds,
        "total_seconds": trace.points[-1][1],
        "bytes_per_node_round": bytes_per_round,
        "trace": trace.points,
    }


def run_quality(
    tensors: MusicTensors, settings: Settings, splits: tuple[str, ...] = (IID, NON_IID)
) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(settings.seed)
    results: dict[str, Any] = {"settings": settings.__dict__, "data": tensors.describe()}
    results["centralized"] = centralized(tensors, settings)
    print(f"centralized: {results['centralized']['recall']:.4f}", flush=True)
    for split in splits:
        data = deal_listeners(
            tensors, settings.nodes, seed=settings.seed, split=split, protocol=PROTOCOL_70_10_20
        )
        methods = [silo(tensors, data, settings)]
        print(f"{split} silo: {methods[-1]['recall']:.4f}", flush=True)
        methods += protocol_run(tensors, data, settings, row_fraction=None)
        methods += protocol_run(tensors, data, settings, row_fraction=settings.row_fraction)
        print(", ".join(f"{split} {m['method']}: {m['recall']:.4f}" for m in methods), flush=True)
        results[split] = methods
    return results


def targets(results: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(target, measured ratio, required ratio, met) for issue 5's quality and bytes targets."""
    rows = []
    central = results["centralized"]["recall"]
    by_name = {
        split: {m["method"]: m for m in results[split]} for split in (IID, NON_IID) if split in results
    }
    if IID in by_name:
        spore = by_name[IID]["SPORE"]
        rows.append(
            ("IID: SPORE / centralized", spore["recall"] / central, 0.95, spore["recall"] >= 0.95 * central)
        )
    if NON_IID in by_name:
        methods = by_name[NON_IID]
        spore = methods["SPORE"]["recall"]
        for other in ("silo (each node alone)", "FedAvg"):
            ratio = spore / methods[other]["recall"]
            rows.append((f"non-IID: SPORE / {other}", ratio, 1.15, ratio >= 1.15))
    for split, methods in by_name.items():
        spore = methods["SPORE"]
        share = spore["update_share_of_full_copy"]
        rows.append((f"{split}: one update / full fp32 copy", share, 0.05, share <= 0.05))
        if "bytes_per_node_round_with_statistics" in spore:
            # What the budget counts: every copy a node sends a round, statistics included.
            total = spore["bytes_per_node_round_with_statistics"] / spore["full_copy_bytes"]
            name = f"{split}: a node's bytes a round, statistics included / copy"
            rows.append((name, total, 0.05, total <= 0.05))
        if "SPORE, uncompressed" in methods:
            ratio = spore["recall"] / methods["SPORE, uncompressed"]["recall"]
            rows.append((f"{split}: compressed / uncompressed Recall", ratio, 0.99, ratio >= 0.99))
    return rows


def default_data_dir(root: Path) -> Path:
    """``$SPORE_DATA_DIR``, or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SPORE_DATA_DIR", root.parent / "shared" / "data"))
