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
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_peers import (
    PASTURE_DIR,
    PASTURE_VENV,
    SPORE_CONTEXT_FILE,
    STARTUP_TIMEOUT_S,
    FedifyPeer,
    Pasture,
    free_port,
    require_installed,
    start_fedify_peer,
    wait_until,
)

from ontology import CONTEXT_URL as SPORE_CONTEXT_URL


@pytest.fixture(scope="session")
def fedify_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., FedifyPeer]]:
    """Start Fedify peers on demand (``fedify_factory("alice", env={...})``); all stop at session end."""
    started: list[FedifyPeer] = []
    workdir = tmp_path_factory.mktemp("fedify")

    def start(name: str = "peer", **options: Any) -> FedifyPeer:
        peer = start_fedify_peer(name, workdir, **options)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture(scope="module")
def fedify_peer(fedify_factory: Callable[..., FedifyPeer], tls_certificate: tuple[Path, Path]) -> FedifyPeer:
    """The peer SPORE hosts talk to: it knows the SPORE context (as w3id.org would serve it),
    refuses GETs whose signature it cannot verify, and trusts the test certificate for https handles."""
    return fedify_factory(
        "peer",
        contexts={SPORE_CONTEXT_URL: SPORE_CONTEXT_FILE},
        check_get_signatures=True,
        env={"NODE_EXTRA_CA_CERTS": str(tls_certificate[0])},
    )


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for localhost, self-signed."""
    from federation.tls import self_signed_certificate

    return self_signed_certificate(tmp_path_factory.mktemp("tls"), days=1)


@pytest.fixture(scope="session")
def spore_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start SPORE hosts (``spore_hosts("alpha", "beta", tls=cert_and_key)``) with the federation
    engineer's :class:`federation.host.RunningHost`; all stop at session end.

    A host allows loopback peers (as a local fungiverse does) and keeps received activities in an
    in-memory store, ``host.runtime.store``. With ``tls`` it serves https on ``localhost``, the only
    way Fedify resolves ``@name@host`` handles.
    """
    from federation.config import HostConfig, NodeSpec
    from federation.host import RunningHost, bind_loopback, build_host
    from knowledge.store.embedded import EmbeddedStore

    started: list[RunningHost] = []

    def start(*names: str, tls: tuple[Path, Path] | None = None) -> RunningHost:
        sock = bind_loopback()
        port = sock.getsockname()[1]
        base_url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
        config = HostConfig(
            base_url=base_url,
            data_dir=tmp_path_factory.mktemp("host"),
            nodes=tuple(NodeSpec(name, display_name=f"Fungus {name}") for name in names),
            allow_loopback=True,
        )
        app = build_host(config, store=EmbeddedStore())
        certfile, keyfile = (str(tls[0]), str(tls[1])) if tls else (None, None)
        host = RunningHost(app, sock, ssl_certfile=certfile, ssl_keyfile=keyfile).start()
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


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
