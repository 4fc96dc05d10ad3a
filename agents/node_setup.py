"""Blueprint to node: read a blueprint, give the node its listeners, build its learner and state.

A host that serves several blueprints, alongside peer hosts serving others, must agree with them on
two things without a coordinator: which node founds the group of each hashtag, and which listeners
each node holds. Both are decided from the same list every host can see, the nodes of this host and
of its peers' ``/status`` (:func:`assign_roles`): the node with the smallest actor IRI among those
whose first sought hashtag is ``#h`` founds ``#h``'s group, and listeners are dealt round-robin in
listener order to the nodes sorted by actor IRI (``knowledge.music.rdf.select_listeners``), so
every listener lands on exactly one node when every host sees every peer.

The node's listeners go into its private graph and the catalogue into its catalogue graph (the
music importer), and its training tensors are read back from those graphs: the graph is the node's
data, the tensors are derived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from pyoxigraph import NamedNode
from rdflib import Graph, URIRef
from rdflib.exceptions import ParserError

from agents.node import FungusNode, founded_group, node_state
from agents.protocol.context import NodeContext
from agents.protocol.defence import LedgerDefence
from agents.protocol.learning import shared_part
from agents.protocol.messages import shapes_of
from agents.protocol.recommender import LightGCNLearner
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.music.corpus import MusicCorpus
from knowledge.music.importer import import_corpus
from knowledge.music.rdf import TargetGraphs, select_listeners
from knowledge.store.base import KnowledgeStore
from models.data import MusicTensors
from models.graph import load_music_tensors
from models.split import PROTOCOL_80_20, split_per_listener
from ontology import SPORE
from reasoning.defederation import DefederationPolicy, policy_from_blueprint

__all__ = [
    "Blueprint",
    "BlueprintError",
    "NodeRoles",
    "RoundTiming",
    "assign_roles",
    "build_node",
    "load_corpus",
    "read_blueprint",
    "stable_seed",
]

_ARCHITECTURES = {str(SPORE.LightGCN), str(SPORE.KnowledgeLightGCN), str(SPORE.MatrixFactorization)}


class BlueprintError(ValueError):
    """A blueprint this host cannot run; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Blueprint:
    """What the node runtime reads from a blueprint (the rest is for the reasoner and the web)."""

    source: Path
    iri: str
    name: str
    hashtags: tuple[str, ...]
    architecture: str
    embedding_dimension: int = 64
    layers: int = 3
    learning_rate: float = 0.001
    local_epochs: int = 1
    batch_size: int = 2048
    weight_decay: float = 1e-4
    aggregation_rule: str = str(SPORE.WeightedMean)
    defederation: DefederationPolicy = DefederationPolicy()  # the policy's thresholds (issue 6)


def read_blueprint(path: Path) -> Blueprint:
    """Parse one blueprint file (Turtle); every defect is one :class:`BlueprintError` line."""
    graph = Graph()
    try:
        graph.parse(path, format="turtle", publicID=path.resolve().as_uri())
    except (OSError, ParserError, SyntaxError, ValueError) as error:
        reason = " ".join(str(error).split())  # rdflib's messages span several lines
        raise BlueprintError(f"{path}: not readable Turtle: {reason}") from error
    blueprints = sorted(graph.subjects(predicate=SPORE.nodeName))
    if len(blueprints) != 1:
        raise BlueprintError(f"{path}: expected one blueprint with spore:nodeName, found {len(blueprints)}")
    blueprint = blueprints[0]
    config = graph.value(blueprint, SPORE.trains)
    architecture = graph.value(config, SPORE.architecture) if config is not None else None
    if architecture is None or str(architecture) not in _ARCHITECTURES:
        raise BlueprintError(
            f"{path}: spore:trains names no architecture this runtime trains ({architecture})"
        )
    hashtags = tuple(sorted(str(tag) for tag in graph.objects(blueprint, SPORE.seeksHashtag)))
    if not hashtags:
        raise BlueprintError(f"{path}: the blueprint seeks no hashtag (spore:seeksHashtag)")

    def number(prop: URIRef, default: float) -> float:
        value = graph.value(config, prop)
        try:
            return default if value is None else float(value.toPython())
        except (TypeError, ValueError) as error:
            raise BlueprintError(f"{path}: {prop} is not a number: {value}") from error

    rule = graph.value(config, SPORE.aggregationRule)
    return Blueprint(
        source=path,
        iri=str(blueprint),
        name=str(graph.value(blueprint, SPORE.nodeName)),
        hashtags=hashtags,
        architecture=str(architecture),
        embedding_dimension=int(number(SPORE.embeddingDimension, 64)),
        layers=int(number(SPORE.layers, 3)),
        learning_rate=number(SPORE.learningRate, 0.001),
        local_epochs=int(number(SPORE.localEpochs, 1)),
        batch_size=int(number(SPORE.batchSize, 2048)),
        weight_decay=number(SPORE.weightDecay, 1e-4),
        aggregation_rule=str(rule) if rule is not None else str(SPORE.WeightedMean),
        defederation=policy_from_blueprint(graph, blueprint),
    )


