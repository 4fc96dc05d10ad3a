"""Processes and clients for real Fediverse software on 127.0.0.1: a Fedify peer and fediverse-pasture.

Plain helpers for ``conftest.py`` and the interop tests (a module with its own name, because
``import conftest`` can find another directory's conftest).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

INTEROP_DIR = Path(__file__).resolve().parent
FEDIFY_DIR = INTEROP_DIR / "fedify_peer"
NODE = FEDIFY_DIR / "node_modules" / ".bin" / "node"
PASTURE_DIR = INTEROP_DIR / "pasture"
PASTURE_VENV = INTEROP_DIR / ".pasture-venv"
STARTUP_TIMEOUT_S = 30.0
SPORE_CONTEXT_FILE = INTEROP_DIR.parents[1] / "ontology" / "context.jsonld"

CAVAGE = "draft-cavage-http-signatures-12"
RFC9421 = "rfc9421"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_installed(path: Path, installer: str) -> None:
    """Skip (or fail, in a CI that demands interop) when a peer is not installed."""
    if path.exists():
        return
    reason = f"{path.relative_to(INTEROP_DIR)} is missing: run {installer}"
    if os.environ.get("SPORE_REQUIRE_INTEROP") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; delivery and inbox processing are async."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class FedifyPeer:
    """A running ``peer.mjs``: one Fedify actor plus the JSON control API that reports what it saw."""

    def __init__(self, process: subprocess.Popen[bytes], origin: str, actor: str, stderr: Path) -> None:
        self.process = process
        self.origin = origin
        self.actor = actor
        self.stderr = stderr
        self.http = httpx.Client(base_url=origin, timeout=60.0)

    def control(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(method, f"/_control/{path}", json=payload)
        assert response.status_code == 200, f"peer control {path}: {response.status_code} {response.text}"
        return response.json()

    def lookup(self, target: str, *, signed: bool = False, scheme: str | None = None) -> dict[str, Any]:
        return self.control("POST", "lookup", {"target": target, "signed": signed, "scheme": scheme})

    def send(self, activity: str, target: str, **options: Any) -> dict[str, Any]:
        """Send ``Follow``, ``Undo-Follow``, ``Block`` or ``Create-Note`` to the actor ``target``.

        Options: ``scheme`` (first knock), ``wrongKey`` (sign with an unpublished key),
        ``hashtag``, ``content``, ``mentions`` (``[{"href": ..., "name": ...}]``), ``followId``,
        ``sharedInbox``. The answer lists every POST attempt with the scheme it was signed with
        and the status it got.
        """
        return self.control("POST", "send", {"activity": activity, "target": target, **options})

    def log(self) -> dict[str, Any]:
        return self.control("GET", "log")

    def reset(self) -> None:
        self.control("POST", "reset")

    def received(self, activity_type: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.log()["received"] if activity_type in (None, a["type"])]

    def wait_received(
        self, activity_type: str, *, object_id: str | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for activity in self.received(activity_type):
                if object_id is None or object_id in (activity.get("object"), activity["json"].get("object")):
                    return activity
            return None

        return wait_until(find, timeout=timeout, what=f"{activity_type} at the Fedify peer")

    def diagnostics(self) -> str:
        """Peer stderr and error log, for assertion messages when something goes wrong."""
        errors = self.log().get("errors", []) if self.process.poll() is None else []
        return f"errors={errors}\nstderr:\n{self.stderr.read_text(errors='replace')[-4000:]}"

    def stop(self) -> None:
        self.http.close()
        stop_process(self.process)


def start_fedify_peer(
    name: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    contexts: dict[str, Path] | None = None,
    check_get_signatures: bool = False,
) -> FedifyPeer:
    """Start ``peer.mjs``.

    ``contexts`` maps JSON-LD context URLs to local files the peer serves for them (their
    publishers are offline here); ``check_get_signatures`` makes it refuse (401) a GET of its actor
    whose signature Fedify cannot verify.
    """
    require_installed(NODE, ".ci/install-fedify.sh")
    stderr = workdir / f"fedify-{name}.stderr"
    options = [f"--context={url}={path}" for url, path in (contexts or {}).items()]
    if check_get_signatures:
        options.append("--check-get-signatures")
    process = subprocess.Popen(
        [str(NODE), str(FEDIFY_DIR / "peer.mjs"), "--port", str(free_port()), "--name", name, *options],
        cwd=FEDIFY_DIR,
        stdout=subprocess.PIPE,
        stderr=stderr.open("wb"),
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
    line = process.stdout.readline() if ready else b""
    if not line:
        stop_process(process)
        raise RuntimeError(f"Fedify peer did not start: {stderr.read_text(errors='replace')[-2000:]}")
    hello = json.loads(line)
    return FedifyPeer(process, hello["origin"], hello["actor"], stderr)


class Pasture:
    """A running fediverse-pasture ``verify_actor`` app."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def verify(self, actor_uri: str) -> tuple[dict[str, Any], list[Any]]:
        """Run verify_actor against ``actor_uri``: its result table and its step-by-step messages.

        The table has, per pasture actor, ``get_actor`` and ``post_inbox`` booleans, plus
        ``webfinger``. alice and dean POST unsigned; bob, claire, emily and frank sign
        (claire and frank also only serve their own actor to signed GETs).
        """
        response = httpx.post(
            self.url, data={"actor_uri": actor_uri}, headers={"accept": "application/json"}, timeout=120.0
        )
        assert response.status_code == 200, f"verify_actor: {response.status_code} {response.text[:500]}"
        body = response.json()
        return body["result"], json.loads(body["messages"]).get("steps", [])

    def stop(self) -> None:
        stop_process(self.process)
