"""What every page of the web page shares: its state, links between pages, RDF views, error pages.

The routers (:mod:`federation.web.browse`, :mod:`federation.web.pages`) and the resource renderers
read from here; :mod:`federation.web.app` only wires them into a host, so no module of the page
imports the builder back.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from pyoxigraph import NamedNode, QuerySolutions, RdfFormat
from pyoxigraph import serialize as serialize_rdf
from rdflib import Graph

import queries
from federation.actors import LocalActor
from federation.runtime import HostRuntime
from federation.state import Relation
from federation.web.groups import GroupView, groups_from_status, node_entries
from federation.web.reading import RoundHistory
from federation.web.recommending import ModelRegistry
from knowledge.graphs import NodeGraphs
from knowledge.store import KnowledgeStore, StoreError

__all__ = ["WebState", "html_error", "page_of", "rdf_view", "short", "wanted_rdf", "web_state"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_PATH = "/assets/web"
_ACTOR_IRI = re.compile(r"^(https?://[^/]+)/(nodes|groups)/([a-z0-9_]{1,64})$")
_MINTED_IRI = re.compile(r"^(https?://[^/]+)/(nodes|groups)/[a-z0-9_]{1,64}[/#].+$")
RDF_MEDIA = {"turtle": "text/turtle", "jsonld": "application/ld+json", "ntriples": "application/n-triples"}
_FORMAT_ALIASES = {"turtle": "turtle", "ttl": "turtle", "jsonld": "jsonld", "json-ld": "jsonld"}
_FORMAT_ALIASES |= {"nt": "ntriples", "ntriples": "ntriples", "n-triples": "ntriples"}


@dataclass
class WebState:
    """What the pages share. ``listeners_public``: whether the page lists a node's listeners and
    recommends for them. Their IRIs live in the private graph, and a listener's list (which leaves out
    what they play) hints at their listening, so only a local fungiverse (``allow_loopback``) shows
    them unless the operator sets it."""

    runtime: HostRuntime
    templates: Jinja2Templates
    models: ModelRegistry = field(default_factory=ModelRegistry)
    rounds: RoundHistory = field(default_factory=RoundHistory)
    listeners_public: bool = False
    status_source: Callable[[], Mapping[str, Any] | None] = lambda: None
    peers_source: Callable[[], list[Mapping[str, Any]]] = lambda: []

    status_ttl: float = 1.0
    _status_cache: tuple[float, Mapping[str, Any] | None] | None = field(default=None, repr=False)

    def status(self) -> Mapping[str, Any] | None:
        """The node runtime's status (docs/federation.md, "Host status"), None without a runtime.

        Kept for ``status_ttl`` seconds: one page asks for it once per node, and a host with
        hundreds of nodes builds it in milliseconds each time.
        """
        now = time.monotonic()
        cached = self._status_cache
        if cached is not None and now - cached[0] < self.status_ttl:
            return cached[1]
        try:
            found = self.status_source()
        except Exception:  # the page must still render when the runtime's report fails
            log.exception("the node runtime's status is not available")
            found = None
        self._status_cache = (now, found)
        return found

    def peer_statuses(self) -> list[Mapping[str, Any]]:
        """The last status of each peer host the node runtime polls (empty without a runtime)."""
        try:
            return list(self.peers_source())
        except Exception:  # as for status(): a page without the peers beats no page
            log.exception("the peers' status is not available")
            return []

    def groups(self) -> dict[str, GroupView]:
        """Every learning group this host knows: its nodes' protocol groups (and those its peers
        report), and its Group actors; what a group's owner reports wins."""
        found: dict[str, GroupView] = {}
        for status in [*self.peer_statuses(), self.status()]:
            host = str(status.get("host") or "") if status else ""
            for iri, view in groups_from_status(status).items():
                if iri not in found or (host and iri.startswith(host + "/")):  # the owner's host wins
                    found[iri] = view
        for actor in self.runtime.actors.groups.values():
            spec = actor.group
            found[actor.id] = GroupView(
                iri=actor.id,
                hashtag=spec.hashtag if spec is not None else actor.name,
                owner=None,
                members=tuple(self.runtime.state.related(actor.id, Relation.MEMBER)),
                summary=spec.summary if spec is not None else "",
            )
        return found

    def groups_of(self, actor: LocalActor) -> list[str]:
        """The groups a local node is in: its protocol group and the Group actors it joined."""
        entry = node_entries(self.status()).get(actor.id, {})
        current = entry.get("group") if isinstance(entry.get("group"), Mapping) else None
        joined = [
            iri for iri in self.runtime.state.related(actor.id, Relation.FOLLOWING) if "/groups/" in iri
        ]
        return list(dict.fromkeys(([current["iri"]] if current and current.get("iri") else []) + joined))

    def node_round(self, name: str) -> int | None:
        actor = self.node(name)
        entry = node_entries(self.status()).get(actor.id, {}) if actor is not None else {}
        if entry.get("round") is not None:
            return int(entry["round"])
        model = self.models.get(name)
        return model.round if model is not None else None

    def label(self, iri: str) -> str:
        """A group's hashtag where this host knows it, else the IRI's last segment."""
        group = self.groups().get(iri)
        return group.hashtag if group is not None and group.hashtag else short(iri)

    @property
    def base_url(self) -> str:
        return self.runtime.config.base_url

    @property
    def store(self) -> KnowledgeStore | None:
        store = self.runtime.store
        return store if isinstance(store, KnowledgeStore) else None

    def node(self, name: str) -> LocalActor | None:
        return self.runtime.actors.nodes.get(name)

    def group(self, name: str) -> LocalActor | None:
        return self.runtime.actors.groups.get(name)

    def local_actor(self, iri: str) -> LocalActor | None:
        found = _ACTOR_IRI.match(iri)
        if found is None or found.group(1) != self.base_url:
            return None
        return self.node(found.group(3)) if found.group(2) == "nodes" else self.group(found.group(3))

    def owner_node(self, iri: str) -> LocalActor | None:
        """The local node whose IRI space holds ``iri`` (its snapshots, decisions, graphs)."""
        for actor in self.runtime.actors.nodes.values():
            if iri == actor.id or iri.startswith(actor.id + "/") or iri.startswith(actor.id + "#"):
                return actor
        return None

    def describe(self, iri: str, nodes: list[LocalActor] | None = None) -> Graph:
        """Everything the public graphs of ``nodes`` (default: all local nodes) say about ``iri``."""
        graph = Graph()
        store = self.store
        if store is None:
            return graph
        text = queries.load("describe-resource")
        for actor in nodes if nodes is not None else list(self.runtime.actors.nodes.values()):
            try:
                result = NodeGraphs(NamedNode(actor.id), store).query_public(
                    text, bindings={"resource": NamedNode(iri)}
                )
            except StoreError:
                continue
            if isinstance(result, bool | QuerySolutions):
                continue
            data = serialize_rdf(result, format=RdfFormat.N_TRIPLES)
            if data:
                graph.parse(data=data.decode("utf-8"), format="nt")
        return graph


