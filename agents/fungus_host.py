"""One builder that wires a host: the federation app, its fungus nodes and their routes.

:func:`attach_nodes` puts a :class:`~agents.hosting.NodeHost` on an app that
:func:`federation.host.build_host` made (``spore serve`` does this); :func:`start_fungus_host` is the
same on a loopback port in a thread, for tests and benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from agents.asking import recommenders_from_registry
from agents.hosting import HostOptions, NodeHost, RoundListener
from agents.http_transport import artifact_router
from agents.node import FungusNode
from agents.node_status import status_router
from agents.web_models import serve_node_models
from federation.answering import install_asking
from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from federation.runtime import HostRuntime
from federation.web import web_state

__all__ = ["attach_nodes", "start_fungus_host"]


def attach_nodes(
    app: FastAPI,
    nodes: list[FungusNode],
    *,
    options: HostOptions | None = None,
    on_round: RoundListener | None = None,
    clock: Callable[[], float] = time.monotonic,
    **planning: Any,
) -> NodeHost:
    """Run ``nodes`` on the host ``app`` (from ``federation.host.build_host``); ``app.state.nodes``.

    Its routes (``/status``, artifacts) go first: later routers of the app may hold catch-all paths.
    The node runtime starts after the federation runtime, inside the app's lifespan.
    """
    runtime: HostRuntime = app.state.runtime
    options = options or HostOptions()
    host = NodeHost(runtime, nodes, options=options, on_round=on_round, clock=clock, **planning)
    for router in (status_router(host), artifact_router(host.transport)):
        app.router.routes[:0] = router.routes
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with original(application) as state:
            await host.start()
            try:
                yield state
            finally:
                await host.stop()

    app.router.lifespan_context = lifespan
    app.state.nodes = host
    serve_node_models(app, host)  # the web page recommends with each node's current weights
    # Fediverse asks ("@node recommend ...") are answered with the same models the page uses.
    app.state.asking = install_asking(runtime, recommenders_from_registry(web_state(app).models))
    return host


def start_fungus_host(
    data_dir: Path,
    make_nodes: Callable[[str], list[FungusNode]],
    *,
    options: HostOptions | None = None,
    on_round: RoundListener | None = None,
    store: Any = None,
    port: int = 0,
) -> tuple[RunningHost, NodeHost]:
    """A loopback host serving the nodes ``make_nodes(base_url)`` builds, started in a thread.

    The port (0: a free one) is bound first because node actor IRIs contain the base URL.
    """
    from knowledge.store import EmbeddedStore

    sock = bind_loopback(port)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    nodes = make_nodes(base_url)
    config = HostConfig(
        base_url=base_url,
        data_dir=data_dir,
        nodes=tuple(NodeSpec(name=node.name) for node in nodes),
        allow_loopback=True,
    )
    app = build_host(config, store=store if store is not None else EmbeddedStore())
    host = attach_nodes(app, nodes, options=options or HostOptions(), on_round=on_round)
    return RunningHost(app, sock).start(), host
