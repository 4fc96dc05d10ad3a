"""Fixtures that start real Fediverse software on 127.0.0.1 for the interop tests.

The peers are independent implementations nobody on this project wrote: Fedify 2.3.6 under
Node 22 (``fedify_peer/peer.mjs``) and fediverse-pasture's ``verify_actor`` (in its own venv,
``pasture/pasture_app.py``). Each fixture starts its process on a free port and stops it
afterwards. They are installed by ``.ci/install-fedify.sh`` and ``.ci/install-pasture.sh``;
when missing, the tests skip with that instruction, or fail when ``SPORE_REQUIRE_INTEROP=1``
(so a CI that is meant to run them cannot pass by skipping).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import httpx
import pytest
from interop_peers import (
    PASTURE_DIR,
    PASTURE_VENV,
    STARTUP_TIMEOUT_S,
    FedifyPeer,
    Pasture,
    free_port,
    require_installed,
    start_fedify_peer,
    wait_until,
)


@pytest.fixture(scope="session")
def fedify_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., FedifyPeer]]:
    """Start Fedify peers on demand (``fedify_factory("alice", env={...})``); all stop at session end."""
    started: list[FedifyPeer] = []
    workdir = tmp_path_factory.mktemp("fedify")

    def start(name: str = "peer", env: dict[str, str] | None = None) -> FedifyPeer:
        peer = start_fedify_peer(name, workdir, env)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture(scope="module")
def fedify_peer(fedify_factory: Callable[..., FedifyPeer]) -> FedifyPeer:
    return fedify_factory("peer")


@pytest.fixture(scope="session")
def pasture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pasture]:
    uvicorn = PASTURE_VENV / "bin" / "uvicorn"
    require_installed(uvicorn, ".ci/install-pasture.sh")
    workdir = tmp_path_factory.mktemp("pasture")  # build_app writes data.toml, bovine a cache, here
    port = free_port()
    log = workdir / "pasture.log"
    process = subprocess.Popen(
        [str(uvicorn), "--factory", "--app-dir", str(PASTURE_DIR), "pasture_app:create_app"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PASTURE_DOMAIN": f"127.0.0.1:{port}"},
    )
    server = Pasture(process, f"http://127.0.0.1:{port}/", log)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"pasture exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return httpx.get(f"{server.url}alice", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout=STARTUP_TIMEOUT_S, what="fediverse-pasture to answer")
        yield server
    finally:
        server.stop()
