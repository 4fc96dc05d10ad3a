"""Browsing the mycelium web from one host: its nodes and groups, each resource, the live network view.

``/browse`` lists what the host serves; ``/browse/nodes/{name}`` and ``/browse/groups/{name}`` are the
actors' pages, ``/browse/resource?iri=`` any resource the public graphs describe. Each page answers
``?format=turtle|jsonld|nt`` (or an RDF ``Accept``) with the same resource's RDF. ``network.json`` is
what the network view polls: this host's nodes, the groups they are in and those groups' members.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pyoxigraph import NamedNode

from federation.web.groups import group_graph, node_entries
from federation.web.resources import (
    current_snapshot_graph,
    describe_actor,
    group_page,
    node_page,
    resource_page,
)
from federation.web.state import WebState, html_error, page_of, rdf_view, short, wanted_rdf, web_state

__all__ = ["browse_router", "network"]

MAX_IRI = 2000


def network(state: WebState) -> dict[str, Any]:
    """Nodes and groups as a graph: this host's nodes, the groups they are in and those groups'
    members, and what the peer hosts the runtime polls report of their own nodes.

    ``round`` per local node is its current group round (or its model's), so the view can show
    rounds passing; edges are memberships as the node runtime and the federation state report them.
    """
    base = state.base_url
    groups = state.groups()
    nodes: dict[str, dict[str, Any]] = {}
    shown: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()

    def add_node(iri: str) -> None:
        nodes.setdefault(iri, {"id": iri, "label": short(iri), "local": False, "href": page_of(iri, base)})

    def add_group(iri: str) -> None:
        view = groups.get(iri)
        label = view.hashtag if view is not None and view.hashtag else short(iri)
        local = iri.startswith(base + "/")
        shown.setdefault(iri, {"id": iri, "label": label, "local": local, "href": page_of(iri, base)})
        for member in view.members if view is not None else ():
            add_node(member)
            edges.add((member, iri))

    for name, local in state.runtime.actors.nodes.items():
        add_node(local.id)
        nodes[local.id] |= {"local": True, "round": state.node_round(name)}
        for group in state.groups_of(local):
            add_group(group)
            edges.add((local.id, group))
    for iri in groups:
        if iri.startswith(base + "/"):
            add_group(iri)
    for status in state.peer_statuses():
        origin = str(status.get("host") or "")
        for actor, entry in node_entries(status).items():
            if not origin or not actor.startswith(origin + "/"):
                continue  # a peer speaks only for its own nodes (docs/federation.md, "Host status")
            add_node(actor)
            nodes[actor]["round"] = entry.get("round")
            current = entry.get("group")
            if isinstance(current, Mapping) and current.get("iri"):
                add_group(current["iri"])
                edges.add((actor, current["iri"]))
    rounds = [node["round"] for node in nodes.values() if node.get("round") is not None]
    return {
        "host": base,
        "round": max(rounds) if rounds else None,
        "nodes": sorted(nodes.values(), key=lambda node: node["id"]),
        "groups": sorted(shown.values(), key=lambda group: group["id"]),
        "edges": [{"node": node, "group": group} for node, group in sorted(edges)],
    }


def browse_router() -> APIRouter:
    router = APIRouter(prefix="/browse")

    @router.get("", response_class=HTMLResponse, name="web-browse")
    def host_page(request: Request) -> Response:
        state = web_state(request.app)
        cards = [
            {
                "name": name,
                "summary": actor.node.summary if actor.node else "",
                "groups": state.groups_of(actor),
                "round": state.node_round(name),
                "ready": state.models.get(name) is not None,
            }
            for name, actor in state.runtime.actors.nodes.items()
        ]
        groups = [view for iri, view in state.groups().items() if iri.startswith(state.base_url + "/")]
        return state.templates.TemplateResponse(
            request, "host.html", {"nodes": cards, "groups": groups, "page_url": "/browse"}
        )

    @router.get("/network.json", name="web-network")
    def network_json(request: Request) -> Response:
        return JSONResponse(network(web_state(request.app)), headers={"cache-control": "no-store"})

    @router.get("/nodes/{name}", name="web-node")
    def node_view(request: Request, name: str) -> Response:
        state = web_state(request.app)
        actor = state.node(name)
        if actor is None:
            return html_error(request, 404, f"this host serves no node named {name!r}")
        graph = describe_actor(state, actor)
        rdf = wanted_rdf(request)
        return rdf_view(graph, rdf) if rdf is not None else node_page(request, state, actor, graph)

    @router.get("/groups/{name}", name="web-group")
    def group_view(request: Request, name: str) -> Response:
        state = web_state(request.app)
        actor = state.group(name)
        if actor is None:
            return html_error(request, 404, f"this host serves no learning group named {name!r}")
        rdf = wanted_rdf(request)
        return (
            rdf_view(describe_actor(state, actor), rdf)
            if rdf is not None
            else group_page(request, state, state.groups()[actor.id])
        )

    @router.get("/resource", name="web-resource")
    def resource_view(request: Request, iri: str = "") -> Response:
        state = web_state(request.app)
        iri = iri.strip().strip("<>")
        if not iri or len(iri) > MAX_IRI or not iri.startswith(("http://", "https://", "urn:")):
            return html_error(request, 400, "give the IRI of a resource: /browse/resource?iri=https://…")
        try:
            NamedNode(iri)
        except ValueError as error:
            return html_error(request, 400, f"not an IRI: {error}")
        actor = state.local_actor(iri)
        if actor is not None:
            kind = "groups" if actor.group is not None else "nodes"
            return Response(status_code=303, headers={"location": f"/browse/{kind}/{actor.name}"})
        rdf = wanted_rdf(request)
        group = state.groups().get(iri)
        if group is not None:
            return rdf_view(group_graph(group), rdf) if rdf is not None else group_page(request, state, group)
        owner = state.owner_node(iri)
        graph = state.describe(iri, [owner] if owner is not None else None)
        metrics: dict[str, float] = {}
        if len(graph) == 0:
            graph, metrics = current_snapshot_graph(state, iri)
        if len(graph) == 0:
            return html_error(request, 404, f"nothing on this host describes {iri}")
        if rdf is not None:
            return rdf_view(graph, rdf)
        return resource_page(request, state, iri, graph, metrics)

    return router
