"""Model cards in RDF: what a snapshot is, how it was trained, on what, and how well it ranks.

The card describes a :class:`models.snapshot.Snapshot` with the SPORE ontology (reusing DCAT,
PROV-O and ML Schema through it) and must pass ``shapes:ModelSnapshotShape`` and
``shapes:EvaluationShape``. Each measured metric is its own ``spore:Evaluation`` that names the
split it was measured on, so a peer can tell a validation figure from a test figure.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, PROV

from models.metrics import RankingMetrics
from models.snapshot import FORMAT, Snapshot
from models.train import TrainConfig
from ontology import PREFIXES, SPORE

__all__ = ["Measurement", "model_card", "snapshot_iri"]

MLS = Namespace(PREFIXES["mls"])

ARCHITECTURES = {
    "lightgcn": SPORE.LightGCN,
    "knowledge-lightgcn": SPORE.KnowledgeLightGCN,
    "bpr-mf": SPORE.MatrixFactorization,
}
_METRICS = (
    ("recall", SPORE.Recall),
    ("ndcg", SPORE.NDCG),
    ("hit_rate", SPORE.HitRate),
    ("coverage", SPORE.Coverage),
)


@dataclass(frozen=True)
class Measurement:
    """Metrics measured on one held-out part, with the words that say which part."""

    metrics: RankingMetrics
    split: str
    description: str = ""


def snapshot_iri(sha256: str, base: str | None = None) -> URIRef:
    """The snapshot's IRI: ``<base>snapshots/<sha256>`` on a node, else an RFC 6920 ``ni:`` name.

    RFC 6920 ("Naming Things with Hashes") is the standard IRI form of a content digest, so a
    snapshot made outside any node still has a global name that anyone can verify.
    """
    if base is not None:
        return URIRef(f"{base.rstrip('/')}/snapshots/{sha256}")
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256)).decode("ascii").rstrip("=")
    return URIRef(f"ni:///sha-256;{digest}")


def _decimal(value: float) -> Literal:
    return Literal(f"{value:.6f}".rstrip("0").rstrip(".") if value else "0", datatype=XSD.decimal)


def model_card(
    snapshot: Snapshot,
    *,
    config: TrainConfig,
    training_seconds: float,
    epochs: int,
    data_description: str,
    training_split: str,
    measurements: tuple[Measurement, ...] = (),
    iri: URIRef | None = None,
    parent: URIRef | None = None,
    node: URIRef | None = None,
    generated_at: datetime.datetime | None = None,
) -> Graph:
    """The card of ``snapshot`` as a graph (ModelSnapshot, its configuration, data and evaluations)."""
    graph = Graph()
    for prefix in ("spore", "dcat", "dcterms", "prov", "mls", "xsd", "rdfs"):
        graph.bind(prefix, PREFIXES[prefix])
    subject = iri if iri is not None else snapshot_iri(snapshot.sha256)
    when = generated_at or datetime.datetime.now(datetime.UTC)
    architecture = ARCHITECTURES[snapshot.architecture]
    hyper = snapshot.model.hyperparameters()

    graph.add((subject, RDF.type, SPORE.ModelSnapshot))
    graph.add((subject, SPORE.sha256, Literal(snapshot.sha256)))
    graph.add((subject, DCAT.byteSize, Literal(snapshot.byte_size, datatype=XSD.integer)))
    graph.add((subject, SPORE.format, Literal(FORMAT)))
    graph.add((subject, DCAT.mediaType, Literal("application/octet-stream")))
    graph.add((subject, SPORE.architecture, architecture))
    graph.add((subject, SPORE.trainingSeconds, _decimal(training_seconds)))
    graph.add((subject, SPORE.epochs, Literal(epochs, datatype=XSD.integer)))
    graph.add((subject, PROV.generatedAtTime, Literal(when.isoformat(), datatype=XSD.dateTime)))
    graph.add(
        (
            subject,
            RDFS.comment,
            Literal(
                f"{snapshot.architecture} trained for {epochs} epochs with BPR loss "
                f"(seed {config.seed}, Adam, early stopping on validation NDCG@{config.k} "
                f"with patience {config.patience}); other hyperparameters: "
                + ", ".join(f"{k}={v}" for k, v in sorted(hyper.items()) if k not in _IN_CONFIG),
                lang="en",
            ),
        )
    )
    if parent is not None:
        graph.add((subject, PROV.wasDerivedFrom, parent))
    if node is not None:
        graph.add((subject, PROV.wasAttributedTo, node))

    configuration = BNode()
    graph.add((subject, SPORE.configuration, configuration))
    graph.add((configuration, RDF.type, SPORE.ModelConfiguration))
    graph.add((configuration, SPORE.architecture, architecture))
    graph.add(
        (configuration, SPORE.embeddingDimension, Literal(int(hyper["embedding_dim"]), datatype=XSD.integer))
    )
    if "num_layers" in hyper:
        graph.add((configuration, SPORE.layers, Literal(int(hyper["num_layers"]), datatype=XSD.integer)))
    graph.add((configuration, SPORE.learningRate, _decimal(config.learning_rate)))
    graph.add((configuration, SPORE.batchSize, Literal(config.batch_size, datatype=XSD.integer)))
    graph.add((configuration, SPORE.weightDecay, _decimal(config.weight_decay)))
    graph.add((configuration, SPORE.seed, Literal(config.seed, datatype=XSD.integer)))

    data = BNode()
    graph.add((subject, SPORE.trainingData, data))
    graph.add((data, RDF.type, DCAT.Dataset))
    graph.add((data, DCTERMS.description, Literal(data_description)))
    graph.add((data, SPORE.split, Literal(training_split)))

    for number, measurement in enumerate(measurements, start=1):
        measured_on = BNode()
        graph.add((measured_on, RDF.type, DCAT.Dataset))
        graph.add((measured_on, SPORE.split, Literal(measurement.split)))
        if measurement.description:
            graph.add((measured_on, DCTERMS.description, Literal(measurement.description)))
        for name, metric in _METRICS:
            evaluation = URIRef(f"{subject}#evaluation-{number}-{name}-{measurement.metrics.k}")
            graph.add((evaluation, RDF.type, SPORE.Evaluation))
            graph.add((evaluation, SPORE.evaluates, subject))
            graph.add((evaluation, SPORE.metric, metric))
            graph.add((evaluation, SPORE.cutoff, Literal(measurement.metrics.k, datatype=XSD.integer)))
            value = float(getattr(measurement.metrics, name))
            graph.add((evaluation, SPORE.value, Literal(value, datatype=XSD.double)))
            graph.add((evaluation, SPORE.measuredOn, measured_on))
            graph.add((evaluation, PROV.generatedAtTime, Literal(when.isoformat(), datatype=XSD.dateTime)))
            if node is not None:
                graph.add((evaluation, PROV.wasAttributedTo, node))
    return graph


_IN_CONFIG = {"embedding_dim", "num_layers"}
