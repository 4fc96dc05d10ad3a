"""``spore host``: bad input is one line and exit 2; a started host serves its actors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from agents.cli import cli


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--group", "jazz"], "is not NAME=#hashtag"),
        (["--node", "Not A Name"], "must match"),
        (["--bind", "localhost"], "is not ADDRESS:PORT"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, arguments: list[str], message: str) -> None:
    base = ["host", "--base-url", "http://127.0.0.1:9", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, base + arguments, standalone_mode=False, catch_exceptions=True)
    error = result.exception
    assert error is not None and getattr(error, "exit_code", None) == 2
    assert message in (error.format_message() if hasattr(error, "format_message") else str(error))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_spore_host_serves_nodes_and_groups(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "agents", "host", "--base-url", base, "--data-dir", str(tmp_path)]
    process = subprocess.Popen(
        command + ["--node", "alice", "--group", "jazz=#jazz", "--allow-loopback"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                actor = httpx.get(f"{base}/nodes/alice", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                assert time.monotonic() < deadline, "spore host did not start"
                time.sleep(0.1)
        assert actor.json()["type"] == "Service"
        assert httpx.get(f"{base}/groups/jazz").json()["hashtag"] == "#jazz"
        assert (tmp_path / "keys" / "node-alice.pem").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)
