"""A served node writes its self into its public graphs: blueprint, description, snapshots, group.

The linked-data layer, the crawler, the web page and ``spore explain`` read a node from its graphs,
not from the runtime's memory; before this module a served node wrote only its catalogue and peers,
so a crawl of a running fungiverse found almost nothing. The graph builders here are pure (values
in, an rdflib graph out); :class:`NodePublisher` is the I/O edge that puts them in the store and
bounds what accumulates: every round's evaluations stay (they are the node's history and are
small), but only the latest ``keep_snapshots`` model cards do.

A round's snapshot is the node's *shared* weights (never the listener embeddings) as safetensors,
named by RFC 6920 ``ni:///sha-256;…`` (:func:`models.card.snapshot_iri`) and served by the
artifact route the node's updates already use (the latest snapshot of each node), so
``dcat:downloadURL`` fetches exactly the bytes the name hashes to.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyoxigraph import NamedNode, Quad, RdfFormat
from rdflib import RDF, RDFS, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, PROV
from safetensors.torch import save as save_safetensors
from torch import Tensor

from agents.node import FungusNode
from agents.node_blueprint import Blueprint
from agents.protocol.learning import shared_part
from agents.protocol.messages import GroupInfo
from agents.protocol.state import RoundRecord
from knowledge.graphs import GraphKind, NodeGraphs
from models.card import snapshot_iri
from ontology import SPORE
from shapes.validation import default_validator

__all__ = [
    "NodePublisher",
    "start_publishing",
    "PublishError",
    "blueprint_graph",
    "evaluations_graph",
    "group_graph",
    "node_description",
    "snapshot_artifact",
    "snapshot_graph",
]

log = logging.getLogger(__name__)

VOID = Namespace("http://rdfs.org/ns/void#")
# Metric names the protocol learners report -> (ontology metric, cutoff).
_METRICS = {"recall": SPORE.Recall, "ndcg": SPORE.NDCG, "hit_rate": SPORE.HitRate, "coverage": SPORE.Coverage}
HELD_OUT = "20 % of each listener's plays, held out from training at this node (protocol 80/20 split)"


class PublishError(ValueError):
    """What a node would publish does not conform to the shapes (a bug or a bad blueprint)."""


def _now() -> Literal:
    return Literal(datetime.datetime.now(datetime.UTC).isoformat(), datatype=XSD.dateTime)


def _decimal(value: float) -> Literal:
    return Literal(f"{value:.6f}".rstrip("0").rstrip(".") or "0", datatype=XSD.decimal)


def _check(graph: Graph, what: str) -> Graph:
    report = default_validator().validate(graph)
    if not report.conforms:
        raise PublishError(f"{what} does not conform: " + "; ".join(report.lines()[:5]))
    return graph


def blueprint_graph(blueprint: Blueprint, iri: str) -> Graph:
    """The blueprint's Turtle, its subject renamed to the node's blueprint IRI; validated.

    A blueprint file names itself relatively (``<#blueprint>``); served, it is ``{actor}/blueprint``.
    """
    source = Graph()
    source.parse(blueprint.source, format="turtle", publicID=iri)
    subjects = set(source.subjects(SPORE.nodeName, None))
    target = URIRef(iri)
    graph = Graph()
    for s, p, o in source:
        graph.add((target if s in subjects else s, p, target if o in subjects else o))
    return _check(graph, f"the blueprint of {blueprint.name}")


def node_description(
    actor: str,
    *,
    name: str,
    blueprint: str,
    host: str,
    groups: Iterable[str] = (),
    spawned_by: str | None = None,
) -> Graph:
    """What a node is: its blueprint, host, SPARQL endpoint, graphs, the groups it is in, and the
    node that spawned it (lineage, ``queries/spawn-children.rq``)."""
    node = URIRef(actor)
    graph = Graph()
    graph.add((node, RDF.type, SPORE.FungusNode))
    # Not spore:nodeName: its domain is spore:Blueprint, so RDFS would make the node a blueprint.
    graph.add((node, RDFS.label, Literal(name)))
    graph.add((node, SPORE.blueprint, URIRef(blueprint)))
    graph.add((node, SPORE.hostedBy, URIRef(host)))
    graph.add((node, VOID.sparqlEndpoint, URIRef(f"{actor}/sparql")))
    for group in groups:
        graph.add((node, SPORE.memberOf, URIRef(group)))
    if spawned_by is not None:
        graph.add((node, SPORE.spawnedBy, URIRef(spawned_by)))
    return _check(graph, f"the description of {actor}")


def snapshot_artifact(weights: Mapping[str, Tensor]) -> tuple[str, bytes]:
    """``(sha256, bytes)`` of the shared weights as safetensors: what a round's snapshot is."""
    shared = {name: tensor.detach().contiguous().cpu() for name, tensor in shared_part(weights).items()}
    blob = save_safetensors(dict(sorted(shared.items())))
    return hashlib.sha256(blob).hexdigest(), blob


def snapshot_graph(
    actor: str,
    blueprint: Blueprint,
    *,
    sha256: str,
    byte_size: int,
    round_number: int,
    merged: str | None = None,
) -> Graph:
    """The model card of one round's snapshot (``shapes:ModelSnapshotShape``)."""
    node, subject = URIRef(actor), snapshot_iri(sha256)
    configuration = URIRef(f"{subject}#configuration")
    graph = Graph()
    graph.add((subject, RDF.type, SPORE.ModelSnapshot))
    graph.add((subject, SPORE.sha256, Literal(sha256)))
    graph.add((subject, DCAT.byteSize, Literal(byte_size, datatype=XSD.integer)))
    graph.add((subject, SPORE.format, Literal("safetensors")))
    graph.add((subject, DCAT.mediaType, Literal("application/octet-stream")))
    graph.add((subject, DCAT.downloadURL, URIRef(f"{actor}/artifacts/{sha256}")))
    graph.add((subject, SPORE.architecture, URIRef(blueprint.architecture)))
    graph.add((subject, SPORE.roundNumber, Literal(round_number, datatype=XSD.integer)))
    graph.add((subject, PROV.generatedAtTime, _now()))
    graph.add((subject, PROV.wasAttributedTo, node))
    graph.add(
        (subject, RDFS.comment, Literal(f"shared weights of {actor} after round {round_number}", lang="en"))
    )
    if merged is not None:  # this round's merged group model
        graph.add((subject, PROV.wasDerivedFrom, snapshot_iri(merged)))
    graph.add((subject, SPORE.configuration, configuration))
    graph.add((configuration, RDF.type, SPORE.ModelConfiguration))
    graph.add((configuration, SPORE.architecture, URIRef(blueprint.architecture)))
    graph.add(
        (
            configuration,
            SPORE.embeddingDimension,
            Literal(blueprint.embedding_dimension, datatype=XSD.integer),
        )
    )
    layers = 0 if blueprint.architecture == str(SPORE.MatrixFactorization) else blueprint.layers
    graph.add((configuration, SPORE.layers, Literal(layers, datatype=XSD.integer)))
    graph.add((configuration, SPORE.learningRate, _decimal(blueprint.learning_rate)))
    graph.add((configuration, SPORE.localEpochs, Literal(blueprint.local_epochs, datatype=XSD.integer)))
    graph.add((configuration, SPORE.batchSize, Literal(blueprint.batch_size, datatype=XSD.integer)))
    return graph


def evaluations_graph(
    actor: str, *, sha256: str, round_number: int, metrics: Mapping[str, float], group: str | None
) -> Graph:
    """One ``spore:Evaluation`` per reported metric (``recall@20`` …) of a round's snapshot.

    Evaluations are fragments of the node's IRI, so dereferencing the node lists them with their
    values (the backlinks query includes a ``#fragment`` subject's statements).
    """
    node, snapshot = URIRef(actor), snapshot_iri(sha256)
    held_out = URIRef(f"{actor}#held-out")
    graph = Graph()
    when = _now()
    for key, value in sorted(metrics.items()):
        name, _, cutoff = key.partition("@")
        metric = _METRICS.get(name)
        if metric is None or not cutoff.isdigit():
            continue  # a learner's private diagnostic, not a ranking metric the ontology names
        evaluation = URIRef(f"{actor}#round-{round_number}-{name}-{cutoff}")
        graph.add((evaluation, RDF.type, SPORE.Evaluation))
        graph.add((evaluation, SPORE.metric, metric))
        graph.add((evaluation, SPORE.cutoff, Literal(int(cutoff), datatype=XSD.integer)))
        graph.add((evaluation, SPORE.value, Literal(float(value), datatype=XSD.double)))
        graph.add((evaluation, SPORE.evaluates, snapshot))
        graph.add((evaluation, SPORE.measuredOn, held_out))
        graph.add((evaluation, SPORE.roundNumber, Literal(round_number, datatype=XSD.integer)))
        graph.add((evaluation, PROV.wasAttributedTo, node))
        graph.add((evaluation, PROV.generatedAtTime, when))
        if group is not None:
            graph.add((evaluation, SPORE.group, URIRef(group)))
        # The item-graph blend the learner chose on validation (agents/protocol/recommender.py).
        for setting, term in (("graph_beta", SPORE.itemGraphBeta), ("blend_weight", SPORE.blendWeight)):
            if setting in metrics:
                graph.add((evaluation, term, Literal(float(metrics[setting]), datatype=XSD.double)))
    if len(graph):
        graph.add((held_out, RDF.type, DCAT.Dataset))
        graph.add((held_out, SPORE.split, Literal("test")))
        graph.add((held_out, DCTERMS.description, Literal(HELD_OUT)))
    return graph


def group_graph(group: GroupInfo, members: Iterable[str], merged_sha256: str | None) -> Graph:
    """A learning group as its member sees it: hashtag, owner, members (remote ones too), model."""
    subject = URIRef(group.iri)
    graph = Graph()
    graph.add((subject, RDF.type, SPORE.LearningGroup))
    graph.add((subject, SPORE.hashtag, Literal(group.hashtag)))
    graph.add((subject, PROV.wasAttributedTo, URIRef(group.owner)))
    for member in sorted(set(members) | {group.owner}):
        graph.add((subject, SPORE.members, URIRef(member)))
    if merged_sha256:
        graph.add((subject, SPORE.groupModel, snapshot_iri(merged_sha256)))
    return graph


def _write(graphs: NodeGraphs, kind: GraphKind, graph: Graph, *, replace: bool = False) -> None:
    target = graphs.graph(kind)
    if replace:
        graphs.store.clear(target)
    graphs.store.load(graph.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=target)


def _drop(subject: NamedNode, graph: NamedNode) -> str:
    """An update deleting ``subject``'s statements and its ``#fragment`` resources' from ``graph``.

    The IRIs are written in (as N-Triples terms, which escape them): update bindings are not
    substituted by every store.
    """
    prefix = subject.value + "#"
    return (
        f"DELETE {{ GRAPH {graph} {{ ?s ?p ?o }} }} WHERE {{ GRAPH {graph} {{ ?s ?p ?o "
        f'FILTER(?s = {subject} || STRSTARTS(STR(?s), "{prefix}")) }} }}'
    )


@dataclass
class NodePublisher:
    """Writes one node's self into its graphs; the host calls it at start and after each round."""

    graphs: NodeGraphs
    blueprint: Blueprint
    host: str
    keep_snapshots: int = 3
    spawned_by: str | None = None  # the parent of a node spawned on a running host
    _cards: deque[str] = field(default_factory=deque)
    _group: str | None = None

    @property
    def actor(self) -> str:
        return self.graphs.node.value

    def start(self, groups: Iterable[str] = ()) -> None:
        """The blueprint graph: the blueprint and the node's description (replacing older ones).

        A node that revised its blueprint before a restart (mutation or adoption) keeps its graph:
        the revisions and their lineage are its history, and the revision is what it follows
        (``agents.node_thinking.resume_revision``), not the file it was started from.
        """
        iri = f"{self.actor}/blueprint"
        if self._follows_revision(iri):
            if not self._cards:
                self._cards.extend(self._stored_cards())
            return
        graph = blueprint_graph(self.blueprint, iri)
        if self.spawned_by is None:  # a child on a restarted host: its lineage is in the graph it wrote
            self.spawned_by = self._stored_parent()
        graph += node_description(
            self.actor,
            name=self.blueprint.name,
            blueprint=iri,
            host=self.host,
            groups=groups,
            spawned_by=self.spawned_by,
        )
        _write(self.graphs, GraphKind.BLUEPRINT, graph, replace=True)
        if not self._cards:  # a host restarted on its store: the cards it wrote before count too
            self._cards.extend(self._stored_cards())

    def _follows_revision(self, original: str) -> bool:
        blueprints = self.graphs.graph(GraphKind.BLUEPRINT)
        rows = self.graphs.store.query(
            f"SELECT ?b WHERE {{ GRAPH {blueprints} {{ <{self.actor}> <{SPORE.blueprint}> ?b }} }}"
        )
        return any(row["b"].value != original for row in rows)  # type: ignore[index,union-attr]

    def _stored_parent(self) -> str | None:
        blueprints = self.graphs.graph(GraphKind.BLUEPRINT)
        rows = self.graphs.store.query(
            f"SELECT ?parent WHERE {{ GRAPH {blueprints} {{ <{self.actor}> <{SPORE.spawnedBy}> ?parent }} }}"
        )
        return next((row["parent"].value for row in rows), None)  # type: ignore[index,union-attr]

    def _stored_cards(self) -> list[str]:
        models = self.graphs.graph(GraphKind.MODELS)
        rows = self.graphs.store.query(
            f"SELECT ?card WHERE {{ GRAPH {models} {{ ?card a <{SPORE.ModelSnapshot}> ; "
            f"<{SPORE.roundNumber}> ?round }} }} ORDER BY ?round"
        )
        return [row["card"].value for row in rows]  # type: ignore[index,union-attr]

    def round(
        self,
        record: RoundRecord,
        weights: Mapping[str, Tensor],
        group: GroupInfo | None,
        members: Iterable[str],
    ) -> tuple[str, bytes]:
        """Write the round's card, evaluations and group; the snapshot's ``(sha256, bytes)`` to serve."""
        digest, blob = snapshot_artifact(weights)
        # The protocol counts rounds from 0; spore:roundNumber is the ordinal (1 = the first round),
        # which is also the round /status reports once this one has finished.
        number = record.round + 1
        group_iri = group.iri if group is not None else None
        card = snapshot_graph(
            self.actor,
            self.blueprint,
            sha256=digest,
            byte_size=len(blob),
            round_number=number,
            merged=record.merged_sha256 or None,
        )
        card += evaluations_graph(
            self.actor,
            sha256=digest,
            round_number=number,
            metrics=dict(record.metrics),
            group=group_iri,
        )
        # Not validated here (35 ms a round, per node, on the host's one step worker): the builders
        # are pure and tests/test_node_publish.py validates what they write.
        _write(self.graphs, GraphKind.MODELS, card)
        snapshot = str(snapshot_iri(digest))
        if snapshot not in self._cards:
            self._cards.append(snapshot)
        while len(self._cards) > self.keep_snapshots:
            dropped = self._cards.popleft()
            self.graphs.store.update(_drop(NamedNode(dropped), self.graphs.graph(GraphKind.MODELS)))
        if group is not None:
            self._write_group(group, members, record.merged_sha256)
        return digest, blob

    def _write_group(self, group: GroupInfo, members: Iterable[str], merged: str | None) -> None:
        peers = self.graphs.graph(GraphKind.PEERS)
        self.graphs.store.update(_drop(NamedNode(group.iri), peers))
        _write(self.graphs, GraphKind.PEERS, group_graph(group, members, merged))
        if self._group != group.iri:  # the description names the group the node is in
            self._group = group.iri
            # Only that statement changes: rewriting the blueprint graph would drop the blueprint
            # revisions the node's reasoner wrote there (agents/thinking.py).
            blueprints = self.graphs.graph(GraphKind.BLUEPRINT)
            self.graphs.store.update(
                f"DELETE WHERE {{ GRAPH {blueprints} {{ {self.graphs.node} <{SPORE.memberOf}> ?group }} }}"
            )
            self.graphs.store.extend(
                [Quad(self.graphs.node, NamedNode(SPORE.memberOf), NamedNode(group.iri), blueprints)]
            )


def start_publishing(node: FungusNode, host: str) -> NodePublisher | None:
    """The publisher of a served node, its blueprint and description written; None when the node has
    no graphs or blueprint, or its blueprint does not conform (it is still served; the log says why)."""
    if node.graphs is None or node.blueprint is None:
        return None
    publisher = NodePublisher(node.graphs, node.blueprint, host=host)
    try:
        publisher.start()
    except PublishError:
        log.exception("node %s: its blueprint is not published", node.name)
        return None
    return publisher
