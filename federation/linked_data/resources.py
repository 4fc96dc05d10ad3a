"""Dereferencing: every IRI a host's nodes mint answers with the representation the client asks for.

Three kinds of IRI reach this module:

* ActivityPub objects (node, group and instance actors, ``/objects``, ``/activities``): their routes
  in :mod:`federation.routes` call :meth:`LinkedData.represent` with the AS2 document, which stays
  the answer for AS2 and JSON-LD clients; Turtle, N-Triples and HTML get the document's RDF merged
  with what the node's public graphs say about the IRI.
* Everything else under the host (blueprints, snapshots, evaluations, decisions, recommendations, …):
  no route knows their paths, so the host's 404 handler asks :meth:`LinkedData.fallback`, which
  describes the IRI from the public graphs. New IRI patterns thus dereference without a new route.
* SPORE's ``https://w3id.org/spore/…`` IRIs (the catalogue's artists and tags, the ontology, the
  context): each host serves them at the same path, as the w3id.org redirect would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pyoxigraph import NamedNode, Triple

import ontology
import queries
from federation.jsonld import UnknownContext, to_quads
from federation.linked_data.describe import as_triples, describe, describe_graph, public_graphs
from federation.linked_data.html import W3ID_BASE, local_href, render_resource_page
from federation.linked_data.negotiation import Representation, choose, not_acceptable_message
from federation.linked_data.ontology_page import ontology_html, ontology_triples, ontology_turtle
from federation.linked_data.serialise import serialise
from federation.linked_data.void import NodeDataset, void_description
from federation.runtime import HostRuntime
from federation.state import Relation
from knowledge.store import KnowledgeStore

__all__ = ["LinkedData", "linked_data_router", "install_linked_data", "FORMAT_PARAMETER"]

# ``?format=`` overrides Accept, so an HTML page can link to the same resource's Turtle and JSON-LD.
FORMAT_PARAMETER: dict[str, Representation] = {
    "turtle": Representation.TURTLE,
    "ttl": Representation.TURTLE,
    "jsonld": Representation.JSON_LD,
    "json": Representation.JSON_LD,
    "ntriples": Representation.N_TRIPLES,
    "nt": Representation.N_TRIPLES,
    "html": Representation.HTML,
}
AS2_LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
MEMBERS = NamedNode(ontology.NAMESPACE + "members")
VARY = {"vary": "accept"}


def _representation(request: Request, *, activity: bool) -> Representation | None:
    forced = request.query_params.get("format")
    if forced is not None:
        return FORMAT_PARAMETER.get(forced.lower())
    return choose(request.headers.get("accept"), activity=activity)


def _not_acceptable(*, activity: bool) -> PlainTextResponse:
    return PlainTextResponse(not_acceptable_message(activity=activity) + "\n", status_code=406, headers=VARY)


def alternates(iri: str) -> str:
    """RFC 8288 ``Link`` header naming the other representations, for clients that do not negotiate."""
    return ", ".join(
        f'<{iri}?format={name}>; rel="alternate"; type="{media}"'
        for name, media in (
            ("turtle", "text/turtle"),
            ("jsonld", "application/ld+json"),
            ("ntriples", "application/n-triples"),
        )
    )


def render_html(request: Request, iri: str, triples: Sequence[Triple], base_url: str) -> Response:
    """The web page's view of the resource when it has one, else the generic properties page."""
    try:
        from federation.web import render_resource
    except ImportError:  # a host without the web page
        render_resource = None  # type: ignore[assignment]
    if render_resource is not None:
        from rdflib import Graph

        graph = Graph()
        if triples:
            graph.parse(data=serialise(triples, Representation.N_TRIPLES).decode(), format="nt")
        rendered = render_resource(request, iri, graph)
        if isinstance(rendered, Response):
            rendered.headers["vary"] = "accept"
            return rendered
        if isinstance(rendered, str):
            return HTMLResponse(rendered, headers=VARY)
    return HTMLResponse(render_resource_page(iri, triples, base_url=base_url), headers=VARY)


