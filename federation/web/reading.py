"""What the browse pages show, read from a node's public graphs and the host's federation state.

Models and decisions come from the node's public graphs through named queries (``queries/node-*.rq``),
never from the private graph; who belongs to which group comes from the federation state, which is
where Join/Accept leave it. Turning query rows into page data is pure (``*_from_rows``), so the
tests can check it without a store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyoxigraph import Literal, NamedNode, QuerySolutions
from rdflib import RDF, Graph, URIRef
from rdflib import Literal as RdfLiteral

import queries
from federation.actors import LocalActor
from federation.runtime import HostRuntime
from federation.state import Relation
from knowledge.graphs import NodeGraphs
from knowledge.store import KnowledgeStore, StoreError
from ontology import SPORE

__all__ = [
    "DecisionRow",
    "MetricSeries",
    "RoundHistory",
    "SnapshotRow",
    "actor_graph",
    "decisions",
    "decisions_from_rows",
    "is_group_iri",
    "memberships",
    "metric_series",
    "snapshots",
    "snapshots_from_rows",
]

SPORE_NS = str(SPORE)
Row = Mapping[str, Any]


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot and the metrics measured on it (``{"Recall@20": 0.21, ...}``)."""

    iri: str
    round: int | None
    time: str | None
    architecture: str | None
    group: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class MetricSeries:
    """One metric over a node's snapshots: x is the round (or the snapshot's position without one)."""

    name: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class DecisionRow:
    iri: str
    kind: str  # "SwitchGroupDecision", ...
    explanation: str | None
    time: str | None
    round: int | None
    target: str | None


