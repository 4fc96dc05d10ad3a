"""A simulated fungiverse that co-trains LightGCN on a music graph (synthetic, or Last.fm-2k).

Listeners are dealt to nodes, IID (shuffled) or non-IID (each node gets one taste community, found
by k-means on listeners' training artists); each node keeps only its listeners' interactions,
renumbered locally, and the artist ids of the shared catalogue. Every node therefore holds its own
small graph and its own copy of the artist table (its model), and nothing else: the catalogue's IRI
tuples are shared by reference and no node holds another node's listens.

The item graph (:mod:`models.itemgraph`) is the second thing nodes share: with
``statistics_noise`` set, each group asks its members to publish noised co-listening statistics as
a protocol message (``ShareStatistics``, agents/protocol/statistics.py), and :func:`item_graph_of`
reads the RP3beta graph a node built from what it received.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agents.protocol.context import NodeContext
from agents.protocol.learning import RuleResolver, resolve_rule
from agents.protocol.messages import Schedule
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.statistics import group_statistics
from agents.scenarios import WEIGHTED_MEAN, actor_iri, add_grouped_node
from agents.simulator import Simulator
from knowledge.music import SynthParams, synthesize
from models.data import MusicTensors
from models.itemgraph import ItemGraph
from models.split import PROTOCOL_80_20, SplitProtocol, split_per_listener

__all__ = [
    "IID",
    "LIGHTGCN",
    "NON_IID",
    "NodeData",
    "RecsysFungiverse",
    "deal_listeners",
    "fungiverse_over",
    "item_graph_of",
    "recsys_fungiverse",
    "synthetic_tensors",
    "taste_communities",
]

LIGHTGCN = "https://w3id.org/spore/ns#LightGCN"
IID, NON_IID = "iid", "non-iid"


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
    validation: Tensor | None = None  # held out of the training part, to choose settings on


def taste_communities(
    train_edges: Tensor, num_listeners: int, num_artists: int, *, k: int, seed: int
) -> Tensor:
    """A community id in ``0..k-1`` per listener: spherical k-means on listeners' training artists.

    Hand-written (twenty lines of Lloyd's iterations) because scikit-learn would be a dependency for
    this one call. Listeners are rows of the 0/1 listener-artist matrix scaled to unit length, so the
    dot product with a centroid is a cosine: listeners who share artists share a community.
    """
    rows = torch.zeros(num_listeners, num_artists)
    rows[train_edges[0], train_edges[1]] = 1.0
    rows = torch.nn.functional.normalize(rows, dim=1)
    generator = torch.Generator().manual_seed(seed)
    centroids = rows[torch.randperm(num_listeners, generator=generator)[:k]].clone()
    labels = torch.zeros(num_listeners, dtype=torch.long)
    for iteration in range(50):
        new = (rows @ centroids.T).argmax(dim=1)
        if iteration > 0 and bool((new == labels).all()):
            break
        labels = new
        for c in range(k):
            members = rows[labels == c]
            if members.shape[0]:
                centroids[c] = torch.nn.functional.normalize(members.mean(dim=0), dim=0)
    return labels


def deal_listeners(
    tensors: MusicTensors,
    nodes: int,
    *,
    seed: int,
    split: str = IID,
    protocol: SplitProtocol = PROTOCOL_80_20,
) -> list[NodeData]:
    """Split per listener by ``protocol`` (80/20, or with a validation part), then deal listeners to
    ``nodes``, renumbered locally.

    ``split``: ``iid`` deals listeners at random; ``non-iid`` finds ``nodes`` taste communities
    (:func:`taste_communities`, on training edges only), orders listeners by community and by how
    close they sit to it, and cuts the order into ``nodes`` equal runs, so that each node holds one
    community (a large community spans several nodes, a small one shares a node with its neighbour
    in the order) and every node the same number of listeners, like the IID split.
    """
    split_edges = split_per_listener(tensors, protocol, seed)
    train = split_edges.train.interactions
    if split == IID:
        order = torch.randperm(tensors.num_listeners, generator=torch.Generator().manual_seed(seed))
    elif split == NON_IID:
        labels = taste_communities(train, tensors.num_listeners, tensors.num_artists, k=nodes, seed=seed)
        shuffle = torch.randperm(tensors.num_listeners, generator=torch.Generator().manual_seed(seed))
        order = shuffle[torch.argsort(labels[shuffle], stable=True)]
    else:
        raise ValueError(f"split must be {IID!r} or {NON_IID!r}, not {split!r}")
    owner = torch.empty(tensors.num_listeners, dtype=torch.long)
    if split == IID:
        owner[order] = torch.arange(tensors.num_listeners) % nodes
    else:
        owner[order] = torch.arange(tensors.num_listeners) * nodes // tensors.num_listeners
    dealt = []
    for node in range(nodes):
        mine = torch.sort(order[owner[order] == node]).values
        local = torch.full((tensors.num_listeners,), -1, dtype=torch.long)
        local[mine] = torch.arange(mine.numel())

        def renumber(edges: Tensor, local: Tensor = local) -> Tensor:
            kept = edges[:, local[edges[0]] >= 0]
            return torch.stack([local[kept[0]], kept[1]])

        valid = None if split_edges.valid is None else renumber(split_edges.valid)
        dealt.append(NodeData(mine, renumber(train), renumber(split_edges.test), valid))
    return dealt


@dataclass
class RecsysFungiverse:
    simulator: Simulator
    actors: list[str]
    tensors: MusicTensors
    data: list[NodeData]

    def learner(self, actor: str) -> LightGCNLearner:
        learner = self.simulator.nodes[actor].ctx.learner
        assert isinstance(learner, LightGCNLearner)
        return learner

    def listener_iris(self, index: int) -> list[str]:
        """The IRIs of node ``index``'s listeners: what its privacy check looks for."""
        return [self.tensors.listeners[int(i)] for i in self.data[index].listeners]


def recsys_fungiverse(
    nodes: int,
    *,
    params: SynthParams | None = None,
    seed: int = 0,
    **options: Any,
) -> RecsysFungiverse:
    """``nodes`` LightGCN nodes in groups over the seeded synthetic graph (see :func:`fungiverse_over`)."""
    tensors = synthetic_tensors(params or SynthParams(seed=seed))
    return fungiverse_over(tensors, deal_listeners(tensors, nodes, seed=seed), seed=seed, **options)


def fungiverse_over(
    tensors: MusicTensors,
    data: list[NodeData],
    *,
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
    statistics_noise: float | None = None,
    simulator_options: dict[str, object] | None = None,
) -> RecsysFungiverse:
    """One LightGCN node per entry of ``data`` in groups of ``group_size`` over ``tensors``' catalogue.

    ``statistics_noise``: the groups ask their members to share co-listening statistics with this
    noise (None: they share only model updates).
    """
    simulator = Simulator(seed=seed, **(simulator_options or {}))  # type: ignore[arg-type]
    actors = [actor_iri(i) for i in range(len(data))]
    for index, (actor, mine) in enumerate(zip(actors, data, strict=True)):
        learner = LightGCNLearner(
            mine.train_edges,
            mine.held_out,
            num_listeners=int(mine.listeners.numel()),
            num_artists=tensors.num_artists,
            embedding_dim=embedding_dim,
            num_layers=num_layers,
            local_epochs=local_epochs,
            validation=mine.validation,
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
            statistics_noise=statistics_noise,
        )
    return RecsysFungiverse(simulator, actors, tensors, data)


def item_graph_of(world: RecsysFungiverse, actor: str, *, beta: float | None = None) -> ItemGraph | None:
    """The RP3beta graph ``actor`` scores with: the sum of the statistics it holds for its group
    (its own and what its peers sent it over the protocol), or None before it holds any."""
    node = world.simulator.nodes[actor]
    parts = group_statistics(node.ctx, world.simulator.state(actor))
    return world.learner(actor).item_graph(parts, beta=beta) if parts else None