class LinkedData:
    """Descriptions and representations for one host's IRIs, read from its nodes' public graphs."""

    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime
        self.base_url = runtime.config.base_url
        self.store = runtime.store if isinstance(runtime.store, KnowledgeStore) else None
        self._graphs: tuple[int, list[NamedNode]] = (-1, [])

    @property
    def graphs(self) -> list[NamedNode]:
        """The public graphs of the host's nodes, as many as it serves now: a node spawned on the
        running host is described too (nodes are only ever added, so their count keys the cache)."""
        nodes = self.runtime.actors.nodes
        if self._graphs[0] != len(nodes):
            self._graphs = (len(nodes), public_graphs(actor.id for actor in list(nodes.values())))
        return self._graphs[1]

    def _relations(self, iri: str) -> list[Triple]:
        """What the host's federation state knows and no graph holds: a local group's members."""
        for group in self.runtime.actors.groups.values():
            if group.id == iri:
                members = self.runtime.state.related(group.id, Relation.MEMBER)
                return [Triple(NamedNode(iri), MEMBERS, NamedNode(m)) for m in members]
        return []

    async def description(self, iri: str) -> list[Triple]:
        if self.store is None:
            return self._relations(iri)
        found = await asyncio.to_thread(describe, self.store, iri, self.graphs)
        return found + self._relations(iri)

    def respond(
        self, request: Request, iri: str, triples: Sequence[Triple], representation: Representation
    ) -> Response:
        if representation is Representation.HTML:
            return render_html(request, iri, triples, self.base_url)
        media = representation.value
        if representation is Representation.TURTLE:
            media = "text/turtle; charset=utf-8"
        headers = {**VARY, "link": alternates(local_href(iri, self.base_url))}
        return Response(serialise(triples, representation), media_type=media, headers=headers)

    async def represent(self, request: Request, iri: str, document: dict[str, Any]) -> Response:
        """An ActivityPub object: its AS2 document for AS2/JSON-LD clients, RDF or HTML for the rest."""
        representation = _representation(request, activity=True)
        if representation is None:
            return _not_acceptable(activity=True)
        headers = {**VARY, "link": alternates(iri)}
        if representation is Representation.ACTIVITY_JSON:
            return JSONResponse(document, media_type=representation.value, headers=headers)
        if representation is Representation.JSON_LD:
            return JSONResponse(document, media_type=AS2_LD, headers=headers)
        try:
            own = as_triples(to_quads(document))
        except (UnknownContext, SyntaxError):  # a stored document our loader cannot expand
            own = []
        triples = own + await self.description(iri)
        return self.respond(request, iri, list(dict.fromkeys(triples)), representation)

    async def fallback(self, request: Request) -> Response | None:
        """The answer for a request no route matched: the IRI's description, or ``None`` (a plain 404).

        Described resources are read-only: another method than GET or HEAD on one is 405.
        """
        path = request.url.path
        for iri in (self.base_url + path, W3ID_BASE + path.lstrip("/")):
            try:
                NamedNode(iri)
            except ValueError:  # a path no IRI can have (a space, a quote): nobody minted it
                return None
            triples = await self.description(iri)
            if NamedNode(iri) in self.graphs and self.store is not None:
                endpoint = iri.rsplit("/graphs/", 1)[0] + "/sparql"
                triples += await asyncio.to_thread(describe_graph, self.store, NamedNode(iri), endpoint)
            if triples:
                if request.method not in ("GET", "HEAD"):
                    return PlainTextResponse(
                        f"405 Method Not Allowed: {iri} is read-only linked data\n",
                        status_code=405,
                        headers={"allow": "GET, HEAD"},
                    )
                representation = _representation(request, activity=False)
                if representation is None:
                    return _not_acceptable(activity=False)
                return self.respond(request, iri, triples, representation)
        return None

    async def void(self, request: Request) -> Response:
        representation = _representation(request, activity=False)
        if representation is None:
            return _not_acceptable(activity=False)
        document = f"{self.base_url}/.well-known/void"
        sizes = await asyncio.to_thread(self._graph_sizes)
        nodes = [
            NodeDataset(
                name=name,
                actor=actor.id,
                sparql_endpoint=f"{actor.id}/sparql",
                graph_sizes={g: n for g, n in sizes.items() if g.startswith(f"{actor.id}/graphs/")},
            )
            for name, actor in sorted(self.runtime.actors.nodes.items())
        ]
        triples = void_description(
            document,
            base_url=self.base_url,
            title=f"SPORE host {self.runtime.config.domain}",
            sparql_endpoint=f"{self.base_url}/sparql",
            nodes=nodes,
            groups=[group.id for _, group in sorted(self.runtime.actors.groups.items())],
        )
        return self.respond(request, document, triples, representation)

    def _graph_sizes(self) -> dict[str, int]:
        if self.store is None or not self.graphs:
            return {}
        result = self.store.query(
            queries.load("graph-sizes"), default_graph=self.graphs, named_graphs=self.graphs
        )
        return {row["graph"].value: int(row["triples"].value) for row in result}  # type: ignore[union-attr,index]


def linked_data_router(linked: LinkedData) -> APIRouter:
    """The ontology at its namespace path, the JSON-LD context at its URL path, and VoID."""
    router = APIRouter()
    ontology_path = "/" + ontology.ONTOLOGY_IRI[len(W3ID_BASE) :]  # /ns
    context_path = "/" + ontology.CONTEXT_URL[len(W3ID_BASE) :]  # /context.jsonld

    @router.api_route(ontology_path, methods=["GET", "HEAD"])
    async def ontology_document(request: Request) -> Response:
        representation = _representation(request, activity=False)
        if representation is None:
            return _not_acceptable(activity=False)
        if representation is Representation.HTML:
            return HTMLResponse(ontology_html(linked.base_url), headers=VARY)
        if representation is Representation.TURTLE:
            return Response(ontology_turtle(), media_type="text/turtle; charset=utf-8", headers=VARY)
        return linked.respond(request, ontology.ONTOLOGY_IRI, ontology_triples(), representation)

    @router.api_route(context_path, methods=["GET", "HEAD"])
    async def context_document() -> Response:
        headers = {"access-control-allow-origin": "*"}
        return JSONResponse(ontology.load_context(), media_type="application/ld+json", headers=headers)

    @router.api_route("/.well-known/void", methods=["GET", "HEAD"])
    async def void_document(request: Request) -> Response:
        return await linked.void(request)

    return router


def install_linked_data(app: FastAPI, runtime: HostRuntime) -> LinkedData:
    """Add the linked-data routes and the dereferencing fallback to a host app."""
    linked = LinkedData(runtime)
    app.state.linked_data = linked
    app.include_router(linked_data_router(linked))

    # A 404 handler rather than a catch-all route: routes match in the order they were added, and a
    # catch-all would hide every route another part of the host adds after it.
    async def not_found(request: Request, exc: Exception) -> Response:
        answer = await linked.fallback(request)
        if answer is not None:
            return answer
        detail = getattr(exc, "detail", None) or "Not Found"
        return JSONResponse({"detail": detail}, status_code=404)

    app.add_exception_handler(404, not_found)
    return linked
