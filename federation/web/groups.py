"""Learning groups as the pages show them, from both places a host knows them.

A group is either an ActivityPub ``Group`` actor this host serves (members joined with Join/Accept,
kept in the federation state), or a protocol group a fungus node founded (``{node}/groups/{tag}``,
members kept in the node's protocol state and reported by the node runtime's ``/status``, whose
shape docs/federation.md "Host status" fixes). Reading the status is pure
(:func:`groups_from_status`, :func:`node_entries`); the runtime's status is asked in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rdflib import RDF, Graph, Literal, URIRef

from ontology import SPORE

__all__ = ["GroupView", "group_graph", "groups_from_status", "node_entries"]

Status = Mapping[str, Any]


@dataclass(frozen=True)
class GroupView:
    iri: str
    hashtag: str
    owner: str | None
    members: tuple[str, ...]
    round: int | None = None
    rule: str | None = None
    schedule: str | None = None
    summary: str = ""


def node_entries(status: Status | None) -> dict[str, Mapping[str, Any]]:
    """The status's node entries by actor IRI."""
    if not status:
        return {}
    return {entry["actor"]: entry for entry in status.get("nodes", []) if isinstance(entry, Mapping)}


def groups_from_status(status: Status | None) -> dict[str, GroupView]:
    """Every group the node runtime reports: each node's current group, and the groups nodes own
    (an owner's entry wins: it holds the membership the owner decides)."""
    found: dict[str, GroupView] = {}
    for entry in node_entries(status).values():
        current = entry.get("group")
        if isinstance(current, Mapping) and current.get("iri") and current["iri"] not in found:
            found[current["iri"]] = GroupView(
                iri=current["iri"],
                hashtag=current.get("hashtag") or "",
                owner=current.get("owner"),
                members=tuple(current.get("members") or ()),
                round=entry.get("round"),
                rule=current.get("rule"),
                schedule=current.get("schedule"),
            )
    for entry in node_entries(status).values():
        for owned in entry.get("owns") or ():
            known = found.get(owned["iri"])
            found[owned["iri"]] = GroupView(
                iri=owned["iri"],
                hashtag=owned.get("hashtag") or "",
                owner=owned.get("owner"),
                members=tuple(owned.get("members") or ()),
                round=owned.get("round"),
                rule=known.rule if known is not None else None,
                schedule=known.schedule if known is not None else None,
            )
    return found


def group_graph(view: GroupView) -> Graph:
    """A group as RDF: its type, hashtag, and who is a member (``spore:memberOf``)."""
    graph = Graph()
    graph.bind("spore", str(SPORE))
    subject = URIRef(view.iri)
    graph.add((subject, RDF.type, SPORE.LearningGroup))
    if view.hashtag:
        graph.add((subject, SPORE.hashtag, Literal(view.hashtag)))
    if view.rule:
        graph.add((subject, SPORE.aggregationRule, URIRef(view.rule)))
    if view.schedule:
        graph.add((subject, SPORE.schedule, Literal(view.schedule)))
    for member in view.members:
        graph.add((URIRef(member), SPORE.memberOf, subject))
    return graph
