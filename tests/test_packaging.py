"""An installed spore finds its ontology, shapes and queries without the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from pathlib import Path
import ontology, shapes, queries
site = Path(sys.argv[1]).resolve()
for module in (ontology, shapes, queries):
    assert Path(module.__file__).resolve().is_relative_to(site), module.__file__
assert ontology.ONTOLOGY_PATH.is_file() and ontology.CONTEXT_PATH.is_file()
assert len(shapes.shape_files()) >= 5
assert "graph-sizes" in queries.names()
from agents.cli import main
main(["validate", sys.argv[2]])
"""


@pytest.mark.slow
def test_wheel_ships_ontology_shapes_and_queries(tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = wheels.glob("spore-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
        check=True,
        cwd=tmp_path,
    )
    blueprint = tmp_path / "node.ttl"
    blueprint.write_bytes((ROOT / "examples" / "blueprints" / "kg_scout.ttl").read_bytes())
    # Run from an empty directory with the installed copy first on the path: no source tree in sight.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(site), str(blueprint)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node.ttl: OK" in result.stdout
