"""``spore demo``: its plan and blueprints (fast), and real runs of hosts as subprocesses (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from rdflib import Graph

from agents import demo
from agents.cli import cli
from ontology import SPORE
from shapes.validation import default_validator

ROOT = Path(__file__).resolve().parents[1]


def test_derived_blueprints_are_distinct_valid_and_varied(tmp_path: Path) -> None:
    derived = demo.derive_blueprints(demo.example_choices(), 8, hosts=2)
    names = [name for name, _ in derived]
    assert len(set(names)) == 8
    paths = demo.write_blueprints(tmp_path, derived)
    validator = default_validator()
    architectures, dimensions = set(), set()
    for path in paths:
        graph = Graph().parse(path, format="turtle")
        assert validator.validate(graph).conforms, path
        config = next(graph.objects(None, SPORE.trains))
        architectures.add(graph.value(config, SPORE.architecture))
        dimensions.add(int(graph.value(config, SPORE.embeddingDimension)))
    assert len(architectures) == 3  # every example's architecture is in the mix
    assert len(dimensions) > 1


def test_nodes_seeking_one_group_share_its_model_size() -> None:
    sizes: dict[str, set[int]] = {}
    for _, choices in demo.derive_blueprints(demo.example_choices(), 16, hosts=4):
        sizes.setdefault(choices.hashtags[0], set()).add(choices.embedding_dimension)
    assert all(len(found) == 1 for found in sizes.values())  # an owner rejects other shapes


def test_every_group_has_members_on_more_than_one_host() -> None:
    hosts = 3
    derived = demo.derive_blueprints(demo.example_choices(), 12, hosts=hosts)
    members: dict[str, set[int]] = {}
    for index, (_, choices) in enumerate(derived):
        members.setdefault(choices.hashtags[0], set()).add(index % hosts)  # nodes are dealt round-robin
    assert len(members) >= 3
    assert all(len(on_hosts) > 1 for on_hosts in members.values())


def test_large_fungiverses_spread_group_founders_over_hosts() -> None:
    hosts, members, founders = 4, {}, {}
    for index, (_, choices) in enumerate(
        demo.derive_blueprints(demo.example_choices(), 200, hosts=4, group_size=4)
    ):
        members.setdefault(choices.hashtags[0], []).append(index % hosts)
    for tag, on_hosts in members.items():
        founders[tag] = min(on_hosts)  # the member with the smallest actor IRI (lowest port) founds
        assert 2 <= len(on_hosts) <= 4 and len(set(on_hosts)) == 2, (tag, on_hosts)
    assert len(set(founders.values())) >= 3  # not every group is founded on the first host


def test_plan_deals_nodes_over_consecutive_ports_and_round_trips(tmp_path: Path) -> None:
    plan = demo.plan_demo(
        tmp_path, ["a", "b", "c", "d", "e"], hosts=2, port=8101, music=None, round_seconds=1
    )
    assert [host.port for host in plan.hosts] == [8101, 8102]
    assert [len(host.blueprints) for host in plan.hosts] == [3, 2]
    assert plan.urls == ["http://127.0.0.1:8101", "http://127.0.0.1:8102"]
    demo.save_plan(tmp_path, plan)
    assert demo.load_plan(tmp_path) == plan
    command = demo.serve_command(plan, plan.hosts[1])
    assert command[command.index("--port") + 1] == "8102"
    assert command[command.index("--peer") + 1] == "http://127.0.0.1:8101" and "--synth" in command
    with pytest.raises(demo.DemoError, match="--hosts"):
        demo.plan_demo(tmp_path, ["a"], hosts=2, port=8101, music=None, round_seconds=1)


def test_lastfm_is_used_when_its_files_are_there(tmp_path: Path) -> None:
    assert demo.lastfm_dir(tmp_path) is None
    (tmp_path / "lastfm-2k").mkdir()
    (tmp_path / "lastfm-2k" / "user_artists.dat").write_text("userID\tartistID\tweight\n")
    assert demo.lastfm_dir(tmp_path) == tmp_path / "lastfm-2k"


def test_a_broken_plan_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["demo", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "is not a demo plan" in result.output


def test_resuming_with_another_layout_is_refused(tmp_path: Path) -> None:
    plan = demo.plan_demo(tmp_path, ["a", "b"], hosts=2, port=8101, music=None, round_seconds=1)
    demo.save_plan(tmp_path, plan)
    result = CliRunner().invoke(cli, ["demo", "--state-dir", str(tmp_path), "--nodes", "5"])
    assert result.exit_code == 1 and "holds a fungiverse of 2 nodes" in result.output


def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plan = demo.plan_demo(tmp_path, ["a"], hosts=1, port=port, music=None, round_seconds=1)
        with pytest.raises(demo.DemoError, match=f"port.* {port} in use"):
            demo.Fungiverse(plan).start()


# -- real runs ---------------------------------------------------------------------------------------


def _free_port_range(count: int) -> int:
    """A first port with ``count`` free ports after it (the demo's hosts take consecutive ports)."""
    for base in range(20000 + os.getpid() % 2000 * 10, 60000, 97):
        if all(demo.port_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError("no free port range")


def _spore(*args: str) -> list[str]:
    return [sys.executable, "-m", "agents", *args]


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc, so the test sees orphans too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    """Synthetic data whatever the machine has: an empty SPORE_DATA_DIR."""
    (tmp_path / "no-data").mkdir()
    return {**os.environ, "SPORE_DATA_DIR": str(tmp_path / "no-data"), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_demo_runs_rounds_shows_groups_and_resumes(tmp_path: Path, demo_env: dict[str, str]) -> None:
    state, port = tmp_path / "state", _free_port_range(2)
    args = ["demo", "--nodes", "4", "--hosts", "2", "--rounds", "2", "--port", str(port)]
    args += ["--state-dir", str(state), "--round-seconds", "0.5"]
    first = subprocess.run(_spore(*args), capture_output=True, text=True, env=demo_env, timeout=540)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "synthetic music graph" in first.stdout and f"http://127.0.0.1:{port}/" in first.stdout
    table = first.stdout[first.stdout.index("host ") :].splitlines()
    rows = [line.split() for line in table[2:4]]
    # every node is in a group, groups span both hosts, and both reached round 2
    assert all(row[1] == row[2] == "2" and int(row[3]) >= 1 and int(row[4]) >= 2 for row in rows), "\n".join(
        table
    )
    assert json.loads((state / "demo.json").read_text())["nodes"] == 4

    again = subprocess.run(
        _spore("demo", "--state-dir", str(state), "--rounds", "1"),
        capture_output=True,
        text=True,
        env=demo_env,
        timeout=540,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming the fungiverse" in again.stdout
    resumed_at = int(again.stdout.split("resuming at round ")[1].split()[0])
    assert resumed_at >= 2
    final_round = int(again.stdout.rsplit("stopped after round ", 1)[1].split(";")[0])
    assert final_round >= resumed_at + 1


@pytest.mark.slow
def test_sigint_stops_every_host_and_status_sees_them_first(tmp_path: Path, demo_env: dict[str, str]) -> None:
    state, port = tmp_path / "state", _free_port_range(2)
    process = subprocess.Popen(
        _spore("demo", "--nodes", "2", "--hosts", "2", "--port", str(port), "--state-dir", str(state)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if all(
                    httpx.get(f"http://127.0.0.1:{port + i}/status", timeout=2).is_success for i in (0, 1)
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the demo's hosts did not come up"
            time.sleep(0.5)
        hosts = _children(process.pid)
        assert len(hosts) == 2
        status = subprocess.run(
            _spore("status", "--state-dir", str(state)), capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stderr
        assert f"http://127.0.0.1:{port + 1}" in status.stdout and "2/2 host(s), 2 node(s)" in status.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["status"] == "ok"
        # The node runtime feeds /metrics: a finished round shows up per node.
        while "spore_rounds_total{" not in (
            text := httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        ):
            assert time.monotonic() < deadline, "no round in /metrics"
            time.sleep(1)
        families = {family.name for family in text_string_to_metric_families(text)}
        assert {
            "spore_rounds",
            "spore_node_round",
            "spore_inbox_requests",
            "spore_delivery_queue_length",
        } <= families
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "stopping 2 host(s)" in err
    assert not [pid for pid in hosts if _alive(pid)]  # no orphaned host
    down = subprocess.run(
        _spore("status", "--state-dir", str(state)), capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 1 and down.stderr.startswith("spore: error: 2 host(s) unreachable")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
