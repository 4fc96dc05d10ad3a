"""Watching a running fungiverse from outside: each host's ``/status`` and ``/metrics``, summarised.

``spore demo`` prints a progress line from these summaries and ``spore status`` a table; both only
read what hosts publish over HTTP, so they work the same on hosts they did not start. Parsing is
pure and tolerant of missing fields (a host that has not finished its first round has no Recall@20
yet), and fetching is one function at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import queries

__all__ = [
    "HostStatus",
    "Unreachable",
    "parse_status",
    "parse_metrics",
    "fetch_status",
    "fetch_all",
    "Summary",
    "summarise",
    "progress_line",
    "status_rows",
    "format_table",
    "Decision",
    "parse_decisions",
    "fetch_decisions",
    "decision_text",
]

STATUS_HEADERS = (
    "host",
    "nodes",
    "in a group",
    "groups",
    "round",
    "Recall@20",
    "activities",
    "delivery queue",
)


@dataclass(frozen=True)
class HostStatus:
    """What one host reports: its nodes, the groups they are in, its round and its traffic."""

    url: str
    nodes: tuple[str, ...]
    grouped: int  # nodes that are members of a learning group
    groups: frozenset[str]  # learning-group IRIs (or names) the host's nodes are members of
    round: int | None  # the slowest node's round among those in a group; None when none is
    recall_at_20: float | None  # mean over the nodes that have been evaluated
    activities: int  # activities published by the host's actors
    delivery_queue: int


@dataclass(frozen=True)
class Unreachable:
    url: str
    reason: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _recall(record: Mapping[str, Any]) -> float | None:
    """A node's latest Recall@20: ``last_round.metrics["recall@20"]`` in a host's ``/status``."""
    last = record.get("last_round")
    metrics = last.get("metrics") if isinstance(last, Mapping) else None
    return _number(metrics.get("recall@20")) if isinstance(metrics, Mapping) else None


def _group_of(record: Mapping[str, Any]) -> str | None:
    group = record.get("group")
    if isinstance(group, Mapping):
        found = group.get("iri") or group.get("hashtag")
        return found if isinstance(found, str) else None
    return group if isinstance(group, str) else None


def parse_status(url: str, document: Mapping[str, Any], metrics: Mapping[str, float]) -> HostStatus:
    """A :class:`HostStatus` from a host's ``/status`` JSON and its parsed ``/metrics`` samples.

    The shape is the node runtime's (docs/federation.md, "Host status"): ``nodes`` is a list of
    records with ``name``, ``round`` (None until the node is in a group), ``group`` and
    ``last_round.metrics``. The host's round here is its *slowest* node's, so that "round 3" means
    every node that is in a group has finished three rounds.
    """
    nodes = [record for record in document.get("nodes") or () if isinstance(record, Mapping)]
    memberships = [group for record in nodes if (group := _group_of(record)) is not None]
    rounds = [int(value) for record in nodes if (value := _number(record.get("round"))) is not None]
    recalls = [value for record in nodes if (value := _recall(record)) is not None]
    return HostStatus(
        url=url,
        nodes=tuple(str(record.get("name", "?")) for record in nodes),
        grouped=len(memberships),
        groups=frozenset(memberships),
        round=min(rounds, default=None),
        recall_at_20=sum(recalls) / len(recalls) if recalls else None,
        activities=int(metrics.get("spore_activities_published_total", 0)),
        delivery_queue=int(metrics.get("spore_delivery_queue_length", 0)),
    )


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text to {sample name: value summed over its labels} (what the summaries need)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def fetch_status(client: httpx.Client, url: str) -> HostStatus | Unreachable:
    """GET one host's ``/status`` and ``/metrics``; any failure is an :class:`Unreachable` with why."""
    base = url.rstrip("/")
    try:
        status = client.get(f"{base}/status", headers={"accept": "application/json"})
        status.raise_for_status()
        document = status.json()
        metrics = client.get(f"{base}/metrics")
        samples = parse_metrics(metrics.text) if metrics.status_code == 200 else {}
    except httpx.HTTPStatusError as error:
        return Unreachable(base, f"/status answered {error.response.status_code}")
    except httpx.HTTPError as error:
        return Unreachable(base, f"{type(error).__name__}: {error}".rstrip(": "))
    except ValueError as error:
        return Unreachable(base, f"/status is not JSON: {error}")
    if not isinstance(document, Mapping):
        return Unreachable(base, "/status is not a JSON object")
    return parse_status(base, document, samples)


def fetch_all(urls: Sequence[str], *, timeout: float = 5.0) -> list[HostStatus | Unreachable]:
    """Every host's status, fetched in parallel (a slow host delays the answer by one timeout at most)."""
    with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(max(1, min(16, len(urls)))) as pool:
        return list(pool.map(lambda url: fetch_status(client, url), urls))


