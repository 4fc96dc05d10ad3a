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
            confines_datasets=True,  # verified for Oxigraph by this suite
        )
        opened.clear(None)
    yield opened
    opened.close()


_VIRTUOSO_INI = """\
[Database]
DatabaseFile = {dir}/virtuoso.db
ErrorLogFile = {dir}/virtuoso.log
LockFile = {dir}/virtuoso.lck
TransactionFile = {dir}/virtuoso.trx
xa_persistent_file = {dir}/virtuoso.pxa
Striping = 0
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {dir}/virtuoso-temp.db
TransactionFile = {dir}/virtuoso-temp.trx
Striping = 0

[Parameters]
ServerPort = 127.0.0.1:{isql_port}
DisableUnixSocket = 1
NumberOfBuffers = 10000
MaxDirtyBuffers = 6000
DirsAllowed = {dir}
ThreadsPerQuery = 2

[HTTPServer]
ServerPort = 127.0.0.1:{http_port}
ServerRoot = {dir}
MaxClientConnections = 4
ServerThreads = 4

[SPARQL]
ResultSetMaxRows = 100000
MaxQueryExecutionTime = 60
"""


@pytest.fixture(scope="session")
def virtuoso_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SPARQL endpoint URL of a throwaway Virtuoso 7 (``virtuoso-t``, installed by
    .ci/install-virtuoso.sh) on 127.0.0.1, with SPARQL updates granted to anonymous users."""
    server, isql = shutil.which("virtuoso-t"), shutil.which("isql-vt")
    if server is None or isql is None:
        reason = "Virtuoso is not installed (bash .ci/install-virtuoso.sh)"
        if os.environ.get("SPORE_REQUIRE_INTEROP") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("virtuoso")
    isql_port, http_port = _free_port(), _free_port()
    ini = directory / "virtuoso.ini"
    ini.write_text(_VIRTUOSO_INI.format(dir=directory, isql_port=isql_port, http_port=http_port))
    process = subprocess.Popen(
        [server, "+foreground", "+configfile", str(ini)],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{http_port}/sparql"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                log = (directory / "virtuoso.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"virtuoso-t exited: {log}")
            try:
                httpx.get(endpoint, params={"query": "ASK {}"}, timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # The default "dba" password is fine for a database that lives as long as this session.
        grant = "GRANT SPARQL_UPDATE TO \"SPARQL\"; DB.DBA.RDF_DEFAULT_USER_PERMS_SET ('nobody', 7);"
        subprocess.run(
            [isql, f"127.0.0.1:{isql_port}", "dba", "dba", f"exec={grant}"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- end of knowledge store block ----


# ---- linked data: three real hosts with minted resources (tests/test_linked_data.py, test_crawl.py,
# test_fanout.py, interop/test_comunica.py); see tests/linked_data_world.py ----


@pytest.fixture(scope="session")
def ld_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.linked_data_world import start_world

    world = start_world(tmp_path_factory.mktemp("ld-world"))
    yield world
    world.stop()


# ---- end of linked data block ----
