"""A small fungiverse for the web page tests: two loopback hosts, a node with a trained model.

Host A serves nodes alice and bob; host B serves node carol and the learning group #jazz, which alice
and carol join (signed Join/Accept between the hosts). Alice's store holds a synthetic catalogue and
listeners, model cards for three rounds (with metrics), two decisions and a stored recommendation
(``{alice}/recommendations/asked-1``, as an answer to a Fediverse ask is kept); her current model is a
LightGCN trained for a few epochs on her graph, published to the page as the node runtime does.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from pyoxigraph import NamedNode, RdfFormat
from rdflib import Literal, URIRef
from rdflib.namespace import XSD

from federation.config import GroupSpec, NodeSpec
from federation.host import RunningHost, start_local_host
from federation.web import NodeModel, web_state
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music.importer import import_corpus
from knowledge.music.rdf import TargetGraphs
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.card import Measurement, model_card, snapshot_iri
from models.graph import load_music_tensors
from models.lightgcn import LightGCN
from models.metrics import RankingMetrics
from models.pipeline import build_graph
from models.recommend import RecommendationEngine, recommendation_graph
from models.snapshot import Snapshot, snapshot_bytes
from models.train import TrainConfig, train_bpr
from ontology import SPORE

RECALLS = (0.11, 0.16, 0.19)
DECISION_TURTLE = """
@prefix spore: <https://w3id.org/spore/ns#> .
@prefix prov: <http://www.w3.org/ns/prov#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<{node}/decisions/2-switch> a spore:SwitchGroupDecision, spore:Decision ;
    spore:decidedBy <{node}> ; spore:roundNumber 2 ;
    prov:generatedAtTime "2026-01-01T10:02:00Z"^^xsd:dateTime ;
    prov:wasDerivedFrom <{snapshot}> ;
    spore:explanation "stayed in #jazz: its model ranks 0.16 recall against 0.09 alone" ;
    spore:weighed <{node}/decisions/2-switch#option-1>, <{node}/decisions/2-switch#option-2> ;
    spore:chosen <{node}/decisions/2-switch#option-1> .
<{node}/decisions/2-switch#option-1> a spore:Option ; spore:target <{group}> ; spore:score 0.16 .
<{node}/decisions/2-switch#option-2> a spore:Option ; spore:target <{node}> ; spore:score 0.09 .
<{node}/decisions/3-mutation> a spore:MutationDecision ;
    spore:decidedBy <{node}> ; spore:roundNumber 3 ;
    prov:wasDerivedFrom <{snapshot}> ;
    spore:explanation "kept the blueprint: recall still rising" .
"""


@dataclass
class WebWorld:
    a: RunningHost
    b: RunningHost
    model: NodeModel
    artist_names: tuple[str, ...]
    weights: dict[str, torch.Tensor]

    def url(self, host: RunningHost, path: str) -> str:
        return host.runtime.config.base_url + path

    @property
    def alice(self) -> str:
        return self.a.runtime.actors.nodes["alice"].id

    @property
    def carol(self) -> str:
        return self.b.runtime.actors.nodes["carol"].id

    @property
    def jazz(self) -> str:
        return self.b.runtime.actors.groups["jazz"].id

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


def _train(store: EmbeddedStore, node: str, epochs: int = 8) -> tuple[RecommendationEngine, Snapshot]:
    """A LightGCN trained for a few epochs on the node's graph (the snapshot is not written to disk)."""
    tensors = load_music_tensors(store, node, tag_weights=True)
    torch.manual_seed(0)
    model = LightGCN(tensors.num_listeners, tensors.num_artists, embedding_dim=16)
    graph = build_graph("lightgcn", tensors)
    config = TrainConfig(epochs=epochs, batch_size=1024, eval_every=epochs, seed=0)
    train_bpr(model, graph, tensors.interactions, config, progress=False)
    data = snapshot_bytes(model, tensors)
    snapshot = Snapshot(hashlib.sha256(data).hexdigest(), len(data), model, {"architecture": "lightgcn"})
    return RecommendationEngine(model, graph, tensors), snapshot


def _publish_cards(store: EmbeddedStore, node: str, snapshot: Snapshot, group: str) -> list[str]:
    """Model cards of three rounds (the last one the trained snapshot), as a node would record them."""
    models_graph = graph_iri(NamedNode(node), GraphKind.MODELS).value
    iris = []
    for number, recall in enumerate(RECALLS, start=1):
        iri = URIRef(
            f"{snapshot_iri(snapshot.sha256, node)}" if number == 3 else f"{node}/snapshots/r{number}"
        )
        metrics = RankingMetrics(
            k=20, recall=recall, ndcg=recall * 0.8, hit_rate=recall * 2, coverage=0.3, listeners=40
        )
        card = model_card(
            snapshot,
            config=TrainConfig(epochs=8),
            training_seconds=1.0,
            epochs=8,
            data_description="synthetic",
            training_split="80% of each listener's artists",
            measurements=(Measurement(metrics, "validation"),),
            iri=iri,
            node=URIRef(node),
            generated_at=datetime.datetime(2026, 1, 1, 10, number, tzinfo=datetime.UTC),
        )
        card.add((iri, SPORE.roundNumber, Literal(number, datatype=XSD.integer)))
        card.add((URIRef(group), SPORE.groupModel, iri))
        store.load(card.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=NamedNode(models_graph))
        iris.append(str(iri))
    return iris


def start_web_world(root: Path) -> WebWorld:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    a = start_local_host(
        root / "a",
        nodes=(
            NodeSpec("alice", display_name="Alice", summary="A node learning what jazz listeners like."),
            NodeSpec("bob"),
        ),
        store=store,
    )
    b = start_local_host(root / "b", nodes=(NodeSpec("carol"),), groups=(GroupSpec("jazz", "#jazz"),))
    try:
        alice = a.runtime.actors.nodes["alice"].id
        jazz = b.runtime.actors.groups["jazz"].id
        corpus = synthesize(SynthParams(listeners=40, artists=150, seed=3))
        import_corpus(store, corpus, TargetGraphs.for_node(alice))
        engine, snapshot = _train(store, alice)
        cards = _publish_cards(store, alice, snapshot, jazz)
        decisions_graph = graph_iri(NamedNode(alice), GraphKind.DECISIONS)
        store.load(
            DECISION_TURTLE.format(node=alice, group=jazz, snapshot=cards[-1]),
            format=RdfFormat.TURTLE,
            graph=decisions_graph,
        )
        ranked = engine.for_artists([0, 1], 5)
        stored, _ = recommendation_graph(
            ranked,
            made_with=URIRef(cards[-1]),
            seed_artists=(engine.tensors.artists[0], engine.tensors.artists[1]),
            iri=URIRef(f"{alice}/recommendations/asked-1"),
        )
        models_graph = graph_iri(NamedNode(alice), GraphKind.MODELS)
        store.load(stored.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=models_graph)
        a.call(a.runtime.join("alice", jazz))
        b.call(b.runtime.join("carol", jazz))
        for _ in range(3):
            a.settle()
            b.settle()
        model = NodeModel(engine, cards[-1], group=jazz, round=3)
        web_state(a.app).models.publish("alice", model)
    except BaseException:
        a.stop()
        b.stop()
        raise
    weights = {name: value.detach().clone() for name, value in snapshot.model.state_dict().items()}
    return WebWorld(a, b, model, tuple(engine.tensors.artist_names), weights)
