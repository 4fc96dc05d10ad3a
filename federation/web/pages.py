"""The home page: ask a node for recommendations, by artists you like or as one of its listeners.

A plain GET form, so it works without JavaScript; ``autocomplete.js`` adds suggestions as you type
from ``/recommend/artists``. The answer's URL is the Recommendation's IRI, and ``?format=turtle`` or
``?format=jsonld`` (or an ``Accept`` header) on it gives its RDF.

Handlers are plain ``def``: FastAPI runs them on its thread pool, so a ranking or a store query never
holds up the inboxes on the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from federation.web.recommending import RecommendationQuery, answer, complete, corrected_artists
from federation.web.state import WebState, html_error, rdf_view, wanted_rdf, web_state

__all__ = ["recommend_router"]

LISTENERS_SHOWN = 200


def _chosen_node(state: WebState, requested: str | None) -> str | None:
    """The node asked for, else the first one with a model, else the first one."""
    names = list(state.runtime.actors.nodes)
    if requested:
        return requested
    with_model = [name for name in names if state.models.get(name) is not None]
    return (with_model or names)[0] if names else None


def _form_context(state: WebState, node: str | None) -> dict[str, Any]:
    nodes = [
        {
            "name": name,
            "title": actor.node.display_name if actor.node and actor.node.display_name else name,
            "ready": state.models.get(name) is not None,
        }
        for name, actor in state.runtime.actors.nodes.items()
    ]
    model = state.models.get(node) if node else None
    listeners: list[str] = []
    listener_count = 0
    if model is not None and state.listeners_public:
        listeners = list(model.tensors.listeners[:LISTENERS_SHOWN])
        listener_count = model.tensors.num_listeners
    return {
        "nodes": nodes,
        "node": node,
        "model": model,
        "listeners": listeners,
        "listener_count": listener_count,
    }


def recommend_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, name="web-home")
    def home(request: Request, node: str | None = None) -> Response:
        state = web_state(request.app)
        chosen = _chosen_node(state, node)
        if chosen is not None and state.node(chosen) is None:
            return html_error(request, 404, f"this host serves no node named {chosen!r}")
        context = _form_context(state, chosen) | {"artists": "", "listener": None, "k": 20}
        return state.templates.TemplateResponse(request, "home.html", context)

    @router.get("/recommend", name="web-recommend")
    def recommend(
        request: Request,
        node: str | None = None,
        artists: str | None = None,
        listener: str | None = None,
        k: str | None = None,
    ) -> Response:
        state = web_state(request.app)
        rdf = wanted_rdf(request)
        chosen = _chosen_node(state, node)
        if chosen is None or state.node(chosen) is None:
            message = f"this host serves no node named {chosen!r}"
            if rdf is not None:
                return JSONResponse({"error": message}, status_code=404)
            return html_error(request, 404, message)
        context = _form_context(state, chosen) | {
            "artists": artists or "",
            "listener": listener,
            "k": k or 20,
        }
        try:
            query = RecommendationQuery.parse(chosen, artists, listener, k)
        except ValueError as error:
            return _problem(request, state, context, 400, str(error), rdf)
        if query.listener is not None and not state.listeners_public:
            message = "this host does not recommend for its listeners by name: their data is private"
            return _problem(request, state, context, 403, message, rdf)
        model = state.models.get(chosen)
        if model is None:
            message = f"node {chosen} has no trained model yet; it will after its first round"
            return _problem(request, state, context, 503, message, rdf)
        try:
            result = answer(model, query, state.base_url)
        except LookupError as error:
            return _problem(request, state, context, 404, str(error), rdf)
        if rdf is not None:
            if not result.items:
                return JSONResponse({"error": "none of the artists is known to this node"}, status_code=404)
            return rdf_view(result.rdf, rdf)
        suggestions = [
            {
                "typed": correction.typed,
                "options": [
                    {"name": name, "artists": corrected_artists(query, correction, name)}
                    for name in correction.suggestions
                ],
            }
            for correction in result.corrections
        ]
        return state.templates.TemplateResponse(
            request,
            "home.html",
            context | {"answer": result, "suggestions": suggestions},
            status_code=200 if result.items or any(s["options"] for s in suggestions) else 404,
        )

    @router.get("/recommend/artists", name="web-artists")
    def artists_completion(request: Request, node: str | None = None, q: str = "") -> Response:
        """Names for the autocomplete, as a JSON array (an OpenSearch-suggestions-like shape)."""
        state = web_state(request.app)
        chosen = _chosen_node(state, node)
        if chosen is None or state.node(chosen) is None:
            return JSONResponse({"error": f"no node named {node!r}"}, status_code=404)
        model = state.models.get(chosen)
        names = complete(model, q[:200]) if model is not None else []
        return JSONResponse([q, names])

    return router


def _problem(
    request: Request, state: WebState, context: dict[str, Any], status: int, message: str, rdf: str | None
) -> Response:
    if rdf is not None:
        return JSONResponse({"error": message}, status_code=status)
    return state.templates.TemplateResponse(
        request, "home.html", context | {"problem": message}, status_code=status
    )