def web_state(app: FastAPI) -> WebState:
    state: WebState = app.state.web
    return state


def page_of(iri: str, base_url: str) -> str:
    """Where a person reads about ``iri``: its host's browse page for SPORE actors and what they mint,
    the local resource page for anything else this host may describe (artists, tags)."""
    actor = _ACTOR_IRI.match(iri)
    if actor is not None:
        return f"{actor.group(1)}/browse/{actor.group(2)}/{actor.group(3)}"
    minted = _MINTED_IRI.match(iri)
    host = minted.group(1) if minted is not None else base_url
    return f"{host}/browse/resource?iri={quote(iri, safe='')}"


def short(iri: str) -> str:
    """A readable label for an IRI: its last path segment, or the hash part."""
    tail = iri.rstrip("/").rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    return tail if len(tail) <= 24 else tail[:12] + "…"


def wanted_rdf(request: Request) -> str | None:
    """The RDF view a request asks for (``?format=`` wins over ``Accept``), or None for the HTML page.

    Browsers list ``text/html`` first, so only a client that prefers an RDF type gets one.
    """
    explicit = request.query_params.get("format")
    if explicit:
        return _FORMAT_ALIASES.get(explicit.lower(), "unknown")
    accept = request.headers.get("accept", "")
    best, best_q = None, 0.0
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = {v: k for k, v in RDF_MEDIA.items()}.get(media.lower())
        if media.lower() in ("text/html", "application/xhtml+xml") and quality >= best_q:
            best, best_q = None, quality + 1e-9
        elif kind is not None and quality > best_q:
            best, best_q = kind, quality
    return best


def rdf_view(graph: Graph, kind: str) -> Response:
    """``graph`` as Turtle, JSON-LD (SPORE context) or N-Triples; 406 for a format not served."""
    if kind not in RDF_MEDIA:
        return PlainTextResponse(
            "406 Not Acceptable: this page is served as text/html, text/turtle, application/ld+json "
            "and application/n-triples (?format=turtle|jsonld|nt)",
            status_code=406,
        )
    if kind == "turtle":
        return Response(graph.serialize(format="turtle"), media_type=RDF_MEDIA[kind])
    if kind == "ntriples":
        return Response(graph.serialize(format="nt"), media_type=RDF_MEDIA[kind])
    from federation.jsonld import SPORE_CONTEXT_URL, known_context

    context = known_context(SPORE_CONTEXT_URL)["@context"]
    document = json.loads(graph.serialize(format="json-ld", context=context, auto_compact=True))
    if isinstance(document, dict) and "@context" in document:
        document["@context"] = SPORE_CONTEXT_URL
    return Response(json.dumps(document, indent=2, ensure_ascii=False), media_type=RDF_MEDIA[kind])


def html_error(request: Request, status: int, message: str) -> HTMLResponse:
    templates = web_state(request.app).templates
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )
