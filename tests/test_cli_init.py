"""``spore init`` writes blueprints that validate, and refuses what would not."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import Literal

from agents.blueprint_writer import module_sha256
from agents.cli import cli
from knowledge.documents import load_document
from ontology import SPORE
from shapes.validation import default_validator


@pytest.mark.parametrize("architecture", ["lightgcn", "kg-lightgcn", "mf"])
def test_written_blueprint_validates_and_pins_the_installed_module(tmp_path: Path, architecture: str) -> None:
    target = tmp_path / "node.ttl"
    result = CliRunner().invoke(
        cli,
        [
            "init",
            "jazz_cat",
            "--hashtag",
            "#jazz",
            "--hashtag",
            "bebop",
            "--architecture",
            architecture,
            "-o",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    document = load_document(str(target))
    assert default_validator().validate(document.graph).conforms
    graph = document.graph
    assert set(graph.objects(None, SPORE.seeksHashtag)) == {Literal("#jazz"), Literal("#bebop")}
    hashes = {str(h) for h in graph.objects(None, SPORE.sha256)}
    python_module = "models.baselines" if architecture == "mf" else "models.lightgcn"
    assert hashes == {module_sha256(python_module)}


def test_invalid_name_is_refused_with_the_shape_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "Bad Name", "--hashtag", "#x", "-o", str(tmp_path / "x.ttl")])
    assert result.exit_code == 1
    assert "spore:nodeName" in result.output
    assert not (tmp_path / "x.ttl").exists()


def test_does_not_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "node.ttl"
    target.write_text("keep me", encoding="utf-8")
    result = CliRunner().invoke(cli, ["init", "node", "--hashtag", "#x", "-o", str(target)])
    assert result.exit_code == 1
    assert target.read_text(encoding="utf-8") == "keep me"
    forced = CliRunner().invoke(cli, ["init", "node", "--hashtag", "#x", "-o", str(target), "--force"])
    assert forced.exit_code == 0
    assert "spore:Blueprint" in target.read_text(encoding="utf-8")
