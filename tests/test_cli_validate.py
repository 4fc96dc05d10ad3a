"""``spore validate`` as a person runs it: real process, real files, a real HTTP server for URLs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rdflib import Graph, Namespace

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "examples" / "blueprints"
SH = Namespace("http://www.w3.org/ns/shacl#")


def spore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_valid_examples_exit_0() -> None:
    result = spore("validate", *map(str, sorted(BLUEPRINTS.glob("*.ttl"))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == len(list(BLUEPRINTS.glob("*.ttl")))


def test_invalid_example_exits_1_with_one_line_per_violation() -> None:
    result = spore("validate", str(BLUEPRINTS / "invalid" / "threshold_out_of_range.ttl"))
    assert result.returncode == 1
    [line] = result.stdout.strip().splitlines()
    assert "spore:switchMargin" in line and "(found: 5.0)" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("does/not/exist.ttl", "no such file"),
        ("examples", "is a directory"),
        (str(BLUEPRINTS / "invalid" / "broken_syntax.ttl"), "syntax error at line 9, column 5"),
        ("http://127.0.0.1:9/blueprint.ttl", "unreachable"),
    ],
)
def test_unreadable_input_exits_2_with_a_one_line_reason(argument: str, reason: str) -> None:
    result = spore("validate", argument)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert reason in line
    assert "Traceback" not in result.stderr


def test_unreadable_wins_over_invalid() -> None:
    result = spore("validate", str(BLUEPRINTS / "invalid" / "typo_property.ttl"), "missing.ttl")
    assert result.returncode == 2
    assert "did you mean spore:learningRate?" in result.stdout


def test_turtle_format_is_a_shacl_report() -> None:
    result = spore("validate", "--format", "turtle", str(BLUEPRINTS / "invalid" / "malformed_hash.ttl"))
    assert result.returncode == 1
    report = Graph().parse(data=result.stdout, format="turtle")
    assert len(list(report.subjects(SH.conforms, None))) == 1
    assert Namespace("https://w3id.org/spore/ns#").sha256 in set(report.objects(None, SH.resultPath))


def test_json_format_is_json_ld_per_source() -> None:
    result = spore("validate", "--format", "json", str(BLUEPRINTS / "jazz_explorer.ttl"))
    assert result.returncode == 0
    [entry] = json.loads(result.stdout)
    assert entry["source"].endswith("jazz_explorer.ttl")
    report = Graph().parse(data=json.dumps(entry["report"]), format="json-ld")
    assert (None, SH.conforms, None) in report


@pytest.fixture()
def served_examples() -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(BLUEPRINTS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_validates_urls(served_examples: str) -> None:
    ok = spore("validate", f"{served_examples}/kg_scout.ttl")
    assert ok.returncode == 0, ok.stderr
    bad = spore("validate", f"{served_examples}/invalid/malformed_hash.ttl")
    assert bad.returncode == 1
    missing = spore("validate", f"{served_examples}/nothing.ttl")
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr


def test_help_lists_exit_codes() -> None:
    result = spore("validate", "--help")
    assert result.returncode == 0
    assert "Exit status" in result.stdout
