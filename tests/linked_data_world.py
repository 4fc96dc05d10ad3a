"""A small fungiverse for the linked-data tests: three real hosts whose nodes' graphs hold RDF written
by SPORE's own writers (blueprints, model cards with lineage, recommendations, decisions, catalogue).

Host A serves nodes ada and bob and the group jazz, host B node cy and the group rock, host C node dee.
ada, bob and cy join jazz and dee joins rock over signed ActivityPub, so a group's members are only
known to the group's host: a crawler must cross hosts to find them.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import Literal, NamedNode, Quad, RdfFormat
from rdflib import Graph, URIRef

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from federation.config import GroupSpec, HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music.corpus import IriScheme
from knowledge.store import EmbeddedStore
from ontology import SPORE

WHEN = datetime.datetime(2026, 11, 22, 6, 0, tzinfo=datetime.UTC)
RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
SCHEMA_NAME = NamedNode("https://schema.org/name")
INTEGER = NamedNode("http://www.w3.org/2001/XMLSchema#integer")
ARTISTS = IriScheme.synthetic(7)


@dataclass
class World:
    hosts: list[RunningHost]
    nodes: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)
    blueprints: set[str] = field(default_factory=set)
    decisions: set[str] = field(default_factory=set)
    recommendations: set[str] = field(default_factory=set)
    artists: set[str] = field(default_factory=set)

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()


def _rdflib_quads(graph: Graph, target: NamedNode) -> list[Quad]:
    from pyoxigraph import parse

    text = graph.serialize(format="nt")
    return [Quad(t.subject, t.predicate, t.object, target) for t in parse(text, format=RdfFormat.N_TRIPLES)]


def _snapshot_card(node: str, group: str, seed: int, parent: URIRef | None) -> tuple[Graph, URIRef]:
    """A model card written by models/card.py for a small untrained LightGCN (no training needed)."""
    import torch

    from models.card import Measurement, model_card, snapshot_iri
    from models.lightgcn import LightGCN
    from models.metrics import RankingMetrics
    from models.snapshot import Snapshot
    from models.train import TrainConfig

    torch.manual_seed(seed)
    sha = hashlib.sha256(f"{node}-{seed}".encode()).hexdigest()
    snapshot = Snapshot(
        sha, 1024, LightGCN(3, 4, embedding_dim=4, num_layers=1), {"architecture": "lightgcn"}
    )
    iri = snapshot_iri(sha, base=node)
    metrics = RankingMetrics(
        k=20, recall=0.1 * seed, ndcg=0.05 * seed, hit_rate=0.5, coverage=0.3, listeners=9
    )
    card = model_card(
        snapshot,
        config=TrainConfig(),
        training_seconds=1.5,
        epochs=2,
        data_description="synthetic listeners",
        training_split="80/20, training part",
        measurements=(Measurement(metrics, "80/20, validation part"),),
        iri=iri,
        parent=parent,
        node=URIRef(node),
        generated_at=WHEN,
    )
    card.add((URIRef(group), URIRef(SPORE.groupModel), iri))
    return card, iri


def _fill_node(world: World, store: EmbeddedStore, node: str, group: str, peer_group: str) -> None:
    from models.recommend import RankedArtist, recommendation_graph
    from reasoning.records import Decision, Option, decision_iri, decision_quads

    name = node.rsplit("/", 1)[-1]
    graphs = {kind: graph_iri(NamedNode(node), kind) for kind in GraphKind}
    blueprint = f"{node}/blueprint/1"
    bp_graph, report = new_blueprint(BlueprintChoices(name=name, hashtags=("#jazz",)), iri=blueprint)
    assert report.conforms, report
    quads = _rdflib_quads(bp_graph, graphs[GraphKind.BLUEPRINT])
    quads += [
        Quad(NamedNode(node), RDF_TYPE, NamedNode(SPORE.FungusNode), graphs[GraphKind.BLUEPRINT]),
        Quad(NamedNode(node), NamedNode(SPORE.blueprint), NamedNode(blueprint), graphs[GraphKind.BLUEPRINT]),
        Quad(NamedNode(node), NamedNode(SPORE.memberOf), NamedNode(group), graphs[GraphKind.BLUEPRINT]),
    ]
    first, first_iri = _snapshot_card(node, group, 1, None)
    second, second_iri = _snapshot_card(node, group, 2, first_iri)
    quads += _rdflib_quads(first, graphs[GraphKind.MODELS]) + _rdflib_quads(second, graphs[GraphKind.MODELS])
    artist = ARTISTS.artist(f"a-{name}")
    catalogue, private = graphs[GraphKind.CATALOGUE], graphs[GraphKind.PRIVATE]
    listener, listening = NamedNode(ARTISTS.listener(name)), NamedNode(ARTISTS.listening(name, f"a-{name}"))
    quads += [
        Quad(NamedNode(artist), SCHEMA_NAME, Literal(f"The {name.title()}s"), catalogue),
        Quad(NamedNode(artist), RDF_TYPE, NamedNode("https://schema.org/MusicGroup"), catalogue),
        # Private: a listener's play count, which no representation may show.
        Quad(listening, RDF_TYPE, NamedNode(SPORE.Listening), private),
        Quad(listening, NamedNode(SPORE.listener), listener, private),
        Quad(listening, NamedNode(SPORE.artist), NamedNode(artist), private),
        Quad(listening, NamedNode(SPORE.playCount), Literal("4242", datatype=INTEGER), private),
        Quad(NamedNode(node), NamedNode(SPORE.playCount), Literal("4242", datatype=INTEGER), private),
    ]
    recommendation, rec_iri = recommendation_graph(
        [RankedArtist(1, 0, artist, f"The {name.title()}s", 0.9)],
        made_with=second_iri,
        seed_artists=(artist,),
        iri=URIRef(f"{node}/recommendations/1"),
        generated_at=WHEN,
    )
    quads += _rdflib_quads(recommendation, graphs[GraphKind.MODELS])
    stay, move = Option(group, 0.2, "#home"), Option(peer_group, 0.1, "#other")
    decision = Decision(
        iri=decision_iri(node, 1, "switch"),
        kind=SPORE.SwitchGroupDecision,
        node=node,
        round=1,
        at=WHEN,
        options=(stay, move),
        chosen=stay,
        evidence=(str(second_iri),),
        explanation="Stayed: the home group's snapshot scored higher on my validation listeners.",
    )
    quads += decision_quads(decision, graphs[GraphKind.DECISIONS])
    store.extend(quads)
    world.nodes.add(node)
    world.blueprints.add(blueprint)
    world.snapshots |= {str(first_iri), str(second_iri)}
    world.recommendations.add(str(rec_iri))
    world.decisions.add(decision.iri)
    world.artists.add(artist)


def start_world(root: Path) -> World:
    """Start the three hosts, write every node's graphs, and let the nodes join their groups."""
    layout = {
        "a": ((("ada", "jazz"), ("bob", "jazz")), (GroupSpec("jazz", "#jazz"),)),
        "b": ((("cy", "jazz"),), (GroupSpec("rock", "#rock"),)),
        "c": ((("dee", "rock"),), ()),
    }
    hosts: dict[str, RunningHost] = {}
    stores: dict[str, EmbeddedStore] = {}
    group_host = {"jazz": "a", "rock": "b"}
    world = World(hosts=[])
    for key, (nodes, groups) in layout.items():
        # The port must be known before the host is built: a node's actor links its blueprint's IRI.
        sock = bind_loopback()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        specs = tuple(NodeSpec(n, blueprint=f"{base}/nodes/{n}/blueprint/1") for n, _ in nodes)
        config = HostConfig(base, root / key, nodes=specs, groups=groups, allow_loopback=True)
        stores[key] = EmbeddedStore()
        hosts[key] = RunningHost(build_host(config, store=stores[key]), sock).start()
        world.hosts.append(hosts[key])
    bases = {key: host.runtime.config.base_url for key, host in hosts.items()}
    for key, (nodes, _) in layout.items():
        for name, group in nodes:
            node = f"{bases[key]}/nodes/{name}"
            group_iri = f"{bases[group_host[group]]}/groups/{group}"
            other = "rock" if group == "jazz" else "jazz"
            _fill_node(world, stores[key], node, group_iri, f"{bases[group_host[other]]}/groups/{other}")
            hosts[key].call(hosts[key].runtime.join(name, group_iri))
    world.groups = {f"{bases[h]}/groups/{g}" for g, h in group_host.items()}
    for _ in range(2):
        for host in world.hosts:
            host.settle()
    return world
