"""Write a new blueprint from a few choices: what ``spore init`` does.

The result is built as RDF (never by pasting strings into Turtle), validated against the shapes, and
only then serialised, so ``spore init`` cannot write a blueprint that ``spore validate`` rejects.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rdflib import RDF, BNode, Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, XSD

from ontology import PREFIXES, SPORE
from shapes.validation import ValidationReport, default_validator

__all__ = ["ARCHITECTURES", "AGGREGATION_RULES", "BlueprintChoices", "module_sha256", "new_blueprint"]

ARCHITECTURES: dict[str, URIRef] = {
    "lightgcn": SPORE.LightGCN,
    "kg-lightgcn": SPORE.KnowledgeLightGCN,
    "mf": SPORE.MatrixFactorization,
}
AGGREGATION_RULES: dict[str, URIRef] = {
    "weighted-mean": SPORE.WeightedMean,
    "variance-corrected-mean": SPORE.VarianceCorrectedMean,
    "trimmed-mean": SPORE.TrimmedMean,
    "median": SPORE.CoordinateMedian,
    "krum": SPORE.Krum,
}
# The code module a blueprint pins for each architecture: its identifier and the Python module whose
# source is hashed. A node runs a module only when the installed source has the pinned hash.
TRAINING_MODULES: dict[str, tuple[str, str]] = {
    "lightgcn": ("spore.train.lightgcn", "models.lightgcn"),
    "kg-lightgcn": ("spore.train.kglightgcn", "models.lightgcn"),
    "mf": ("spore.train.bprmf", "models.baselines"),
}


def module_sha256(python_module: str) -> str:
    """SHA-256 of an installed module's source file, the hash a blueprint pins."""
    spec = importlib.util.find_spec(python_module)
    if spec is None or spec.origin is None:
        raise LookupError(f"code module {python_module} is not installed")
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()


@dataclass(frozen=True)
class BlueprintChoices:
    name: str
    hashtags: tuple[str, ...]
    architecture: str = "lightgcn"
    aggregation: str = "trimmed-mean"
    embedding_dimension: int = 64
    layers: int = 3
    learning_rate: str = "0.001"
    local_epochs: int = 1
    title: str | None = None


def new_blueprint(choices: BlueprintChoices, *, iri: str = "#blueprint") -> tuple[Graph, ValidationReport]:
    """The blueprint graph for these choices and its validation report (check ``report.conforms``)."""
    graph = Graph(base=None)
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    blueprint = URIRef(iri)
    graph.add((blueprint, RDF.type, SPORE.Blueprint))
    graph.add((blueprint, SPORE.nodeName, Literal(choices.name)))
    graph.add((blueprint, DCTERMS.title, Literal(choices.title or choices.name.replace("_", " ").title())))
    graph.add((blueprint, SPORE.revision, Literal(1)))
    for hashtag in choices.hashtags:
        tag = hashtag if hashtag.startswith("#") else f"#{hashtag}"
        graph.add((blueprint, SPORE.seeksHashtag, Literal(tag)))

    config = BNode()
    graph.add((blueprint, SPORE.trains, config))
    graph.add((config, RDF.type, SPORE.ModelConfiguration))
    graph.add((config, SPORE.architecture, ARCHITECTURES[choices.architecture]))
    graph.add((config, SPORE.embeddingDimension, Literal(choices.embedding_dimension)))
    graph.add((config, SPORE.layers, Literal(choices.layers)))
    graph.add((config, SPORE.learningRate, Literal(choices.learning_rate, datatype=XSD.decimal)))
    graph.add((config, SPORE.localEpochs, Literal(choices.local_epochs)))
    graph.add((config, SPORE.aggregationRule, AGGREGATION_RULES[choices.aggregation]))

    module_id, python_module = TRAINING_MODULES[choices.architecture]
    module = BNode()
    graph.add((blueprint, SPORE.usesModule, module))
    graph.add((module, RDF.type, SPORE.CodeModule))
    graph.add((module, SPORE.moduleId, Literal(module_id)))
    graph.add((module, SPORE.sha256, Literal(module_sha256(python_module))))
    graph.add((module, SPORE.implements, SPORE.TrainingBehaviour))
    graph.add((module, SPORE.implements, SPORE.RecommendationBehaviour))

    policy = BNode()
    graph.add((blueprint, SPORE.policy, policy))
    graph.add((policy, RDF.type, SPORE.Policy))
    for prop, value in (
        (SPORE.switchMargin, Literal("0.05", datatype=XSD.decimal)),
        (SPORE.switchPatience, Literal(3)),
        (SPORE.stagnationRounds, Literal(5)),
        (SPORE.mutationRate, Literal("0.1", datatype=XSD.decimal)),
        (SPORE.maxChildren, Literal(2)),
        (SPORE.outlierThreshold, Literal("3.5", datatype=XSD.decimal)),
        (SPORE.accusationQuorum, Literal(3)),
    ):
        graph.add((policy, prop, value))
    return graph, default_validator().validate(graph)