@dataclass(frozen=True)
class Summary:
    hosts: int
    reachable: int
    nodes: int
    grouped: int
    groups: int
    round: int  # the slowest host's round: every node has completed at least this many
    recall_at_20: float | None
    activities: int
    delivery_queue: int


def summarise(results: Iterable[HostStatus | Unreachable]) -> Summary:
    results = list(results)
    up = [result for result in results if isinstance(result, HostStatus)]
    recalls = [(host.recall_at_20, len(host.nodes) or 1) for host in up if host.recall_at_20 is not None]
    weight = sum(count for _, count in recalls)
    return Summary(
        hosts=len(results),
        reachable=len(up),
        nodes=sum(len(host.nodes) for host in up),
        grouped=sum(host.grouped for host in up),
        groups=len(frozenset().union(*(host.groups for host in up))) if up else 0,
        # A node out of every group (not yet joined, or blocked by its peers) holds no round back.
        round=min((host.round for host in up if host.round is not None), default=0),
        recall_at_20=sum(value * count for value, count in recalls) / weight if weight else None,
        activities=sum(host.activities for host in up),
        delivery_queue=sum(host.delivery_queue for host in up),
    )


def _recall_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def progress_line(summary: Summary, elapsed: float) -> str:
    """One line per round for the demo's terminal."""
    down = summary.hosts - summary.reachable
    return (
        f"round {summary.round:>3}  nodes {summary.nodes} ({summary.grouped} in a group)"
        f"  groups {summary.groups}"
        f"  mean Recall@20 {_recall_text(summary.recall_at_20)}  activities {summary.activities}"
        f"  queued {summary.delivery_queue}"
        + (f"  ({down} host(s) not answering)" if down else "")
        + f"  [{elapsed:.0f} s]"
    )


def status_rows(results: Iterable[HostStatus | Unreachable]) -> list[tuple[str, ...]]:
    rows = []
    for result in results:
        if isinstance(result, Unreachable):
            rows.append((result.url, "-", "-", "-", "-", "-", "-", "unreachable"))
            continue
        rows.append(
            (
                result.url,
                str(len(result.nodes)),
                str(result.grouped),
                str(len(result.groups)),
                "-" if result.round is None else str(result.round),
                _recall_text(result.recall_at_20),
                str(result.activities),
                str(result.delivery_queue),
            )
        )
    return rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


# -- decisions -------------------------------------------------------------------------------------

SPORE_NS = "https://w3id.org/spore/ns#"


@dataclass(frozen=True)
class Decision:
    """One decision of a node's last reasoning round, as its host's SPARQL endpoint publishes it."""

    iri: str
    node: str
    round: int | None
    kind: str  # the decision's SPORE class, without the namespace (e.g. ``SwitchDecision``)
    explanation: str


def parse_decisions(results: Mapping[str, Any]) -> list[Decision]:
    """The rows of a SPARQL JSON answer to ``queries/last-round-decisions.rq`` (malformed rows skipped)."""
    body = results.get("results")
    rows = body.get("bindings", []) if isinstance(body, Mapping) else []
    found: dict[str, Decision] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        cell = {key: value.get("value") for key, value in row.items() if isinstance(value, Mapping)}
        iri, node, kind = cell.get("decision"), cell.get("node"), cell.get("type")
        if not (isinstance(iri, str) and isinstance(node, str) and isinstance(kind, str)):
            continue
        try:
            number: int | None = int(str(cell.get("round")))
        except ValueError:  # an absent or non-integer round
            number = None
        found[iri] = Decision(
            iri,
            node,
            number,
            kind.removeprefix(SPORE_NS),
            str(cell.get("explanation") or ""),
        )
    return sorted(found.values(), key=lambda d: (d.node, d.round or 0, d.iri))


def fetch_decisions(urls: Sequence[str], *, timeout: float = 5.0) -> list[Decision]:
    """The last round's decisions of every node of every host (a host that does not answer adds none)."""
    query = queries.load("last-round-decisions")

    def one(client: httpx.Client, url: str) -> list[Decision]:
        try:
            response = client.get(
                f"{url.rstrip('/')}/sparql",
                params={"query": query},
                headers={"accept": "application/sparql-results+json"},
            )
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            return []
        return parse_decisions(document) if isinstance(document, Mapping) else []

    with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(max(1, min(16, len(urls)))) as pool:
        return [decision for found in pool.map(lambda url: one(client, url), urls) for decision in found]


def decision_text(decision: Decision) -> str:
    """One line for a person: which node decided what, in which round, and why."""
    name = decision.node.rstrip("/").rsplit("/", 1)[-1]
    when = f" in round {decision.round}" if decision.round is not None else ""
    return f"{name} decided{when} ({decision.kind}): {decision.explanation}"
