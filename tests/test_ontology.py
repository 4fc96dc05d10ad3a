"""The ontology is well-formed OWL 2, consistent under OWL RL, documented, and agrees with the code."""

from __future__ import annotations

import re
from pathlib import Path

import owlrl
import pytest
from rdflib import OWL, RDF, RDFS, Graph, Namespace, URIRef

from ontology import NAMESPACE, ONTOLOGY_IRI, ONTOLOGY_PATH, SPORE, load_ontology
from ontology.generate import declared_terms, render

ROOT = Path(__file__).resolve().parent.parent
DCTERMS = Namespace("http://purl.org/dc/terms/")
PROV = Namespace("http://www.w3.org/ns/prov#")
AS = Namespace("https://www.w3.org/ns/activitystreams#")
SCHEMA = Namespace("https://schema.org/")
MLS = Namespace("http://www.w3.org/ns/mls#")


def spore_terms(graph: Graph) -> set[URIRef]:
    return {s for s in graph.subjects(RDF.type, None) if isinstance(s, URIRef) and s.startswith(NAMESPACE)}


def test_header_names_version_licence_creator_and_description() -> None:
    graph = load_ontology()
    header = URIRef(ONTOLOGY_IRI)
    assert (header, RDF.type, OWL.Ontology) in graph
    for prop in (OWL.versionIRI, DCTERMS.license, DCTERMS.creator, DCTERMS.description):
        assert graph.value(header, prop) is not None, prop


def test_every_term_has_a_label_and_a_comment() -> None:
    graph = load_ontology()
    terms = spore_terms(graph)
    assert len(terms) > 80
    missing = sorted(
        str(t) for t in terms if graph.value(t, RDFS.label) is None or graph.value(t, RDFS.comment) is None
    )
    assert missing == []


def test_required_concepts_reuse_standard_vocabularies() -> None:
    graph = load_ontology()
    expected = {
        SPORE.FungusNode: {AS.Service, PROV.SoftwareAgent},
        SPORE.Blueprint: {PROV.Plan},
        SPORE.LearningGroup: {AS.Group},
        SPORE.ModelSnapshot: {MLS.Model, PROV.Entity},
        SPORE.TrainingRound: {MLS.Run, PROV.Activity},
        SPORE.Evaluation: {MLS.ModelEvaluation},
        SPORE.CodeModule: {SCHEMA.SoftwareSourceCode},
        SPORE.Recommendation: {SCHEMA.ItemList},
    }
    for cls, parents in expected.items():
        assert parents <= set(graph.objects(cls, RDFS.subClassOf)), cls
    for decision in (
        SPORE.SwitchGroupDecision,
        SPORE.MutationDecision,
        SPORE.SpawnDecision,
        SPORE.DefederationDecision,
    ):
        assert (decision, RDFS.subClassOf, SPORE.Decision) in graph


def test_consistent_under_owl_rl_closure() -> None:
    graph = Graph()
    graph.parse(ONTOLOGY_PATH)
    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(graph)
    errors = list(
        graph.subjects(RDF.type, URIRef("http://www.daml.org/2002/03/agents/agent-ont#ErrorMessage"))
    )
    assert errors == []
    assert list(graph.subjects(RDF.type, OWL.Nothing)) == []
    # The closure did run: an inherited superclass is now explicit.
    assert (SPORE.SwitchGroupDecision, RDFS.subClassOf, PROV.Entity) in graph


def test_generated_term_constants_match_the_ontology() -> None:
    names = declared_terms(ONTOLOGY_PATH.read_bytes())
    committed = (ROOT / "ontology" / "terms.py").read_text(encoding="utf-8")
    assert committed == render(names), "run: python -m ontology.generate"
    with pytest.raises(AttributeError):
        _ = SPORE.learningRat  # a typo in a term name fails at once


@pytest.mark.parametrize(
    "folder", ["shapes", "examples", "queries", "tests/fixtures"], ids=lambda f: f.replace("/", "-")
)
def test_files_use_only_declared_spore_terms(folder: str) -> None:
    declared = {str(t) for t in spore_terms(load_ontology())}
    used: set[str] = set()
    for path in (ROOT / folder).rglob("*"):
        # Invalid fixtures misspell terms on purpose.
        if path.suffix in {".ttl", ".rq", ".jsonld"} and "invalid" not in path.parts:
            text = path.read_text(encoding="utf-8")
            used |= {NAMESPACE + local for local in re.findall(r"\bspore:([A-Za-z_][\w]*)", text)}
    unknown = sorted(used - declared)
    assert unknown == []