def stable_seed(name: str) -> int:
    """A node's seed from its name: the same across restarts and hosts, different between nodes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class NodeRoles:
    """What the fungiverse-wide view decides for one node: the group it founds and its listeners."""

    founds: str | None
    shard: tuple[int, int]


def assign_roles(known: Mapping[str, tuple[str, ...]]) -> dict[str, NodeRoles]:
    """Roles of every node in ``known`` (actor -> sought hashtags, in preference order); pure.

    Only a node's first hashtag can be founded by it: a node trains with one group at a time, and
    an owner trains with the group it owns, so founding a second group would leave it without one.
    """
    actors = sorted(known)
    founders: dict[str, str] = {}
    for actor in actors:
        seeks = known[actor]
        if seeks and seeks[0] not in founders:
            founders[seeks[0]] = actor
    founded = {actor: tag for tag, actor in founders.items()}
    return {
        actor: NodeRoles(founds=founded.get(actor), shard=(index, len(actors)))
        for index, actor in enumerate(actors)
    }


@dataclass(frozen=True)
class RoundTiming:
    """Protocol timing from ``--round-seconds``: local training, round timeout, re-announcement."""

    round_seconds: float = 10.0
    max_rounds: int | None = None

    @property
    def round_timeout(self) -> float:
        return max(10.0, 3 * self.round_seconds)

    @property
    def announce_interval(self) -> float:
        return max(2.0, self.round_seconds)


def load_corpus(music: Path | None, *, synth_seed: int = 0) -> MusicCorpus:
    """Last.fm-2k from ``music`` when given, else the seeded synthetic corpus."""
    if music is not None:
        from knowledge.music.lastfm import read_lastfm

        # The data directory (holding lastfm-2k/) or the Last.fm directory itself.
        nested = music / "lastfm-2k"
        return read_lastfm(nested if (nested / "user_artists.dat").is_file() else music)
    from knowledge.music.synth import SynthParams, synthesize

    return synthesize(SynthParams(seed=synth_seed))


def node_tensors(
    store: KnowledgeStore, corpus: MusicCorpus, actor: str, shard: tuple[int, int]
) -> MusicTensors:
    """Import the node's catalogue and its shard of listeners (once), then read its tensors back."""
    graphs = NodeGraphs(NamedNode(actor), store)
    if store.count(graphs.graph(GraphKind.PRIVATE)) == 0:
        listeners = select_listeners(corpus.listener_keys(), shard=shard)
        import_corpus(store, corpus, TargetGraphs.for_node(actor), listeners=listeners)
    return load_music_tensors(store, actor)


def build_node(
    blueprint: Blueprint,
    actor: str,
    *,
    store: KnowledgeStore,
    corpus: MusicCorpus,
    roles: NodeRoles,
    timing: RoundTiming,
) -> FungusNode:
    """The :class:`FungusNode` for ``blueprint`` at ``actor``: data, learner, context, first state.

    Matrix factorisation is LightGCN without propagation layers (BPR-MF); the knowledge-aware
    variant trains as plain LightGCN here, since the protocol has no learner for it yet.
    """
    tensors = node_tensors(store, corpus, actor, roles.shard)
    seed = stable_seed(blueprint.name)
    split = split_per_listener(tensors, PROTOCOL_80_20, seed)
    layers = 0 if blueprint.architecture == str(SPORE.MatrixFactorization) else blueprint.layers
    learner = LightGCNLearner(
        split.train.interactions,
        split.test,
        num_listeners=tensors.num_listeners,
        num_artists=tensors.num_artists,
        embedding_dim=blueprint.embedding_dimension,
        num_layers=layers,
        learning_rate=blueprint.learning_rate,
        weight_decay=blueprint.weight_decay,
        local_epochs=blueprint.local_epochs,
        batch_size=blueprint.batch_size,
    )
    weights = learner.initial_weights(seed)
    founds = []
    if roles.founds is not None:
        founds.append(
            founded_group(
                actor,
                roles.founds,
                shapes_of(shared_part(weights)),
                aggregation_rule=blueprint.aggregation_rule,
                round_timeout=timing.round_timeout,
            )
        )
    state = node_state(
        actor,
        seed=seed,
        weights=weights,
        architecture=blueprint.architecture,
        seeks=blueprint.hashtags,
        founds=founds,
        blueprint_iri=f"{actor}/blueprint",
    )
    ctx = NodeContext(
        learner=learner,
        train_seconds=timing.round_seconds,
        max_rounds=timing.max_rounds,
        announce_interval=timing.announce_interval,
        defence=LedgerDefence(blueprint.defederation),
    )
    torch.set_num_threads(1)
    return FungusNode(blueprint.name, ctx, state, graphs=NodeGraphs(NamedNode(actor), store))
