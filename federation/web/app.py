"""Wiring the web page into a host: templates, routers, static files and the shared state.

``mount_web(app, runtime)`` is the one call :func:`federation.host.build_host` makes. The node runtime
publishes each node's current model into ``web_state(app).models``; pages read everything else from
the host's store (public graphs only) and its federation state (:mod:`federation.web.state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from federation.runtime import HostRuntime
from federation.web.browse import browse_router
from federation.web.pages import recommend_router
from federation.web.recommending import ARCHITECTURE_NAMES
from federation.web.state import HERE, STATIC_PATH, WebState, page_of, short

__all__ = ["mount_web"]


def _runtime_status(app: FastAPI) -> Mapping[str, Any] | None:
    """The node runtime's status, asked in-process (``app.state.nodes``, set by agents.hosting)."""
    report = getattr(getattr(app.state, "nodes", None), "status", None)
    return report() if callable(report) else None


def _peer_statuses(app: FastAPI) -> list[Mapping[str, Any]]:
    """The peers' statuses the node runtime last polled (``NodeHost.peer_status``)."""
    known = getattr(getattr(app.state, "nodes", None), "peer_status", None)
    return (
        [status for status in known.values() if isinstance(status, Mapping)]
        if isinstance(known, Mapping)
        else []
    )


def mount_web(app: FastAPI, runtime: HostRuntime) -> WebState:
    """Add the web page to a host app: routes, static files, templates and the model registry."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(short=short, static=STATIC_PATH, architecture_names=ARCHITECTURE_NAMES)
    templates.env.filters["page"] = lambda iri: page_of(iri, runtime.config.base_url)
    state = WebState(
        runtime=runtime,
        templates=templates,
        listeners_public=runtime.config.allow_loopback,
        status_source=lambda: _runtime_status(app),
        peers_source=lambda: _peer_statuses(app),
    )
    templates.env.filters["label"] = state.label
    app.state.web = state
    app.include_router(recommend_router())
    app.include_router(browse_router())
    app.mount(STATIC_PATH, StaticFiles(directory=str(HERE / "static")), name="web-static")
    return state
