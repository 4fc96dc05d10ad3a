"""``spore status`` and what it builds on: /status and /metrics parsed, summaries, the table, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents import watch
from agents.cli import cli
from agents.demo import plan_demo, save_plan

G_JAZZ = "http://127.0.0.1:8001/nodes/a/groups/jazz"
G_ROCK = "http://127.0.0.1:8002/nodes/c/groups/rock"


def node(name: str, round_: int | None, group: str | None, recall: float | None) -> dict:
    """A node record as the node runtime's /status writes it (agents/hosting.py, NodeHost.status)."""
    return {
        "name": name,
        "actor": f"http://127.0.0.1:8001/nodes/{name}",
        "round": round_,
        "group": None if group is None else {"iri": group, "hashtag": "#jazz", "members": []},
        "last_round": None if recall is None else {"round": round_, "metrics": {"recall@20": recall}},
    }


METRICS = """# HELP spore_delivery_queue_length Deliveries waiting
# TYPE spore_delivery_queue_length gauge
spore_delivery_queue_length 3.0
# HELP spore_activities_published Activities in each local actor's outbox
# TYPE spore_activities_published counter
spore_activities_published_total{actor="a"} 5.0
spore_activities_published_total{actor="b"} 7.0
"""


def test_parse_status_takes_the_slowest_round_and_the_mean_recall() -> None:
    document = {
        "host": "http://127.0.0.1:8001",
        "round": 4,
        "nodes": [node("a", 4, G_JAZZ, 0.2), node("b", 3, G_ROCK, 0.1), node("z", None, None, None)],
    }
    status = watch.parse_status("http://127.0.0.1:8001", document, watch.parse_metrics(METRICS))
    assert status.nodes == ("a", "b", "z") and status.grouped == 2
    assert status.groups == {G_JAZZ, G_ROCK}
    assert status.round == 3  # b has finished only three; z is in no group yet and does not count
    assert status.recall_at_20 == pytest.approx(0.15)
    assert status.activities == 12 and status.delivery_queue == 3


def test_parse_status_of_a_host_that_has_not_started() -> None:
    status = watch.parse_status("u", {"nodes": [node("a", None, None, None)], "round": None}, {})
    assert status.round is None and status.recall_at_20 is None and status.groups == frozenset()
    # A host whose nodes are in no group (e.g. blocked by their peers) does not hold the round back.
    others = watch.HostStatus("h2", ("b",), 1, frozenset({G_JAZZ}), 5, 0.2, 3, 0)
    assert watch.summarise([status, others]).round == 5


def test_summary_counts_groups_across_hosts_once_and_weights_recall_by_nodes() -> None:
    one = watch.HostStatus("h1", ("a", "b", "c"), 3, frozenset({G_JAZZ}), 2, 0.3, 10, 0)
    two = watch.HostStatus("h2", ("d",), 1, frozenset({G_JAZZ, G_ROCK}), 1, 0.1, 4, 2)
    down = watch.Unreachable("h3", "refused")
    summary = watch.summarise([one, two, down])
    assert (summary.hosts, summary.reachable, summary.nodes, summary.groups) == (3, 2, 4, 2)
    assert summary.grouped == 4
    assert summary.round == 1 and summary.activities == 14 and summary.delivery_queue == 2
    assert summary.recall_at_20 == pytest.approx((0.3 * 3 + 0.1) / 4)
    line = watch.progress_line(summary, 12.0)
    assert (
        "round   1" in line and "groups 2" in line and "0.2500" in line and "1 host(s) not answering" in line
    )


def test_table_aligns_columns_and_marks_unreachable_hosts() -> None:
    rows = watch.status_rows(
        [
            watch.HostStatus("http://h1", ("a",), 1, frozenset({G_JAZZ}), 2, None, 1, 0),
            watch.Unreachable("http://h2", "x"),
        ]
    )
    table = watch.format_table(watch.STATUS_HEADERS, rows).splitlines()
    assert table[0].split() == [
        "host",
        "nodes",
        "in",
        "a",
        "group",
        "groups",
        "round",
        "Recall@20",
        "activities",
        "delivery",
        "queue",
    ]
    assert table[2].split() == ["http://h1", "1", "1", "1", "2", "-", "1", "0"]
    assert table[3].endswith("unreachable")
    assert table[2].index(" 1 ") + 1 == table[0].index("nodes")  # columns line up under their headers


def test_status_exits_1_with_one_line_when_a_host_is_unreachable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agents", "status", "http://127.0.0.1:9", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(
        "spore: error: 1 host"
    )
    assert "http://127.0.0.1:9" in done.stdout and "unreachable" in done.stdout


def test_status_without_urls_reads_the_demo_plan_and_refuses_when_there_is_none(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["status", "--state-dir", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no demo in" in missing.output
    plan = plan_demo(tmp_path, ["a", "b"], hosts=2, port=40101, music=None, round_seconds=1.0)
    save_plan(tmp_path, plan)
    found = runner.invoke(cli, ["status", "--state-dir", str(tmp_path), "--timeout", "1"])
    assert found.exit_code == 1
    assert "http://127.0.0.1:40101" in found.output and "http://127.0.0.1:40102" in found.output


def test_status_refuses_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(cli, ["status", "ftp://example.org"])
    assert result.exit_code == 2 and "not an http(s) URL" in result.output


def test_parse_decisions_strips_the_namespace_drops_malformed_rows_and_lists_each_decision_once() -> None:
    def row(iri: str, node: str, round_: str | None, kind: str, why: str) -> dict:
        cells = {"decision": iri, "node": node, "type": kind, "explanation": why}
        if round_ is not None:
            cells["round"] = round_
        return {key: {"type": "literal", "value": value} for key, value in cells.items()}

    a = "http://127.0.0.1:8001/nodes/a"
    switch = row(f"{a}/decisions/3-switch", a, "3", f"{watch.SPORE_NS}SwitchDecision", "#rock is better")
    results = {
        "results": {
            "bindings": [
                switch,
                switch,  # one decision joined with two chosen options: one line
                row(f"{a}/decisions/x", a, "soon", f"{watch.SPORE_NS}MutateDecision", "lr x 1.5"),
                {"decision": {"value": f"{a}/decisions/no-node"}},  # no node, no type: skipped
                "not a row",
            ]
        }
    }
    found = watch.parse_decisions(results)
    assert [(d.iri.rsplit("/", 1)[-1], d.round, d.kind) for d in found] == [
        ("x", None, "MutateDecision"),
        ("3-switch", 3, "SwitchDecision"),
    ]
    assert watch.decision_text(found[1]) == "a decided in round 3 (SwitchDecision): #rock is better"
    assert watch.decision_text(found[0]) == "a decided (MutateDecision): lr x 1.5"
    assert watch.parse_decisions({"results": "broken"}) == []
