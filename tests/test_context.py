"""The JSON-LD context compacts SPORE data readably and round-trips it without loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyld import jsonld
from rdflib import Graph
from rdflib.compare import isomorphic

from ontology import NAMESPACE, load_context, load_ontology
from shapes.validation import default_validator

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    ROOT / "examples/blueprints/jazz_explorer.ttl",
    ROOT / "examples/blueprints/steady_mf.ttl",
    ROOT / "tests/fixtures/shapes/valid/snapshot_card.ttl",
    ROOT / "tests/fixtures/shapes/valid/decision.ttl",
    ROOT / "tests/fixtures/shapes/valid/recommendation.ttl",
]


def expand_curie(value: str, context: dict[str, object]) -> str:
    prefix, _, local = value.partition(":")
    namespace = context.get(prefix)
    return f"{namespace}{local}" if isinstance(namespace, str) else value


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_round_trip_through_the_context(path: Path) -> None:
    original = Graph().parse(path, publicID="http://example.org/doc")
    nquads = original.serialize(format="nt")
    document = jsonld.from_rdf(nquads, {"format": "application/n-quads"})
    compacted = jsonld.compact(document, load_context())

    text = json.dumps({key: value for key, value in compacted.items() if key != "@context"})
    assert '"https://w3id.org/spore/ns#' not in text  # everything SPORE reads as short names
    round_tripped = Graph().parse(
        data=jsonld.to_rdf(compacted, {"format": "application/n-quads"}), format="nt"
    )
    assert isomorphic(original, round_tripped)
    # The compacted JSON-LD is still valid SPORE data.
    assert default_validator().validate(round_tripped).conforms


def test_compaction_is_readable() -> None:
    graph = Graph().parse(SAMPLES[0], publicID="http://example.org/doc")
    document = jsonld.from_rdf(graph.serialize(format="nt"), {"format": "application/n-quads"})
    compacted = jsonld.compact(document, load_context())
    nodes = compacted["@graph"]
    blueprint = next(n for n in nodes if n.get("@type") == "Blueprint")
    assert blueprint["nodeName"] == "jazz_explorer"
    assert sorted(blueprint["seeksHashtag"]) == ["#bebop", "#jazz"]
    config = next(n for n in nodes if n.get("@type") == "ModelConfiguration")
    assert config["architecture"] == "LightGCN"
    assert config["learningRate"] == "0.001"


def test_every_context_term_names_a_declared_or_reused_iri() -> None:
    context = load_context()["@context"]
    declared = {str(s) for s in load_ontology().subjects()}
    for term, definition in context.items():
        iri = definition if isinstance(definition, str) else definition["@id"]
        full = expand_curie(iri, context)
        if full.endswith(("#", "/")):
            continue  # a prefix
        if full.startswith(NAMESPACE):
            assert full in declared, term
        else:
            assert full.startswith("http"), term
