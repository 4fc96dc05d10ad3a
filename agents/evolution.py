"""The evolving fungiverse: simulated LightGCN nodes that reason after every round and act on it.

Nodes start in learning groups drawn at random (the same draw for every run with a seed), each with
its own blueprint: learning rate and local epochs drawn from a range, as people would write them.
Listeners are dealt non-IID by default (each node holds one taste community), so a node's group
mixes tastes. After every merged round a node writes what it knows into its graphs
(:mod:`reasoning.evidence`) and runs one reasoning pass (:func:`reasoning.decisions.reason`):

* its own measurement: the group's model after one local epoch on its own listeners, Recall@20 on
  its validation listeners;
* the claims of the other groups: each group's owner publishes the Recall@20 of its merged model;
* its cross-checks: for the groups whose claim beats its own merged model's Recall@20 (at most
  ``candidates``), it takes the group's snapshot (the owner's shared weights), trains one local
  epoch from it with its own listeners and measures it the same way. So own and candidate models
  are compared alike;
* the owners' blueprints, so that selection can adopt the blueprint behind a better model.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyoxigraph import NamedNode, Quad, RdfFormat
from rdflib import XSD, Graph, Literal, URIRef

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from agents.protocol.context import NodeContext
from agents.protocol.core import leave
from agents.protocol.learning import shared_part
from agents.protocol.messages import GroupInfo, Message
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.state import NodeState
from agents.recsys_scenario import LIGHTGCN, NodeData
from agents.scenarios import WEIGHTED_MEAN, actor_iri, add_grouped_node
from agents.simulator import Simulator
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore, to_rdflib
from models.data import MusicTensors
from ontology import SPORE
from reasoning.decisions import reason
from reasoning.evidence import Measurement, blueprint_of, evaluation, group_description, membership
from reasoning.mutation import blueprint_graph, current_blueprint, load_operators

__all__ = ["EvolutionResult", "EvolutionSettings", "run_evolution"]

PROV_ATTRIBUTED = NamedNode("http://www.w3.org/ns/prov#wasAttributedTo")
START = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)
RECALL = "recall@20"
_UNLINK = "DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o } }"


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
    operators: tuple[str, ...] = (
        "LearningRateMutation",
        "LocalEpochsMutation",
        "LayersMutation",
        "SwitchMarginMutation",
        "StagnationRoundsMutation",
    )
    """Operators by local name; the embedding dimension is left out because a node whose shared
    parameters change shape can no longer merge with any group of the run."""


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
    graph.set((policy, SPORE.switchMargin, Literal(settings.switch_margin, datatype=XSD.decimal)))
    graph.set((policy, SPORE.switchPatience, Literal(settings.switch_patience, datatype=XSD.integer)))
    graph.set((policy, SPORE.stagnationRounds, Literal(settings.stagnation_rounds, datatype=XSD.integer)))
    graph.set((policy, SPORE.mutationRate, Literal(settings.mutation_rate, datatype=XSD.decimal)))
    return graph


def learner_settings(graph: Graph, blueprint: URIRef) -> dict[str, Any]:
    """The learner's hyperparameters a blueprint sets (what a new revision changes in the node)."""
    config = graph.value(blueprint, SPORE.trains)
    found: dict[str, Any] = {}
    for prop, name, kind in (
        (SPORE.learningRate, "learning_rate", float),
        (SPORE.localEpochs, "local_epochs", int),
        (SPORE.layers, "num_layers", int),
    ):
        value = graph.value(config, prop)
        if value is not None:
            found[name] = kind(value.toPython())  # type: ignore[union-attr]
    return found


