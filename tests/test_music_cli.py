"""``spore data`` as a person runs it: a real process, files written here, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from music_samples import write_kgcn, write_lastfm
from pyoxigraph import Store

ROOT = Path(__file__).resolve().parent.parent


def spore(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_import_lastfm_reports_counts_and_skips_then_describe(tmp_path: Path) -> None:
    lastfm, kgcn = write_lastfm(tmp_path / "lastfm"), write_kgcn(tmp_path / "kgcn")
    store = tmp_path / "store"
    result = spore("data", "import", "lastfm", str(lastfm), "--freebase", str(kgcn), "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "  listenings: 8" in result.stdout
    assert "  user_artists.dat: skipped 1 (unknown artist)" in result.stdout
    assert "  tags.dat: re-decoded 1" in result.stdout
    assert "Traceback" not in result.stderr
    described = spore("data", "describe", "--store", str(store))
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith("4 listeners, 8 artists, 8 listener-artist interactions")


def test_synth_output_and_shard(tmp_path: Path) -> None:
    output = tmp_path / "music.nq"
    result = spore(
        "data", "synth", "--listeners", "30", "--seed", "4", "--shard", "1/3", "--output", str(output)
    )
    assert result.returncode == 0, result.stderr
    assert "  listeners on this node: 10" in result.stdout
    store = Store()
    store.load(path=str(output))
    persons = store.query("SELECT (COUNT(*) AS ?n) { GRAPH ?g { ?p a <https://schema.org/Person> } }")
    assert int(next(iter(persons))["n"].value) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "import", "lastfm", "{tmp}/nowhere"], "spore: error: not a directory: "),
        (["data", "import", "lastfm", "{tmp}/partial"], "spore: error: missing file in "),
        (
            ["data", "synth", "--listeners", "5", "--store", "{tmp}/file/store"],
            "spore: error: cannot write the store",
        ),
        (
            ["data", "synth", "--listeners", "5", "--shard", "2/2", "--output", "{tmp}/x.nq"],
            "Invalid value for --shard",
        ),
        (["data", "describe", "--store", "{tmp}/empty"], "spore: error: cannot read the store"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    partial = write_lastfm(tmp_path / "partial")
    (partial / "user_friends.dat").unlink()
    (tmp_path / "file").write_text("not a directory")
    result = spore(*[arg.format(tmp=tmp_path) for arg in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
