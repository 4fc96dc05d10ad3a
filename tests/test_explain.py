"""``spore explain``: decisions with their options, evidence and explanation, from a store or a URL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.config import HostConfig, Limits, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from knowledge.store import EmbeddedStore
from reasoning.decisions import reason
from tests.reasoning_samples import GROUP_A, GROUP_B, NOW, PEER, World, world

ROOT = Path(__file__).resolve().parent.parent


def spore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def decide(w: World) -> None:
    """Round 1: #b claims more than Ann measures, unverified; rounds 2-3: verified, so Ann switches."""
    w.measure(GROUP_A, 1, 0.2)
    w.measure(GROUP_B, 1, 0.5, claimed=True, by=PEER)
    reason(w.store, w.node, round_number=1, now=NOW, rng=random.Random(0), entailment=False)
    for r in (2, 3):
        w.measure(GROUP_A, r, 0.2)
        w.measure(GROUP_B, r, 0.5, claimed=True, by=PEER)
        w.measure(GROUP_B, r, 0.3)
    reason(w.store, w.node, round_number=3, now=NOW, rng=random.Random(0), entailment=False)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("explain") / "store"
    with EmbeddedStore(directory) as store:
        decide(world(patience=2, store=store))
    return directory


def test_a_store_directory_shows_every_decision_with_options_and_evidence(store_dir: Path) -> None:
    done = spore("explain", str(store_dir))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SwitchGroupDecision  round 1" in out and "SwitchGroupDecision  round 3" in out
    assert "Stayed in #a: #b claims 0.500" in out and "Left #a for #b" in out
    assert f"* {GROUP_B}  score 0.3000  (chosen)" in out
    assert f"claimed by {PEER}" in out and "measured by https://here.test/nodes/ann" in out


def test_one_decision_of_one_node_as_json(store_dir: Path) -> None:
    done = spore(
        "explain", "https://here.test/nodes/ann", "3-switch", "--store", str(store_dir), "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    [decision] = json.loads(done.stdout)
    assert decision["decision"] == "https://here.test/nodes/ann/decisions/3-switch"
    assert decision["kind"] == "SwitchGroupDecision" and decision["round"] == 3
    assert [o["target"] for o in decision["options"] if o["chosen"]] == [GROUP_B]
    measured = [e for e in decision["evidence"] if not e["claimed"]]
    assert {e["round"] for e in measured} == {2, 3} and all(e["value"] in (0.2, 0.3) for e in measured)


def test_an_unknown_decision_is_one_line_and_exit_1(store_dir: Path) -> None:
    done = spore("explain", "https://here.test/nodes/ann", "99-switch", "--store", str(store_dir))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "spore: error: no decision https://here.test/nodes/ann/decisions/99-switch found"
    ]


def test_a_short_decision_name_needs_the_node(store_dir: Path) -> None:
    done = spore("explain", str(store_dir), "3-switch")
    assert done.returncode == 2 and "--node" in done.stderr
    named = spore("explain", str(store_dir), "3-switch", "--node", "https://here.test/nodes/ann")
    assert named.returncode == 0, named.stderr
    assert "Left #a for #b" in named.stdout and "Stayed in" not in named.stdout


def test_a_path_that_is_no_store_is_exit_2(tmp_path: Path) -> None:
    done = spore("explain", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "neither a store directory" in done.stderr


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = HostConfig(
        base_url=base,
        data_dir=tmp_path_factory.mktemp("host"),
        nodes=(NodeSpec("ann"),),
        allow_loopback=True,
        limits=Limits(),
    )
    store = EmbeddedStore()
    decide(world(patience=2, node=f"{base}/nodes/ann", store=store))
    running = RunningHost(build_host(config, store=store), sock).start()
    yield running
    running.stop()


@pytest.mark.slow
def test_a_node_url_is_explained_through_its_public_sparql_endpoint(host: RunningHost) -> None:
    node = f"{host.runtime.config.base_url}/nodes/ann"
    done = spore("explain", node)
    assert done.returncode == 0, done.stderr
    assert "Left #a for #b" in done.stdout and f"{node}/decisions/3-switch" in done.stdout


@pytest.mark.slow
def test_an_unreachable_url_is_exit_2() -> None:
    sock = bind_loopback()  # a port nobody listens on once closed
    port = sock.getsockname()[1]
    sock.close()
    done = spore("explain", f"http://127.0.0.1:{port}/nodes/ann")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
