"""Small reasoning worlds built in the test: one node, its blueprint and policy, two groups, evidence.

Every number a rule sees is written by the test through :mod:`reasoning.evidence`, so each test
states exactly which claims and measurements exist and can check a decision by hand.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from pyoxigraph import NamedNode, Quad, RdfFormat
from rdflib import XSD, Literal, URIRef

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore
from ontology import SPORE
from reasoning.evidence import Measurement, blueprint_of, evaluation, group_description, membership

NODE = "https://here.test/nodes/ann"
PEER = "https://there.test/nodes/bob"
GROUP_A = "https://here.test/groups/a"
GROUP_B = "https://there.test/groups/b"
NOW = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)


def _blueprint(name: str, iri: str, policy: dict[URIRef, Literal], learning_rate: str = "0.001") -> bytes:
    graph, report = new_blueprint(
        BlueprintChoices(name=name, hashtags=("#a",), learning_rate=learning_rate), iri=iri
    )
    assert report.conforms, report.lines()
    holder = graph.value(URIRef(iri), SPORE.policy)
    for prop, value in policy.items():
        graph.set((holder, prop, value))
    return graph.serialize(format="nt").encode()


@dataclass
class World:
    store: EmbeddedStore
    node: str = NODE
    blueprint: str = f"{NODE}/blueprints/1"
    counter: int = 0
    written: list[str] = field(default_factory=list)

    def graph(self, kind: GraphKind) -> NamedNode:
        return graph_iri(NamedNode(self.node), kind)

    def measure(
        self,
        group: str,
        round_number: int,
        value: float,
        *,
        claimed: bool = False,
        by: str | None = None,
        snapshot: str | None = None,
    ) -> str:
        """Record an evaluation of ``group``'s model at a round: the node's own, or a peer's claim."""
        by = by or self.node
        self.counter += 1
        iri = f"{by}/evaluations/{self.counter}"
        kind = GraphKind.PEERS if claimed or by != self.node else GraphKind.MODELS
        snap = snapshot or f"{group}/snapshots/{round_number}"
        measurement = Measurement(iri, group, snap, round_number, value, by, claimed=claimed, at=NOW)
        self.store.extend(evaluation(measurement, self.graph(kind)))
        self.written.append(iri)
        return iri

    def move_to(self, group: str) -> None:
        """What the runtime writes when the Join is accepted: the node's new membership."""
        self.store.update(
            "DELETE { GRAPH ?g { ?n <https://w3id.org/spore/ns#memberOf> ?old } } "
            "INSERT { GRAPH ?g { ?n <https://w3id.org/spore/ns#memberOf> ?new } } "
            "WHERE { GRAPH ?g { ?n <https://w3id.org/spore/ns#memberOf> ?old } }",
            bindings={
                "g": self.graph(GraphKind.BLUEPRINT),
                "n": NamedNode(self.node),
                "new": NamedNode(group),
            },
        )

    def peer_snapshot(self, peer: str = PEER) -> str:
        """A snapshot Ann fetched from ``peer``, attributed to it in Ann's peers graph."""
        snapshot = f"{peer}/snapshots/abc"
        prov = NamedNode("http://www.w3.org/ns/prov#wasAttributedTo")
        self.store.extend([Quad(NamedNode(snapshot), prov, NamedNode(peer), self.graph(GraphKind.PEERS))])
        return snapshot

    def add_peer_blueprint(self, learning_rate: str = "0.01") -> str:
        """Bob's blueprint in Ann's peers graph, as Ann fetched it; Bob's snapshots are his."""
        iri = f"{PEER}/blueprints/4"
        peers = self.graph(GraphKind.PEERS)
        self.store.load(_blueprint("bob", iri, {}, learning_rate), format=RdfFormat.N_TRIPLES, graph=peers)
        self.store.extend(blueprint_of(PEER, iri, peers))
        return iri


def world(
    *,
    margin: str = "0.05",
    patience: int = 3,
    stagnation: int = 5,
    rate: str = "0.1",
    node: str = NODE,
    store: EmbeddedStore | None = None,
) -> World:
    """Ann in group #a with a blueprint whose policy has these thresholds; group #b is known."""
    store = store if store is not None else EmbeddedStore()
    made = World(store, node=node, blueprint=f"{node}/blueprints/1")
    policy = {
        SPORE.switchMargin: Literal(margin, datatype=XSD.decimal),
        SPORE.switchPatience: Literal(patience, datatype=XSD.integer),
        SPORE.stagnationRounds: Literal(stagnation, datatype=XSD.integer),
        SPORE.mutationRate: Literal(rate, datatype=XSD.decimal),
    }
    blueprints = made.graph(GraphKind.BLUEPRINT)
    store.load(_blueprint("ann", made.blueprint, policy), format=RdfFormat.N_TRIPLES, graph=blueprints)
    store.extend(blueprint_of(node, made.blueprint, blueprints) + membership(node, GROUP_A, blueprints))
    peers = made.graph(GraphKind.PEERS)
    store.extend(group_description(GROUP_A, "#a", peers) + group_description(GROUP_B, "#b", peers))
    return made
