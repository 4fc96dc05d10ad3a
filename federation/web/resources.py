"""Rich HTML for the resources a node mints: node, learning group, model snapshot, decision.

:func:`render_resource` is the hook the linked-data routes call for ``text/html`` before their generic
fallback; the browse pages call the same views, so a resource looks the same whichever URL showed it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from pyoxigraph import NamedNode
from rdflib import RDF, BNode, Graph, URIRef
from rdflib import Literal as RdfLiteral

import queries
from federation.actors import LocalActor
from federation.web.chart import line_chart
from federation.web.groups import GroupView
from federation.web.reading import (
    actor_graph,
    decisions,
    memberships,
    metric_series,
    select_rows,
    snapshots,
    snapshots_from_rows,
)
from federation.web.state import WebState, page_of
from knowledge.graphs import NodeGraphs
from knowledge.store import StoreError
from ontology import PREFIXES, SPORE

__all__ = ["render_resource", "node_page", "group_page", "resource_page", "curie"]

_BY_LENGTH = sorted(PREFIXES.items(), key=lambda item: -len(item[1]))


def curie(iri: str) -> str:
    """``spore:explanation`` for a known namespace, else the IRI itself."""
    for prefix, namespace in _BY_LENGTH:
        if iri.startswith(namespace) and len(iri) > len(namespace):
            return f"{prefix}:{iri[len(namespace) :]}"
    return iri


def properties(graph: Graph, subject: URIRef | BNode, base_url: str) -> list[dict[str, Any]]:
    """Rows of a properties table: predicate, then each value as a link or text."""
    rows = []
    for predicate, value in sorted(
        graph.predicate_objects(subject), key=lambda pair: (str(pair[0]), str(pair[1]))
    ):
        if isinstance(value, URIRef):
            shown = {"href": page_of(str(value), base_url), "text": curie(str(value)), "iri": str(value)}
        elif isinstance(value, BNode):
            inner = ", ".join(f"{curie(str(p))} {o}" for p, o in graph.predicate_objects(value))
            shown = {"text": inner or "(blank node)"}
        else:
            shown = {"text": str(value)}
        rows.append({"predicate": curie(str(predicate)), "predicate_iri": str(predicate), "value": shown})
    return rows


def _page(state: WebState, request: Request, template: str, context: dict[str, Any]) -> HTMLResponse:
    return state.templates.TemplateResponse(request, template, context)


def node_page(
    request: Request, state: WebState, actor: LocalActor, graph: Graph | None = None
) -> HTMLResponse:
    store = state.store
    rows = (snapshots(store, actor.id) if store is not None else []) or state.rounds.rows(actor.name)
    series = metric_series(rows)
    chart = line_chart(series, title=f"Metrics of {actor.name}'s models over rounds")
    model = state.models.get(actor.name)
    spec = actor.node
    context = {
        "actor": actor,
        "title": spec.display_name if spec and spec.display_name else actor.name,
        "summary": spec.summary if spec else "",
        "blueprint": spec.blueprint if spec else None,
        "related": memberships(state.runtime, actor),
        "groups": state.groups_of(actor),
        "round": state.node_round(actor.name),
        "model": model,
        "snapshots": list(reversed(rows))[:30],
        "metric_names": [line.name for line in series],
        "chart": chart,
        "decisions": decisions(store, actor.id) if store is not None else [],
        "described": properties(graph, URIRef(actor.id), state.base_url) if graph is not None else [],
        "page_url": f"/browse/nodes/{actor.name}",
    }
    return _page(state, request, "node.html", context)


def group_page(request: Request, state: WebState, group: GroupView) -> HTMLResponse:
    """A group with its members; when its founder is a node of this host, its model over rounds
    as the founder measured it (rows of other groups the founder was in are left out)."""
    local = state.local_actor(group.iri)
    founder = state.local_actor(group.owner) if group.owner else None
    rows: list[Any] = []
    if founder is not None:
        store = state.store

        def ours(found: list[Any]) -> list[Any]:
            return [row for row in found if row.group in (group.iri, group.hashtag)]

        rows = ours(snapshots(store, founder.id) if store is not None else []) or ours(
            state.rounds.rows(founder.name)
        )
    series = metric_series(rows)
    context = {
        "group": group,
        "page_url": f"/browse/groups/{local.name}"
        if local is not None
        else f"/browse/resource?iri={group.iri}",
        "chart": line_chart(series, title=f"The {group.hashtag or 'group'} model over rounds"),
        "founder": founder,
    }
    return _page(state, request, "group.html", context)


def _kinds(graph: Graph, subject: URIRef) -> set[str]:
    return {str(kind) for kind in graph.objects(subject, RDF.type)}


def _options(state: WebState, owner: LocalActor, iri: str) -> list[dict[str, Any]]:
    if state.store is None:
        return []
    try:
        result = NodeGraphs(NamedNode(owner.id), state.store).query_public(
            queries.load("decision-options"), bindings={"decision": NamedNode(iri)}
        )
        return select_rows(result)
    except (StoreError, TypeError):
        return []


def _recommendation_items(state: WebState, owner: LocalActor, iri: str) -> list[dict[str, Any]]:
    if state.store is None:
        return []
    try:
        result = NodeGraphs(NamedNode(owner.id), state.store).query_public(
            queries.load("recommendation-items"), bindings={"recommendation": NamedNode(iri)}
        )
        return select_rows(result)
    except (StoreError, TypeError):
        return []


def _snapshot_metrics(state: WebState, owner: LocalActor, iri: str) -> dict[str, float]:
    if state.store is None:
        return {}
    try:
        result = NodeGraphs(NamedNode(owner.id), state.store).query_public(
            queries.load("node-model-metrics"), bindings={"snapshot": NamedNode(iri)}
        )
        found = snapshots_from_rows(select_rows(result))
    except (StoreError, TypeError):
        return {}
    return found[0].metrics if found else {}


def resource_page(
    request: Request, state: WebState, iri: str, graph: Graph, metrics: dict[str, float] | None = None
) -> HTMLResponse:
    """Any described resource: rich for snapshots and decisions, a properties table for the rest."""
    subject = URIRef(iri)
    kinds = _kinds(graph, subject)
    owner = state.owner_node(iri)
    labels = [str(v) for v in graph.objects(subject, URIRef(PREFIXES["rdfs"] + "label"))]
    labels += [str(v) for v in graph.objects(subject, URIRef(PREFIXES["schema"] + "name"))]
    context: dict[str, Any] = {
        "iri": iri,
        "title": labels[0] if labels else curie(iri) if curie(iri) != iri else iri.rsplit("/", 1)[-1],
        "kinds": sorted(curie(kind) for kind in kinds),
        "properties": properties(graph, subject, state.base_url),
        "owner": owner,
        "page_url": f"/browse/resource?iri={iri}",
        "explanation": None,
        "options": [],
        "metrics": {},
        "items": [],
    }
    if owner is not None and any(kind.startswith(str(SPORE)) and kind.endswith("Decision") for kind in kinds):
        context["explanation"] = next((str(v) for v in graph.objects(subject, SPORE.explanation)), None)
        context["options"] = _options(state, owner, iri)
        context["title"] = next(
            (curie(kind) for kind in sorted(kinds) if kind != str(SPORE.Decision)), "Decision"
        ).split(":")[-1]
    if owner is not None and str(SPORE.Recommendation) in kinds:
        context["items"] = _recommendation_items(state, owner, iri)
        context["title"] = f"Recommendation by {owner.name}"
    if owner is not None and str(SPORE.ModelSnapshot) in kinds:
        context["metrics"] = _snapshot_metrics(state, owner, iri) or metrics or {}
        context["title"] = "Model snapshot " + iri.rsplit("/", 1)[-1][:12]
    return _page(state, request, "resource.html", context)


_ARCHITECTURE_TERMS = {"lightgcn": SPORE.LightGCN, "knowledge-lightgcn": SPORE.KnowledgeLightGCN}


def current_snapshot_graph(state: WebState, iri: str) -> tuple[Graph, dict[str, float]]:
    """A node's current model as RDF when ``iri`` names it, and its last reported metrics.

    A node recommends with weights its runtime holds in memory; until it records a model card, this
    is what the host can say about the snapshot those weights make (who, which round, which group).
    """
    graph: Graph = Graph()
    owner = state.owner_node(iri)
    model = state.models.get(owner.name) if owner is not None else None
    if owner is None or model is None or model.snapshot != iri:
        return graph, {}
    subject = URIRef(iri)
    graph.bind("spore", str(SPORE))
    graph.add((subject, RDF.type, SPORE.ModelSnapshot))
    graph.add((subject, URIRef(PREFIXES["prov"] + "wasAttributedTo"), URIRef(owner.id)))
    architecture = _ARCHITECTURE_TERMS.get(model.architecture)
    if architecture is not None:
        graph.add((subject, SPORE.architecture, architecture))
    if model.round is not None:
        graph.add((subject, SPORE.roundNumber, RdfLiteral(model.round)))
    if model.group is not None:
        graph.add((URIRef(model.group), SPORE.groupModel, subject))
    reported = {row.round: row.metrics for row in state.rounds.rows(owner.name)}
    return graph, reported.get(model.round, {}) if model.round is not None else {}


def describe_actor(state: WebState, actor: LocalActor) -> Graph:
    """An actor's RDF: the federation state's facts plus what the public graphs say about it."""
    graph = actor_graph(state.runtime, actor)
    owners = [actor] if actor.node is not None else None
    graph += state.describe(actor.id, owners)
    if actor.node is not None and actor.node.display_name:
        graph.add((URIRef(actor.id), URIRef(PREFIXES["rdfs"] + "label"), RdfLiteral(actor.node.display_name)))
    return graph


def render_resource(request: Request, iri: str, graph: Graph) -> HTMLResponse | None:
    """The rich HTML page of ``iri`` described by ``graph``, or None to let the caller use its own.

    Nodes and groups, model snapshots, decisions and stored recommendations get their pages; other
    resources (artists, tags, blueprints) are left to the generic renderer.
    """
    state: WebState | None = getattr(request.app.state, "web", None)
    if state is None:
        return None
    group = state.groups().get(iri)
    if group is not None:
        return group_page(request, state, group)
    actor = state.local_actor(iri)
    if actor is not None:
        return node_page(request, state, actor, graph)
    metrics: dict[str, float] = {}
    if len(graph) == 0:
        graph, metrics = current_snapshot_graph(state, iri)
    kinds = _kinds(graph, URIRef(iri))
    rich = bool({str(SPORE.ModelSnapshot), str(SPORE.Recommendation)} & kinds) or any(
        kind.startswith(str(SPORE)) and kind.endswith("Decision") for kind in kinds
    )
    return resource_page(request, state, iri, graph, metrics) if rich else None