class _World:
    """The simulator, the shared store (one host's), and the bookkeeping of one run."""

    def __init__(self, tensors: MusicTensors, data: list[NodeData], settings: EvolutionSettings) -> None:
        self.settings = settings
        self.store = EmbeddedStore()
        self.simulator = Simulator(seed=settings.seed)
        self.actors = [actor_iri(i) for i in range(len(data))]
        self.owner_of: dict[str, str] = {}  # group IRI -> owner
        self.groups: dict[str, GroupInfo] = {}
        self.counts = dict.fromkeys(
            ("switches", "mutations", "reverts", "adoptions", "discarded", "cross_checks"), 0
        )
        self.reasoning_seconds = 0.0
        self.passes = 0
        all_operators = {op.iri.rsplit("#", 1)[-1]: op for op in load_operators()}
        self.operators = [all_operators[name] for name in settings.operators]
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
        self.member_of: dict[str, str | None] = dict.fromkeys(self.actors)
        self.seen: dict[str, int] = dict.fromkeys(self.actors, 0)

    # evidence ---------------------------------------------------------------------------------------

    def learner(self, actor: str) -> LightGCNLearner:
        learner = self.simulator.nodes[actor].ctx.learner
        assert isinstance(learner, LightGCNLearner)
        return learner

    def measure(self, actor: str, weights: dict[str, Any], round_number: int) -> float:
        """One local epoch from ``weights`` on the node's own listeners, then its validation Recall@20."""
        learner = self.learner(actor)
        trained = learner.train(weights, seed=round_number)
        return float(learner.evaluate(trained.weights).get(RECALL, 0.0))

    def published(self, owner: str) -> tuple[float, str] | None:
        """What a group's owner publishes: its merged model's Recall@20 and that snapshot's IRI."""
        record = self.simulator.state(owner).last_round
        if record is None or RECALL not in dict(record.metrics):
            return None
        return dict(record.metrics)[RECALL], f"{owner}/snapshots/{record.merged_sha256}"

    def set_membership(self, actor: str, group: str | None) -> None:
        if self.member_of[actor] == group:
            return
        graph = graph_iri(NamedNode(actor), GraphKind.BLUEPRINT)
        self.store.update(
            _UNLINK, bindings={"g": graph, "s": NamedNode(actor), "p": NamedNode(SPORE.memberOf)}
        )
        if group is not None:
            self.store.extend(membership(actor, group, graph))
        self.member_of[actor] = group

    def copy_blueprint(self, actor: str, owner: str) -> None:
        """The owner's current blueprint into the node's peers graph, as the node would fetch it."""
        peers = graph_iri(NamedNode(actor), GraphKind.PEERS)
        blueprint = current_blueprint(self.store, owner)
        if blueprint is None:
            return
        known = self.store.query(
            "ASK { ?b ?p ?o }", bindings={"b": NamedNode(str(blueprint))}, default_graph=peers
        )
        if not known:
            source = to_rdflib(self.store, graph_iri(NamedNode(owner), GraphKind.BLUEPRINT))
            copy = blueprint_graph(source, blueprint)
            self.store.load(copy.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=peers)
        self.store.update(
            _UNLINK, bindings={"g": peers, "s": NamedNode(owner), "p": NamedNode(SPORE.blueprint)}
        )
        self.store.extend(blueprint_of(owner, str(blueprint), peers))

    def record_round(self, actor: str, round_number: int) -> None:
        """The node's own measurement, the other groups' claims and its cross-checks of the best."""
        state = self.simulator.state(actor)
        group = state.membership.group.iri if state.membership is not None else None
        self.set_membership(actor, group)
        if group is None or state.last_round is None:
            return
        models = graph_iri(NamedNode(actor), GraphKind.MODELS)
        peers = graph_iri(NamedNode(actor), GraphKind.PEERS)
        at = START + datetime.timedelta(seconds=self.simulator.now)
        own = self.measure(actor, dict(state.weights), round_number)
        snapshot = f"{actor}/snapshots/{state.last_round.merged_sha256}"
        quads = list(
            evaluation(
                Measurement(
                    f"{actor}/evaluations/{round_number}", group, snapshot, round_number, own, actor, at=at
                ),
                models,
            )
        )
        claims = []
        for other, owner in self.owner_of.items():
            shown = self.published(owner)
            if other == group or shown is None:
                continue
            value, owner_snapshot = shown
            claim_iri = f"{owner}/claims/{round_number}-for-{actor.split('//')[1].split('.')[0]}"
            quads += evaluation(
                Measurement(
                    claim_iri, other, owner_snapshot, round_number, value, owner, claimed=True, at=at
                ),
                peers,
            )
            claims.append((value, other, owner, owner_snapshot))
        self.store.extend(quads)
        # A claim is the Recall@20 of a merged model, so it is compared with the node's own merged
        # model's figure; the cross-check then measures both models alike (one local epoch first).
        merged = dict(state.last_round.metrics).get(RECALL, own)
        tempting = sorted((c for c in claims if c[0] > merged), reverse=True)[: self.settings.candidates]
        for _, other, owner, owner_snapshot in tempting:
            weights = {**state.weights, **shared_part(self.simulator.state(owner).weights)}
            value = self.measure(actor, weights, round_number)
            self.counts["cross_checks"] += 1
            check = Measurement(
                f"{actor}/evaluations/{round_number}-{other.rsplit('/', 1)[-1]}",
                other,
                owner_snapshot,
                round_number,
                value,
                actor,
                at=at,
            )
            self.store.extend(evaluation(check, models))
            self.store.extend([Quad(NamedNode(owner_snapshot), PROV_ATTRIBUTED, NamedNode(owner), peers)])
            self.copy_blueprint(actor, owner)

    # reasoning and acting ----------------------------------------------------------------------------

    def think(self, actor: str, round_number: int) -> None:
        owner = actor in self.owner_of.values()
        started = time.perf_counter()
        result = reason(
            self.store,
            actor,
            round_number=round_number,
            now=START + datetime.timedelta(seconds=self.simulator.now),
            rng=random.Random(f"{self.settings.seed}:{actor}:{round_number}"),
            entailment=self.settings.entailment,
            switching=not owner,
            operators=self.operators,
        )
        self.reasoning_seconds += time.perf_counter() - started
        self.passes += 1
        if result.switch.join is not None:
            self.counts["switches"] += 1
            self.simulator.act(actor, self._switch_to(self.groups[result.switch.join]))
        outcome = result.mutation
        if outcome.discarded is not None:
            self.counts["discarded"] += 1
        if outcome.blueprint is not None and outcome.mutant is not None:
            kind = "mutations"
            if outcome.adopted is not None:
                kind = "reverts" if outcome.adopted.startswith(f"{actor}/") else "adoptions"
            self.counts[kind] += 1
            node = self.simulator.nodes[actor]
            learner = dataclasses.replace(
                self.learner(actor), **learner_settings(outcome.mutant.graph, outcome.blueprint)
            )
            node.ctx = dataclasses.replace(node.ctx, learner=learner)

    @staticmethod
    def _switch_to(target: GroupInfo) -> Callable[[NodeState, float], tuple[NodeState, list[Message]]]:
        def change(state: NodeState, now: float) -> tuple[NodeState, list[Message]]:
            state, outbox = leave(state, now)
            state = dataclasses.replace(
                state,
                seeks=(target.hashtag,),
                known_groups={**state.known_groups, target.hashtag: target},
                rejected=state.rejected - {target.iri},
            )
            return state, outbox

        return change

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
    timeline = []
    while sim.now < limit and min(world.seen.values()) < settings.rounds:
        sim.run(sim.now + 0.5)
        for actor in world.actors:
            done = sim.state(actor).rounds_done
            if done > world.seen[actor]:
                world.seen[actor] = done
                if settings.evolve:
                    world.record_round(actor, done)
                    world.think(actor, done)
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
        counts=world.counts,
        seconds=time.perf_counter() - started,
        reasoning_seconds=world.reasoning_seconds,
        passes=world.passes,
        store=world.store,
        groups={
            actor: (
                state.membership.group.iri if (state := sim.state(actor)).membership is not None else None
            )
            for actor in world.actors
        },
    )
