"""The facts the decision rules read, as quads: who is in which group, and who measured what.

The rules in ``queries/decide-*.rq`` only see RDF, so everything a node knows when it reasons must be
written in the shape they expect. These builders are that contract, in one place:

* ``node spore:blueprint B`` and ``node spore:memberOf G`` (the node's own state, blueprint graph);
* a group's hashtag, and the blueprint a peer follows (peers graph);
* an :func:`evaluation`: one ``spore:Evaluation`` of a group's model snapshot at a round. The node's
  own measurement on its validation listeners is attributed to the node and measured on a dataset
  attributed to the node; a peer's published figure is the same evaluation with ``spore:claimed
  true``, attributed to the peer, and lives in the peers graph.

All functions are pure: they return quads and never touch a store.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from pyoxigraph import Literal, NamedNode, Quad

from ontology import PREFIXES, SPORE

__all__ = [
    "Measurement",
    "RDF_TYPE",
    "blueprint_of",
    "evaluation",
    "group_description",
    "membership",
    "validation_dataset",
    "xsd_datetime",
]

XSD = PREFIXES["xsd"]
PROV = PREFIXES["prov"]
DCAT = PREFIXES["dcat"]
RDF_TYPE = NamedNode(PREFIXES["rdf"] + "type")


def _n(term: str) -> NamedNode:
    return NamedNode(str(term))


def xsd_datetime(moment: datetime.datetime) -> Literal:
    return Literal(moment.isoformat(), datatype=NamedNode(XSD + "dateTime"))


def _integer(value: int) -> Literal:
    return Literal(str(int(value)), datatype=NamedNode(XSD + "integer"))


def _double(value: float) -> Literal:
    return Literal(repr(float(value)), datatype=NamedNode(XSD + "double"))


def validation_dataset(node: str) -> NamedNode:
    """The node's validation listeners as a dataset IRI: what its own measurements are measured on."""
    return NamedNode(f"{node.rstrip('/')}/datasets/validation")


def blueprint_of(node: str, blueprint: str, graph: NamedNode) -> list[Quad]:
    """``node spore:blueprint blueprint``: the blueprint the node (or a peer) currently follows."""
    return [Quad(_n(node), _n(SPORE.blueprint), _n(blueprint), graph)]


def membership(node: str, group: str, graph: NamedNode) -> list[Quad]:
    """``node spore:memberOf group``: the group the node trains with now."""
    return [Quad(_n(node), _n(SPORE.memberOf), _n(group), graph)]


def group_description(group: str, hashtag: str, graph: NamedNode, *, model: str | None = None) -> list[Quad]:
    """A learning group with its hashtag (and latest model snapshot), as a peer announced it."""
    quads = [
        Quad(_n(group), RDF_TYPE, _n(SPORE.LearningGroup), graph),
        Quad(_n(group), _n(SPORE.hashtag), Literal(hashtag), graph),
    ]
    if model is not None:
        quads.append(Quad(_n(group), _n(SPORE.groupModel), _n(model), graph))
    return quads


@dataclass(frozen=True)
class Measurement:
    """One number about one group's model snapshot at one round, by whom, and whether only claimed."""

    iri: str
    group: str
    snapshot: str
    round: int
    value: float
    by: str
    """The node that measured (or claims to have measured) it."""
    claimed: bool = False
    metric: str = str(SPORE.Recall)
    cutoff: int = 20
    at: datetime.datetime | None = None


def evaluation(measurement: Measurement, graph: NamedNode) -> Iterator[Quad]:
    """The ``spore:Evaluation`` quads of ``measurement`` (passes ``shapes:EvaluationShape``)."""
    m = measurement
    subject = _n(m.iri)
    dataset = validation_dataset(m.by)
    yield Quad(subject, RDF_TYPE, _n(SPORE.Evaluation), graph)
    yield Quad(subject, _n(SPORE.evaluates), _n(m.snapshot), graph)
    yield Quad(subject, _n(SPORE.group), _n(m.group), graph)
    yield Quad(subject, _n(SPORE.metric), _n(m.metric), graph)
    yield Quad(subject, _n(SPORE.cutoff), _integer(m.cutoff), graph)
    yield Quad(subject, _n(SPORE.value), _double(m.value), graph)
    yield Quad(subject, _n(SPORE.roundNumber), _integer(m.round), graph)
    yield Quad(subject, _n(SPORE.measuredOn), dataset, graph)
    yield Quad(subject, _n(PROV + "wasAttributedTo"), _n(m.by), graph)
    yield Quad(dataset, RDF_TYPE, _n(DCAT + "Dataset"), graph)
    yield Quad(
        dataset, _n(SPORE.split), Literal("validation listeners of the node, held out per listener"), graph
    )
    yield Quad(dataset, _n(PROV + "wasAttributedTo"), _n(m.by), graph)
    if m.claimed:
        yield Quad(subject, _n(SPORE.claimed), Literal("true", datatype=NamedNode(XSD + "boolean")), graph)
    if m.at is not None:
        yield Quad(subject, _n(PROV + "generatedAtTime"), xsd_datetime(m.at), graph)
