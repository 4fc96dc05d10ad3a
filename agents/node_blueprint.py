"""A blueprint as the node runtime reads it: name, hashtags, architecture and training settings.

Kept apart from :mod:`agents.node_setup` (which builds learners with torch) so that ``spore serve``
can refuse a broken blueprint in a fraction of a second, before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rdflib import Graph, URIRef
from rdflib.exceptions import ParserError

from ontology import SPORE
from reasoning.defederation import DefederationPolicy, policy_from_blueprint

__all__ = ["Blueprint", "BlueprintError", "read_blueprint"]

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
