"""Shared pytest fixtures. Each block belongs to one area; add yours in a block of your own."""

from __future__ import annotations

# ---- knowledge store: a live Oxigraph server and the store under test (tests/test_store*.py) ----
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from knowledge.store import KnowledgeStore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def oxigraph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of an ``oxigraph serve`` on 127.0.0.1 for the whole session (``/query``, ``/update``,
    ``/store``); tests share it, so they clear what they use (the ``store`` fixture does)."""
    # The binary comes with the `oxigraph` wheel, beside this interpreter even when its venv is not on PATH.
    beside = Path(sys.executable).parent / "oxigraph"
    binary = str(beside) if beside.exists() else shutil.which("oxigraph")
    if binary is None:
        reason = "the oxigraph server binary is not installed (pip install oxigraph)"
        if os.environ.get("SPORE_REQUIRE_INTEROP") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    location: Path = tmp_path_factory.mktemp("oxigraph")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"oxigraph serve exited: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{base}/query", params={"query": "ASK {}"}, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


STORE_KINDS = ["embedded", "embedded-disk", "remote", "remote-sparql-only"]


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeStore]:
    """An empty store of every kind: in memory, on disk, Oxigraph server with and without the Graph
    Store Protocol (the latter exercises the INSERT DATA / CONSTRUCT fallbacks)."""
    from knowledge.store import EmbeddedStore, SparqlEndpointStore

    kind: str = request.param
    opened: KnowledgeStore
    if kind == "embedded":
        opened = EmbeddedStore()
    elif kind == "embedded-disk":
        opened = EmbeddedStore(tmp_path / "store")
    else:
        base = request.getfixturevalue("oxigraph_server")
        opened = SparqlEndpointStore(
            f"{base}/query",
            update_url=f"{base}/update",
            graph_store_url=f"{base}/store" if kind == "remote" else None,
            insert_chunk=7,  # small, so the chunked path runs more than one request in tests
        )
        opened.clear(None)
    yield opened
    opened.close()


# ---- end of knowledge store block ----
