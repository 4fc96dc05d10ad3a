"""The evolving fungiverse: simulated LightGCN nodes that reason after every round and act on it.

Nodes start in learning groups drawn at random (the same draw for every run with a seed), each with
its own blueprint: learning rate and local epochs drawn from a range, as people would write them.
Listeners are dealt non-IID by default (each node holds one taste community), so a node's group
mixes tastes. After every merged round a node runs the reasoning loop of :mod:`agents.thinking` (the
one served nodes run too): its own measurement, the other groups' claims (each group's owner
publishes the Recall@20 of its merged model), cross-checks of the tempting ones, one reasoning pass.
Here the claims and snapshots are read from the other simulated nodes' states (:class:`_Simulated`).

The acts go through the protocol: a switch is ``leave()`` (Leave) then a seek of the new group's
hashtag (Join, admitted by its owner); a new blueprint changes the node's learner (learning rate,
local epochs, layers). Owners cannot leave the group they host, so they only mutate. With
``evolve=False`` the same nodes run in their static groups and nothing is decided: the baseline.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyoxigraph import NamedNode, RdfFormat
from rdflib import XSD, Graph, Literal, URIRef

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from agents.protocol.context import NodeContext
from agents.protocol.learning import shared_part
from agents.protocol.messages import GroupInfo
from agents.protocol.recommender import LightGCNLearner
from agents.recsys_scenario import LIGHTGCN, NodeData
from agents.scenarios import WEIGHTED_MEAN, actor_iri, add_grouped_node
from agents.simulator import Simulator
from agents.thinking import (
    RECALL,
    SAFE_OPERATORS,
    Candidate,
    Claim,
    Reasoner,
    RoundView,
    ThinkingSettings,
    learner_settings,
    switch_change,
)
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore, to_rdflib
from models.data import MusicTensors
from ontology import SPORE
from reasoning.evidence import blueprint_of, group_description
from reasoning.mutation import current_blueprint
from reasoning.operators import blueprint_graph

__all__ = ["EvolutionResult", "EvolutionSettings", "learner_settings", "run_evolution"]

START = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class EvolutionSettings:
    """One run: the nodes, their groups, the blueprints drawn for them, and what may evolve."""

    nodes: int = 16
    group_size: int = 4
    rounds: int = 30
    seed: int = 0
    evolve: bool = True
    embedding_dim: int = 32
    num_layers: int = 2
    learning_rates: tuple[str, ...] = ("0.0005", "0.001", "0.002", "0.005", "0.01", "0.02")
    local_epochs: tuple[int, ...] = (1, 2)
    switch_margin: str = "0.05"
    switch_patience: int = 2
    stagnation_rounds: int = 4
    mutation_rate: str = "0.2"
    candidates: int = 2
    entailment: bool = True
    operators: tuple[str, ...] = SAFE_OPERATORS
    """Operators by local name (see :data:`agents.thinking.SAFE_OPERATORS`)."""


@dataclass
class EvolutionResult:
    """Final quality per node, quality and membership over rounds, and what the reasoners did."""

    settings: EvolutionSettings
    final_recall: dict[str, float]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reasoning_seconds: float = 0.0
    passes: int = 0
    store: EmbeddedStore | None = field(default=None, repr=False)
    """Every node's graphs at the end (one host's store): decisions, evidence, blueprints."""
    groups: dict[str, str | None] = field(default_factory=dict)
    """The group each node trains with at the end (None while it is between groups)."""

    def summary(self) -> dict[str, Any]:
        values = sorted(self.final_recall.values())
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return {
            "mean_recall@20": mean,
            "std_recall@20": spread,
            "min_recall@20": values[0],
            "max_recall@20": values[-1],
            "counts": dict(self.counts),
            "seconds": self.seconds,
            "reasoning_passes": self.passes,
            "reasoning_ms_per_pass": 1e3 * self.reasoning_seconds / max(1, self.passes),
        }


def _blueprint(name: str, iri: str, settings: EvolutionSettings, rng: random.Random) -> Graph:
    choices = BlueprintChoices(
        name=name,
        hashtags=("#fungi",),
        embedding_dimension=settings.embedding_dim,
        layers=settings.num_layers,
        learning_rate=rng.choice(settings.learning_rates),
        local_epochs=rng.choice(settings.local_epochs),
        aggregation="weighted-mean",
    )
    graph, report = new_blueprint(choices, iri=iri)
    assert report.conforms, report.lines()
    policy = graph.value(URIRef(iri), SPORE.policy)
    assert policy is not None
    graph.set((policy, SPORE.switchMargin, Literal(settings.switch_margin, datatype=XSD.decimal)))
    graph.set((policy, SPORE.switchPatience, Literal(settings.switch_patience, datatype=XSD.integer)))
    graph.set((policy, SPORE.stagnationRounds, Literal(settings.stagnation_rounds, datatype=XSD.integer)))
    graph.set((policy, SPORE.mutationRate, Literal(settings.mutation_rate, datatype=XSD.decimal)))
    return graph


class _World:
    """The simulator, the shared store (one host's), and the bookkeeping of one run."""

    def __init__(self, tensors: MusicTensors, data: list[NodeData], settings: EvolutionSettings) -> None:
        self.settings = settings
        self.store = EmbeddedStore()
        self.simulator = Simulator(seed=settings.seed)
        self.actors = [actor_iri(i) for i in range(len(data))]
        self.owner_of: dict[str, str] = {}  # group IRI -> owner
        self.groups: dict[str, GroupInfo] = {}
        self.reasoner = Reasoner(
            self.store,
            ThinkingSettings(
                candidates=settings.candidates,
                entailment=settings.entailment,
                operators=settings.operators,
                seed=settings.seed,
            ),
        )
        self.operators = self.reasoner.operators
        draw = random.Random(settings.seed)
        placement = list(range(len(data)))
        draw.shuffle(placement)  # groups drawn at random: each mixes taste communities
        for index, actor in enumerate(self.actors):
            mine = data[placement[index]]
            iri = f"{actor}/blueprints/0"
            graph = _blueprint(f"node{index}", iri, settings, draw)
            learner = LightGCNLearner(
                mine.train_edges,
                mine.held_out,
                num_listeners=int(mine.listeners.numel()),
                num_artists=tensors.num_artists,
                embedding_dim=settings.embedding_dim,
                **learner_settings(graph, URIRef(iri)),
            )
            owned = add_grouped_node(
                self.simulator,
                index=index,
                actor=actor,
                weights=learner.initial_weights(settings.seed),  # one start for all, as a group would
                architecture=LIGHTGCN,
                group_size=settings.group_size,
                seed=settings.seed,
                context=NodeContext(learner=learner, train_seconds=1.0, announce_interval=50.0),
                aggregation_rule=WEIGHTED_MEAN,
                round_timeout=5.0,
            )
            if owned is not None:
                self.owner_of[owned.iri] = actor
                self.groups[owned.iri] = owned
            node = NamedNode(actor)
            blueprints = graph_iri(node, GraphKind.BLUEPRINT)
            self.store.load(graph.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=blueprints)
            self.store.extend(blueprint_of(actor, iri, blueprints))
        for actor in self.actors:
            peers = graph_iri(NamedNode(actor), GraphKind.PEERS)
            for info in self.groups.values():
                self.store.extend(group_description(info.iri, info.hashtag, peers))
        self.seen: dict[str, int] = dict.fromkeys(self.actors, 0)

    # the reasoning loop's view of the simulator --------------------------------------------------

    def learner(self, actor: str) -> LightGCNLearner:
        learner = self.simulator.nodes[actor].ctx.learner
        assert isinstance(learner, LightGCNLearner)
        return learner

    def published(self, owner: str) -> tuple[float, str] | None:
        """What a group's owner publishes: its merged model's Recall@20 and that snapshot's IRI."""
        record = self.simulator.state(owner).last_round
        if record is None or RECALL not in dict(record.metrics):
            return None
        return dict(record.metrics)[RECALL], f"{owner}/snapshots/{record.merged_sha256}"

    def view(self, actor: str, round_number: int) -> RoundView:
        state = self.simulator.state(actor)
        record = state.last_round
        return RoundView(
            actor=actor,
            round_number=round_number,
            group=state.membership.group.iri if state.membership is not None else None,
            merged=dict(record.metrics).get(RECALL) if record is not None else None,
            weights=dict(state.weights),
            snapshot=f"{actor}/snapshots/{record.merged_sha256}" if record is not None else None,
            learner=self.learner(actor),
            owner=actor in self.owner_of.values(),
            at=START + datetime.timedelta(seconds=self.simulator.now),
        )

    def after_round(self, actor: str, round_number: int) -> None:
        self.reasoner.after_round(self.view(actor, round_number), _Simulated(self, actor))

    def snapshot(self) -> dict[str, Any]:
        groups: dict[str, int] = {info.hashtag: 0 for info in self.groups.values()}
        recalls = []
        for actor in self.actors:
            state = self.simulator.state(actor)
            if state.membership is not None:
                groups[state.membership.group.hashtag] += 1
            if state.last_round is not None and RECALL in dict(state.last_round.metrics):
                recalls.append(dict(state.last_round.metrics)[RECALL])
        return {
            "time": round(self.simulator.now, 3),
            "rounds": min(self.seen.values()),
            "mean_recall@20": sum(recalls) / len(recalls) if recalls else 0.0,
            "members": groups,
        }


class _Simulated:
    """The reasoning loop's :class:`~agents.thinking.Surroundings` in the simulator: claims and
    snapshots read from the other nodes' states, acts applied through ``Simulator.act``."""

    def __init__(self, world: _World, actor: str) -> None:
        self.world, self.actor = world, actor

    def claims(self) -> list[Claim]:
        found = []
        for group, owner in self.world.owner_of.items():
            shown = self.world.published(owner)
            if shown is not None:
                found.append(Claim(shown[0], group, owner, shown[1]))
        return found

    def candidate(self, claim: Claim) -> Candidate:
        world = self.world
        weights = {
            **world.simulator.state(self.actor).weights,
            **shared_part(world.simulator.state(claim.owner).weights),
        }
        blueprint = current_blueprint(world.store, claim.owner)

        def describe() -> Graph | None:
            source = to_rdflib(world.store, graph_iri(NamedNode(claim.owner), GraphKind.BLUEPRINT))
            return blueprint_graph(source, blueprint) if blueprint is not None else None

        return Candidate(weights, blueprint, describe)

    def switch(self, group: str) -> None:
        self.world.simulator.act(self.actor, switch_change(self.world.groups[group]))

    def rebuild(self, settings: Mapping[str, Any], blueprint: Graph, iri: URIRef) -> None:
        node = self.world.simulator.nodes[self.actor]
        learner = dataclasses.replace(self.world.learner(self.actor), **settings)
        node.ctx = dataclasses.replace(node.ctx, learner=learner)


def run_evolution(
    tensors: MusicTensors,
    data: list[NodeData],
    settings: EvolutionSettings,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> EvolutionResult:
    """Run the fungiverse until every node has merged ``settings.rounds`` rounds; evolve if asked."""
    started = time.perf_counter()
    world = _World(tensors, data, settings)
    sim = world.simulator
    limit = 4.0 * settings.rounds + 20.0
    timeline: list[dict[str, Any]] = []
    while sim.now < limit and min(world.seen.values()) < settings.rounds:
        sim.run(sim.now + 0.5)
        for actor in world.actors:
            done = sim.state(actor).rounds_done
            if done > world.seen[actor]:
                world.seen[actor] = done
                if settings.evolve:
                    world.after_round(actor, done)
        point = world.snapshot()
        if not timeline or point["rounds"] != timeline[-1]["rounds"]:
            timeline.append(point)
            if progress is not None:
                progress(point)
    final = {}
    for actor in world.actors:
        metrics = world.learner(actor).evaluate(dict(sim.state(actor).weights))
        final[actor] = float(metrics.get(RECALL, 0.0))
    return EvolutionResult(
        settings=settings,
        final_recall=final,
        timeline=timeline,
        counts=world.reasoner.counts,
        seconds=time.perf_counter() - started,
        reasoning_seconds=world.reasoner.reasoning_seconds,
        passes=world.reasoner.passes,
        store=world.store,
        groups={
            actor: (
                state.membership.group.iri if (state := sim.state(actor)).membership is not None else None
            )
            for actor in world.actors
        },
    )
