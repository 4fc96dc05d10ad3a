"""Blueprint to node: read a blueprint, give the node its listeners, build its learner and state.

A host that serves several blueprints, alongside peer hosts serving others, must agree with them on
two things without a coordinator: which node founds the group of each hashtag, and which listeners
each node holds. Both are decided from the same list every host can see, the nodes of this host and
of its peers' ``/status`` (:func:`assign_roles`): among the nodes whose first sought hashtag is ``#h``,
the one that ranks highest for ``#h`` (``agents.protocol.groups.founder_of``, rendezvous hashing, so
founders spread over hosts) founds ``#h``'s group, and listeners are dealt round-robin in
listener order to the nodes sorted by actor IRI (``knowledge.music.rdf.select_listeners``), so
every listener lands on exactly one node when every host sees every peer.

The node's listeners go into its private graph and the catalogue into its catalogue graph (the
music importer), and its training tensors are read back from those graphs: the graph is the node's
data, the tensors are derived.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from pyoxigraph import NamedNode, RdfFormat

from agents.node import FungusNode, founded_group, node_state
from agents.node_blueprint import Blueprint, BlueprintError, read_blueprint
from agents.protocol.context import NodeContext
from agents.protocol.defence import LedgerDefence
from agents.protocol.groups import founder_of
from agents.protocol.learning import shared_part
from agents.protocol.messages import GroupInfo, shapes_of
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.statistics import DEFAULT_NOISE as STATISTICS_NOISE
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.music.corpus import MusicCorpus
from knowledge.music.rdf import catalogue_nquads, private_nquads, select_listeners
from knowledge.store import EmbeddedStore
from knowledge.store.base import KnowledgeStore
from models.data import MusicTensors
from models.graph import load_music_tensors
from models.knowledge import SideInformation
from models.split import PROTOCOL_70_10_20, split_per_listener
from ontology import SPORE

__all__ = [
    "Blueprint",
    "BlueprintError",
    "NodeRoles",
    "RoundTiming",
    "assign_roles",
    "CatalogueQuads",
    "build_node",
    "read_blueprint",
    "stable_seed",
]


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
    candidates: dict[str, list[str]] = {}
    for actor in actors:
        if known[actor]:
            candidates.setdefault(known[actor][0], []).append(actor)
    founded = {founder_of(tag, among): tag for tag, among in candidates.items()}
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

    @property
    def found_after(self) -> float:
        """How long a node stays in no group before founding its own: two round timeouts plus a
        join timeout, time enough to hear a re-announcement and to be answered by a slow owner."""
        return 2 * self.round_timeout + 10.0


class CatalogueQuads:
    """The catalogue's N-Quads, written once per host and relabelled for each node's graph.

    Every node of a host holds the same catalogue in its own catalogue graph; writing its 200,000
    lines (Last.fm-2k) in Python costs several times what loading them does, so it is done once.
    """

    def __init__(self, corpus: MusicCorpus) -> None:
        self.corpus = corpus
        self._quads: bytes | None = None
        self._graph = ""

    def for_graph(self, graph: str) -> bytes:
        if self._quads is None:
            self._graph = graph
            self._quads = b"".join(chunk for _, chunk in catalogue_nquads(self.corpus, graph))
        # The graph is the last term of every line, and no catalogue IRI is a node's graph IRI.
        return self._quads.replace(f" <{self._graph}> .\n".encode(), f" <{graph}> .\n".encode())


def _load(store: KnowledgeStore, quads: bytes) -> None:
    if isinstance(store, EmbeddedStore):
        # lenient: the music writer validated every IRI (as knowledge.music.importer does)
        store.native.bulk_load(io.BytesIO(quads), RdfFormat.N_QUADS, lenient=True)
    else:
        store.load(quads, format=RdfFormat.N_QUADS)


def node_tensors(
    store: KnowledgeStore,
    catalogue: CatalogueQuads,
    actor: str,
    shard: tuple[int, int],
    *,
    tag_weights: bool = False,
) -> MusicTensors:
    """Put the catalogue and the node's shard of listeners in its graphs (once), read its tensors back."""
    graphs = NodeGraphs(NamedNode(actor), store)
    private, public = graphs.graph(GraphKind.PRIVATE), graphs.graph(GraphKind.CATALOGUE)
    if store.count(private) == 0:
        listeners = select_listeners(catalogue.corpus.listener_keys(), shard=shard)
        _load(
            store, b"".join(chunk for _, chunk in private_nquads(catalogue.corpus, private.value, listeners))
        )
    if store.count(public) == 0:
        _load(store, catalogue.for_graph(public.value))
    return load_music_tensors(store, actor, tag_weights=tag_weights)


def build_node(
    blueprint: Blueprint,
    actor: str,
    *,
    store: KnowledgeStore,
    catalogue: CatalogueQuads,
    roles: NodeRoles,
    timing: RoundTiming,
) -> FungusNode:
    """The :class:`FungusNode` for ``blueprint`` at ``actor``: data, learner, context, first state.

    Matrix factorisation is LightGCN without propagation layers (BPR-MF); the knowledge-aware
    model adds the catalogue's tags and entities (``models.knowledge``), read without the taggings
    of the node's held-out pairs.
    """
    knowledge = blueprint.architecture == str(SPORE.KnowledgeLightGCN)
    tensors = node_tensors(store, catalogue, actor, roles.shard, tag_weights=knowledge)
    seed = stable_seed(blueprint.name)
    # 10 % of each listener's listens are held out for validation: the node chooses its item-graph
    # blend on them (agents.protocol.recommender), never on the test part it reports.
    split = split_per_listener(tensors, PROTOCOL_70_10_20, seed)
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
        validation=split.valid,
        side=SideInformation.of(split.train) if knowledge else None,
    )
    weights = learner.initial_weights(seed)
    shapes = shapes_of(shared_part(weights))

    def founding(hashtag: str) -> GroupInfo:
        return founded_group(
            actor,
            hashtag,
            shapes,
            aggregation_rule=blueprint.aggregation_rule,
            round_timeout=timing.round_timeout,
            statistics_noise=STATISTICS_NOISE,  # members share co-listening statistics (itemgraph)
        )

    founds = [founding(roles.founds)] if roles.founds is not None else []
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
        training_step=blueprint.learning_rate * blueprint.local_epochs,
        founding=founding,  # in no group for found_after seconds: found one (agents/protocol/groups.py)
        found_after=timing.found_after,
    )
    torch.set_num_threads(1)
    graphs = NodeGraphs(NamedNode(actor), store)
    return FungusNode(blueprint.name, ctx, state, graphs=graphs, blueprint=blueprint)
