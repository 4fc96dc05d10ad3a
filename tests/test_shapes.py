"""The shapes accept valid SPORE data and reject each realistic mistake with the right message."""

from __future__ import annotations

import re
from pathlib import Path

import pyshacl
import pytest
from rdflib import RDF, Graph

from knowledge.documents import UnreadableDocument, load_document
from ontology import SPORE
from shapes import load_shapes
from shapes.validation import Entailment, Validator, default_validator

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "examples" / "blueprints"
FIXTURES = ROOT / "tests" / "fixtures" / "shapes"

VALID = sorted(BLUEPRINTS.glob("*.ttl")) + sorted((FIXTURES / "valid").glob("*.ttl"))
INVALID = sorted((BLUEPRINTS / "invalid").glob("*.ttl")) + sorted((FIXTURES / "invalid").glob("*.ttl"))


def expected_message(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{path.name} must say what it expects in a '# expect:' line"
    return match.group(1).strip()


def test_shapes_conform_to_shacl_shacl() -> None:
    conforms, _, text = pyshacl.validate(load_shapes(), shacl_graph=load_shapes(), meta_shacl=True)
    assert conforms, text


def test_there_are_at_least_three_valid_blueprints_that_differ() -> None:
    architectures = set()
    for path in sorted(BLUEPRINTS.glob("*.ttl")):
        graph = load_document(str(path)).graph
        architectures |= set(graph.objects(None, SPORE.architecture))
    assert len(list(BLUEPRINTS.glob("*.ttl"))) >= 3
    assert len(architectures) >= 3


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_documents_conform(path: Path) -> None:
    document = load_document(str(path))
    report = default_validator().validate(document.graph, base_iri=document.base_iri)
    assert report.conforms, report.lines()
    assert report.violations == ()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_each_invalid_document_is_rejected_with_its_message(path: Path) -> None:
    expected = expected_message(path)
    try:
        document = load_document(str(path))
    except UnreadableDocument as error:
        assert expected in str(error)
        return
    report = default_validator().validate(document.graph, base_iri=document.base_iri)
    assert not report.conforms
    assert any(expected in line for line in report.lines()), report.lines()


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(
        UnreadableDocument, match=r"broken_syntax.ttl: Turtle syntax error at line 9, column 5"
    ):
        load_document(str(BLUEPRINTS / "invalid" / "broken_syntax.ttl"))


def test_violation_lines_name_focus_path_message_and_value() -> None:
    document = load_document(str(BLUEPRINTS / "invalid" / "threshold_out_of_range.ttl"))
    report = default_validator().validate(document.graph, base_iri=document.base_iri)
    [violation] = report.violations
    assert violation.focus == "<#blueprint> spore:policy [ ]"
    assert violation.path == "spore:switchMargin"
    assert violation.value == "5.0"
    assert violation.line().endswith("(found: 5.0)")


def test_typo_gets_a_suggestion() -> None:
    document = load_document(str(BLUEPRINTS / "invalid" / "typo_property.ttl"))
    report = default_validator().validate(document.graph, base_iri=document.base_iri)
    assert any("did you mean spore:learningRate?" in line for line in report.lines())


def untyped_blueprint() -> Graph:
    """A blueprint whose author left out every rdf:type, and gave it an out-of-range margin."""
    graph = load_document(str(BLUEPRINTS / "invalid" / "threshold_out_of_range.ttl")).graph
    graph.remove((None, RDF.type, None))
    return graph


def test_rdfs_entailment_types_untyped_resources_so_shapes_apply() -> None:
    validator = Validator()
    # Without entailment nothing is a spore:Blueprint or spore:Policy, so no shape applies at all.
    assert validator.validate(untyped_blueprint(), entailment=Entailment.NONE).conforms
    # rdfs:domain of spore:nodeName and rdfs:range of spore:policy make them so, and the error shows.
    for entailment in (Entailment.RDFS, Entailment.OWLRL):
        report = validator.validate(untyped_blueprint(), entailment=entailment)
        assert not report.conforms
        assert any("spore:switchMargin" in line for line in report.lines())


def test_subclass_instances_are_checked_by_the_superclass_shape() -> None:
    graph = load_document(str(FIXTURES / "invalid" / "decision_without_evidence.ttl")).graph
    # The fixture's decision is typed spore:SwitchGroupDecision only; the Decision shape must apply.
    assert (None, RDF.type, SPORE.Decision) not in graph
    assert not default_validator().validate(graph).conforms


def test_validation_does_not_change_the_callers_graph() -> None:
    graph = untyped_blueprint()
    before = len(graph)
    default_validator().validate(graph)
    assert len(graph) == before


def test_data_read_back_from_the_store_still_validates() -> None:
    """Plain strings must stay plain on the way out of the store, or sh:in ("safetensors") fails."""
    from pyoxigraph import NamedNode, RdfFormat

    from knowledge.store import EmbeddedStore, to_rdflib

    graph = NamedNode("http://127.0.0.1:8000/nodes/jazz/graphs/models")
    with EmbeddedStore() as store:
        store.load(
            (FIXTURES / "valid" / "snapshot_card.ttl").read_bytes(), format=RdfFormat.TURTLE, graph=graph
        )
        assert default_validator().validate(to_rdflib(store, graph)).conforms
