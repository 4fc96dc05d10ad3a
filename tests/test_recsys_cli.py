"""``spore recommend`` as a person runs it: a real process on a synthetic store made by ``spore data``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import Graph, URIRef

from ontology import SPORE

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://w3id.org/spore/data/synth/3/"

pytestmark = pytest.mark.slow


def spore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recommend") / "store"
    made = spore(
        "data", "synth", "--listeners", "40", "--artists", "150", "--seed", "3", "--store", str(directory)
    )
    assert made.returncode == 0, made.stderr
    return directory


@pytest.fixture(scope="module")
def snapshot(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("snapshots")
    result = spore(
        "recommend",
        "--store",
        str(store),
        "--listener",
        f"{BASE}listener/1",
        "--epochs",
        "3",
        "--save-snapshot",
        str(directory),
    )
    assert result.returncode == 0, result.stderr
    [path] = directory.glob("*.safetensors")
    assert path.with_suffix(".ttl").is_file()
    return path


def test_listener_table_lists_k_ranked_artists(store: Path, snapshot: Path) -> None:
    result = spore(
        "recommend",
        "--store",
        str(store),
        "--listener",
        f"{BASE}listener/1",
        "--snapshot",
        str(snapshot),
        "-k",
        "4",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"4 artists for listener <{BASE}listener/1> (snapshot {snapshot.stem[:12]}")
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3", "4"]


def test_liked_artists_give_a_valid_jsonld_recommendation(store: Path, snapshot: Path) -> None:
    from shapes.validation import default_validator

    names = spore(
        "query",
        "SELECT ?n WHERE { GRAPH ?g { ?a <https://schema.org/name> ?n } } ORDER BY ?n LIMIT 2",
        "--store",
        str(store),
        "--format",
        "csv",
    )
    first, second = names.stdout.strip().splitlines()[1:3]
    result = spore(
        "recommend",
        "--store",
        str(store),
        "--artists",
        f"{first.upper()}, {second}",
        "--snapshot",
        str(snapshot),
        "--format",
        "jsonld",
        "-k",
        "5",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["@context"] == "https://w3id.org/spore/context.jsonld"
    assert [item["position"] for item in document["itemListElement"]] == [1, 2, 3, 4, 5]
    graph = Graph().parse(data=_inline_context(document), format="json-ld")
    [recommendation] = graph.subjects(predicate=SPORE.madeWith)
    assert len(set(graph.objects(recommendation, SPORE.seedArtist))) == 2
    assert default_validator().validate(graph).conforms


def _inline_context(document: dict) -> str:
    from ontology import load_context

    return json.dumps({**document, "@context": load_context()["@context"]})


def test_typo_in_an_artist_name_exits_1_with_a_suggestion(store: Path, snapshot: Path) -> None:
    result = spore(
        "recommend", "--store", str(store), "--artists", "Zzqx Nobody", "--snapshot", str(snapshot)
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("spore: error: unknown artist: 'Zzqx Nobody'")


def test_tampered_snapshot_exits_2_and_is_refused(store: Path, snapshot: Path, tmp_path: Path) -> None:
    tampered = tmp_path / snapshot.name
    data = bytearray(snapshot.read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    result = spore(
        "recommend", "--store", str(store), "--listener", f"{BASE}listener/1", "--snapshot", str(tampered)
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "refusing it" in line and "Traceback" not in result.stderr


def test_unknown_listener_and_missing_store_are_one_line_errors(store: Path, tmp_path: Path) -> None:
    unknown = spore("recommend", "--store", str(store), "--listener", f"{BASE}listener/999999")
    assert unknown.returncode == 1 and "no listener" in unknown.stderr
    missing = spore("recommend", "--store", str(tmp_path / "nothing"), "--artists", "X")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    both = spore("recommend", "--store", str(store))
    assert both.returncode == 2 and "exactly one of --listener" in both.stderr


def test_recommendation_ttl_card_beside_the_snapshot_passes_the_shapes(snapshot: Path) -> None:
    from shapes.validation import default_validator

    card = Graph().parse(snapshot.with_suffix(".ttl"), format="turtle")
    [subject] = card.subjects(predicate=SPORE.sha256)
    assert isinstance(subject, URIRef)
    assert str(card.value(subject, SPORE.sha256)) == snapshot.stem
    assert default_validator().validate(card).conforms