def local_name(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


XSD = "http://www.w3.org/2001/XMLSchema#"
_NUMBERS = {XSD + name for name in ("decimal", "double", "float")}
_INTEGERS = {XSD + name for name in ("integer", "int", "long", "nonNegativeInteger", "positiveInteger")}


def _value(term: Any) -> Any:
    """A Python value for a result term: IRIs as strings, numbers and booleans typed, text as text."""
    if term is None:
        return None
    if isinstance(term, Literal):
        datatype = term.datatype.value
        try:
            if datatype in _INTEGERS:
                return int(term.value)
            if datatype in _NUMBERS:
                return float(term.value)
        except ValueError:
            return term.value
        if datatype == XSD + "boolean":
            return term.value in ("true", "1")
        return term.value
    return getattr(term, "value", term)


def select_rows(result: object) -> list[dict[str, Any]]:
    if not isinstance(result, QuerySolutions):
        raise TypeError("expected SELECT results")
    names = [variable.value for variable in result.variables]
    return [{name: _value(solution[name]) for name in names} for solution in result]


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def snapshots_from_rows(rows: Iterable[Row]) -> list[SnapshotRow]:
    """Group metric rows by snapshot, in the query's order (round, then time)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = found.setdefault(
            row["snapshot"],
            {
                "iri": row["snapshot"],
                "round": _int(row.get("round")),
                "time": row.get("time"),
                "architecture": local_name(row["architecture"]) if row.get("architecture") else None,
                "group": row.get("group"),
                "metrics": {},
            },
        )
        name = local_name(row["metric"])
        cutoff = _int(row.get("cutoff"))
        label = f"{name}@{cutoff}" if cutoff is not None else name
        entry["metrics"].setdefault(label, float(row["value"]))
    return [SnapshotRow(**entry) for entry in found.values()]


def metric_series(rows: list[SnapshotRow], *, limit: int = 4) -> list[MetricSeries]:
    """The chart's lines: up to ``limit`` metrics, each over rounds (snapshot order where none)."""
    names: list[str] = []
    for row in rows:
        for name in row.metrics:
            if name not in names:
                names.append(name)
    series = []
    for name in names[:limit]:
        points = tuple(
            (float(row.round if row.round is not None else position), row.metrics[name])
            for position, row in enumerate(rows, start=1)
            if name in row.metrics
        )
        series.append(MetricSeries(name, points))
    return series


def decisions_from_rows(rows: Iterable[Row]) -> list[DecisionRow]:
    """One entry per decision with its most specific type (``Decision`` only when it has no other)."""
    found: dict[str, DecisionRow] = {}
    for row in rows:
        kind = local_name(row["type"])
        known = found.get(row["decision"])
        if known is not None and (kind == "Decision" or known.kind != "Decision"):
            continue
        found[row["decision"]] = DecisionRow(
            iri=row["decision"],
            kind=kind,
            explanation=row.get("explanation"),
            time=row.get("time"),
            round=_int(row.get("round")),
            target=row.get("target"),
        )
    return list(found.values())


def _public_rows(store: KnowledgeStore, node_iri: str, query: str) -> list[dict[str, Any]]:
    """Rows of a named query over the node's public graphs; a store that fails gives no rows."""
    try:
        return select_rows(NodeGraphs(NamedNode(node_iri), store).query_public(queries.load(query)))
    except StoreError:
        return []


_METRIC_NAMES = {"recall": "Recall", "ndcg": "NDCG", "hit_rate": "HitRate", "hitrate": "HitRate"}
_METRIC_NAMES |= {"coverage": "Coverage", "precision": "Precision", "loss": "loss"}


def metric_label(key: str) -> str:
    """``recall@20`` (the runtime's key) as ``Recall@20`` (the ontology's name, as the graphs give it)."""
    name, _, cutoff = key.partition("@")
    shown = _METRIC_NAMES.get(name.lower(), name)
    return f"{shown}@{cutoff}" if cutoff else shown


class RoundHistory:
    """Per node, the metrics its runtime reported after each round, kept in memory (newest ``limit``).

    The chart reads the node's models graph first; a node whose runtime does not record evaluations
    there still shows its rounds from these reports (the round lines of ``spore serve``).
    """

    def __init__(self, limit: int = 500) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._rows: dict[str, dict[int, SnapshotRow]] = {}

    def record(self, node: str, line: Mapping[str, Any]) -> None:
        round_number = _int(line.get("round"))
        if round_number is None:
            return
        metrics = {
            metric_label(key): float(value)
            for key, value in (line.get("metrics") or {}).items()
            if isinstance(value, int | float) and key != "loss"
        }
        row = SnapshotRow("", round_number, None, None, line.get("group"), metrics)
        with self._lock:
            rows = self._rows.setdefault(node, {})
            rows[round_number] = row
            for old in sorted(rows)[: max(0, len(rows) - self._limit)]:
                del rows[old]

    def rows(self, node: str) -> list[SnapshotRow]:
        with self._lock:
            rows = self._rows.get(node, {})
            return [rows[number] for number in sorted(rows)]


def snapshots(store: KnowledgeStore, node_iri: str) -> list[SnapshotRow]:
    return snapshots_from_rows(_public_rows(store, node_iri, "node-model-metrics"))


def decisions(store: KnowledgeStore, node_iri: str, *, limit: int = 50) -> list[DecisionRow]:
    return decisions_from_rows(_public_rows(store, node_iri, "node-decisions"))[:limit]


def is_group_iri(iri: str) -> bool:
    """Whether an actor IRI names a learning group (SPORE hosts serve groups under ``/groups/``)."""
    return "/groups/" in iri


@dataclass(frozen=True)
class Memberships:
    """A local actor's relations as the federation state records them."""

    groups: tuple[str, ...]  # groups a node has joined (accepted)
    following: tuple[str, ...]  # nodes it follows
    followers: tuple[str, ...]  # nodes following it, or a group's members


def memberships(runtime: HostRuntime, actor: LocalActor) -> Memberships:
    state = runtime.state
    if actor.group is not None:
        return Memberships((), (), tuple(state.related(actor.id, Relation.MEMBER)))
    following = state.related(actor.id, Relation.FOLLOWING)
    return Memberships(
        groups=tuple(iri for iri in following if is_group_iri(iri)),
        following=tuple(iri for iri in following if not is_group_iri(iri)),
        followers=tuple(state.related(actor.id, Relation.FOLLOWER)),
    )


def actor_graph(runtime: HostRuntime, actor: LocalActor) -> Graph:
    """A local node or group as RDF: what the federation state knows, for the Turtle/JSON-LD links."""
    graph = Graph()
    graph.bind("spore", SPORE_NS)
    subject = URIRef(actor.id)
    related = memberships(runtime, actor)
    if actor.group is not None:
        graph.add((subject, RDF.type, SPORE.LearningGroup))
        graph.add((subject, SPORE.hashtag, RdfLiteral(actor.group.hashtag)))
        for member in related.followers:
            graph.add((URIRef(member), SPORE.memberOf, subject))
    else:
        graph.add((subject, RDF.type, SPORE.FungusNode))
        graph.add((subject, SPORE.nodeName, RdfLiteral(actor.name)))
        for group in related.groups:
            graph.add((subject, SPORE.memberOf, URIRef(group)))
        if actor.node is not None and actor.node.blueprint:
            graph.add((subject, SPORE.blueprint, URIRef(actor.node.blueprint)))
    return graph
