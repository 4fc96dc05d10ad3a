"""The host: ONE builder wiring a FastAPI app, one router per resource, the runtime injected.

``build_host(config, store=...)`` returns a ready app; :class:`RunningHost` serves it with uvicorn on a
pre-bound loopback socket in a thread (tests and the benchmark start hosts this way, so the port is
known before the app is built and there is no bind race).
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from federation.config import GroupSpec, HostConfig, Limits, NodeSpec
from federation.linked_data.resources import install_linked_data
from federation.observability import HostMetrics, observability_router
from federation.outbox import refuse_private_graph
from federation.processing import AdmissionPolicy, QuadSink, admit_all
from federation.routes import actor_router, discovery_router, inbox_router, object_router
from federation.runtime import HostRuntime
from federation.sparql import install_sparql
from federation.ssrf import Resolver, system_resolver
from federation.web import mount_web

__all__ = ["build_host", "RunningHost", "start_local_host", "bind_loopback"]


def build_host(
    config: HostConfig,
    *,
    store: QuadSink,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    admission: AdmissionPolicy = admit_all,
    resolver: Resolver = system_resolver,
    check_outgoing: Callable[[dict[str, Any]], None] = refuse_private_graph,
    metrics: HostMetrics | None = None,
) -> FastAPI:
    """Build a host app; ``app.state.runtime`` is its :class:`HostRuntime` (workers start with the app)."""
    runtime = HostRuntime(
        config=config,
        store=store,
        clock=clock,
        rng=rng or random.Random(),
        admission=admission,
        resolver=resolver,
        check_outgoing=check_outgoing,
        metrics=metrics or HostMetrics(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"SPORE host {config.domain}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    # The inboxes come first: routes are matched in order and they take most of the traffic.
    for router in (
        inbox_router(runtime),
        discovery_router(runtime),
        actor_router(runtime),
        object_router(runtime),
        observability_router(runtime),
    ):
        app.include_router(router)
    install_sparql(app, runtime)  # ahead of the router: /sparql and /nodes/{name}/sparql
    install_linked_data(app, runtime)
    mount_web(app, runtime)  # the web page: federation/web/
    return app


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one), to learn the URL before building the host."""
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it
    # every keep-alive response stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass
class RunningHost:
    """A host app served by uvicorn in a background thread; use as a context manager."""

    app: FastAPI
    sock: socket.socket
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def runtime(self) -> HostRuntime:
        runtime: HostRuntime = self.app.state.runtime
        return runtime

    def start(self) -> RunningHost:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("host did not start")
            time.sleep(0.01)
        return self

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the host's event loop from another thread (e.g. ``runtime.follow(...)``)."""
        loop = self.runtime.loop
        assert loop is not None, "host not started"
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def settle(self, timeout: float = 10.0) -> None:
        self.call(self.runtime.settle(timeout=timeout), timeout + 5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()

    def __enter__(self) -> RunningHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_local_host(
    data_dir: Path,
    *,
    nodes: tuple[NodeSpec, ...] = (),
    groups: tuple[GroupSpec, ...] = (),
    store: QuadSink | None = None,
    limits: Limits | None = None,
    tls: tuple[Path, Path] | None = None,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    admission: AdmissionPolicy = admit_all,
) -> RunningHost:
    """Start a loopback host in a thread (a local fungiverse, tests, the benchmark); loopback fetches allowed.

    With ``tls=(cert, key)`` it serves ``https://localhost:PORT`` and trusts that certificate for its
    own outgoing fetches.
    """
    from knowledge.store import EmbeddedStore

    sock = bind_loopback()
    port = sock.getsockname()[1]
    base_url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    config = HostConfig(
        base_url=base_url,
        data_dir=data_dir,
        nodes=nodes,
        groups=groups,
        allow_loopback=True,
        limits=limits or Limits(),
        tls_verify=str(tls[0]) if tls else True,
    )
    app = build_host(
        config,
        store=store if store is not None else EmbeddedStore(),
        clock=clock,
        rng=rng,
        admission=admission,
    )
    cert, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
    return RunningHost(app, sock, ssl_certfile=cert, ssl_keyfile=key).start()
