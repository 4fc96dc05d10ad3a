"""A simulated fungiverse that co-trains LightGCN on the seeded synthetic music graph.

Listeners are dealt to nodes (IID: shuffled; non-IID: sorted by their strongest taste community is
a later benchmark's job); each node keeps only its listeners' interactions, renumbered locally,
and the artist ids of the shared catalogue. Every node therefore holds its own small graph and its
own copy of the artist table (its model), and nothing else: the catalogue's IRI tuples are shared
by reference and no node holds another node's listens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.protocol.context import NodeContext
from agents.protocol.learning import RuleResolver, resolve_rule
from agents.protocol.messages import Schedule
from agents.protocol.recommender import LightGCNLearner
from agents.scenarios import WEIGHTED_MEAN, actor_iri, add_grouped_node
from agents.simulator import Simulator
from knowledge.music import SynthParams, synthesize
from models.data import MusicTensors
from models.split import PROTOCOL_80_20, split_per_listener

__all__ = [
    "LIGHTGCN",
    "NodeData",
    "RecsysFungiverse",
    "deal_listeners",
    "recsys_fungiverse",
    "synthetic_tensors",
]

LIGHTGCN = "https://w3id.org/spore/ns#LightGCN"


def synthetic_tensors(params: SynthParams) -> MusicTensors:
    """Listener–artist interactions of a synthetic corpus (side information is not needed here)."""
    corpus = synthesize(params)
    scheme = corpus.scheme
    artists = tuple(sorted({scheme.artist(a.key) for a in corpus.artists}))
    listeners = tuple(sorted({scheme.listener(row.listener) for row in corpus.listenings}))
    a_index = {iri: i for i, iri in enumerate(artists)}
    l_index = {iri: i for i, iri in enumerate(listeners)}
    plays: dict[tuple[int, int], float] = {}
    for row in corpus.listenings:
        pair = (l_index[scheme.listener(row.listener)], a_index[scheme.artist(row.artist)])
        plays[pair] = plays.get(pair, 0.0) + row.plays
    names = {scheme.artist(a.key): a.name for a in corpus.artists}
    empty = torch.empty(2, 0, dtype=torch.long)
    return MusicTensors(
        listeners=listeners,
        artists=artists,
        tags=(),
        entities=(),
        relations=(),
        interactions=torch.tensor(list(plays), dtype=torch.long).T.contiguous(),
        play_counts=torch.tensor(list(plays.values())),
        artist_tags=empty,
        artist_entities=torch.empty(3, 0, dtype=torch.long),
        artist_names=tuple(names[iri] for iri in artists),
    )


@dataclass(frozen=True)
class NodeData:
    """One node's listeners (global ids, for the privacy check) and its renumbered edges."""

    listeners: Tensor
    train_edges: Tensor
    held_out: Tensor


def deal_listeners(tensors: MusicTensors, nodes: int, *, seed: int) -> list[NodeData]:
    """Split 80/20 per listener, then deal listeners to ``nodes`` at random (IID), renumbered."""
    split = split_per_listener(tensors, PROTOCOL_80_20, seed)
    order = torch.randperm(tensors.num_listeners, generator=torch.Generator().manual_seed(seed))
    owner = torch.empty(tensors.num_listeners, dtype=torch.long)
    owner[order] = torch.arange(tensors.num_listeners) % nodes
    dealt = []
    for node in range(nodes):
        mine = torch.sort(order[owner[order] == node]).values
        local = torch.full((tensors.num_listeners,), -1, dtype=torch.long)
        local[mine] = torch.arange(mine.numel())

        def renumber(edges: Tensor, local: Tensor = local) -> Tensor:
            kept = edges[:, local[edges[0]] >= 0]
            return torch.stack([local[kept[0]], kept[1]])

        dealt.append(NodeData(mine, renumber(split.train.interactions), renumber(split.test)))
    return dealt


@dataclass
class RecsysFungiverse:
    simulator: Simulator
    actors: list[str]
    tensors: MusicTensors
    data: list[NodeData]


def recsys_fungiverse(
    nodes: int,
    *,
    params: SynthParams | None = None,
    seed: int = 0,
    group_size: int = 8,
    embedding_dim: int = 32,
    num_layers: int = 2,
    local_epochs: int = 1,
    max_rounds: int | None = 3,
    train_seconds: float = 1.0,
    round_timeout: float = 5.0,
    schedule: str = Schedule.SYNC,
    aggregation_rule: str = WEIGHTED_MEAN,
    rule_for: RuleResolver = resolve_rule,
    evaluate: bool = True,
    row_fraction: float | None = None,
    quantize: bool = False,
    simulator_options: dict[str, object] | None = None,
) -> RecsysFungiverse:
    """``nodes`` LightGCN nodes in groups of ``group_size`` over the synthetic graph."""
    tensors = synthetic_tensors(params or SynthParams(seed=seed))
    data = deal_listeners(tensors, nodes, seed=seed)
    simulator = Simulator(seed=seed, **(simulator_options or {}))  # type: ignore[arg-type]
    actors = [actor_iri(i) for i in range(nodes)]
    for index, (actor, mine) in enumerate(zip(actors, data, strict=True)):
        learner = LightGCNLearner(
            mine.train_edges,
            mine.held_out,
            num_listeners=int(mine.listeners.numel()),
            num_artists=tensors.num_artists,
            embedding_dim=embedding_dim,
            num_layers=num_layers,
            local_epochs=local_epochs,
        )
        add_grouped_node(
            simulator,
            index=index,
            actor=actor,
            weights=learner.initial_weights(seed * 1_000_003 + index),
            architecture=LIGHTGCN,
            group_size=group_size,
            seed=seed,
            context=NodeContext(
                learner=learner,
                rule_for=rule_for,
                train_seconds=train_seconds,
                max_rounds=max_rounds,
                announce_interval=10 * round_timeout,
                evaluate=evaluate,
            ),
            aggregation_rule=aggregation_rule,
            schedule=schedule,
            round_timeout=round_timeout,
            row_fraction=row_fraction,
            quantize=quantize,
        )
    return RecsysFungiverse(simulator, actors, tensors, data)
