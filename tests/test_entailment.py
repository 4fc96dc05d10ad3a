"""The one-pass RDFS entailment gives the same instance types as owlrl's RDFS closure."""

from __future__ import annotations

from pathlib import Path

import owlrl
import pytest
from rdflib import RDF, BNode, Graph, Literal, URIRef

from ontology import SPORE, load_ontology
from reasoning.entailment import OntologyIndex

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted((ROOT / "examples" / "blueprints").glob("*.ttl")) + sorted(
    (ROOT / "tests" / "fixtures" / "shapes" / "valid").glob("*.ttl")
)


def instance_facts(graph: Graph, subjects: set) -> set:
    """Triples about the data's own resources that link to resources: what entailment adds for instances.

    Literal-valued triples are left out: owlrl adds value-equal copies of literals in other datatypes
    (5 for 5.0), which no shape depends on.
    """
    return {(s, p, o) for s, p, o in graph if s in subjects and not isinstance(o, Literal)}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_same_consequences_as_owlrl_rdfs_closure(path: Path) -> None:
    data = Graph().parse(path)
    resources = {n for n in set(data.subjects()) | set(data.objects()) if isinstance(n, URIRef | BNode)}
    resources -= {n for n in resources if isinstance(n, URIRef) and n.startswith(str(SPORE))}

    ours = OntologyIndex.from_graph(load_ontology()).closure(data)

    reference = Graph()
    for triple in data:
        reference.add(triple)
    for triple in load_ontology():
        reference.add(triple)
    owlrl.DeductiveClosure(owlrl.RDFS_Semantics).expand(reference)

    expected = instance_facts(reference, resources)
    # owlrl also types every resource as rdfs:Resource: an axiomatic triple no shape can use.
    expected = {t for t in expected if t[2] != URIRef("http://www.w3.org/2000/01/rdf-schema#Resource")}
    assert instance_facts(ours, resources) == expected


def test_domain_range_and_subclass_rules_by_hand() -> None:
    index = OntologyIndex.from_graph(load_ontology())
    node, config = URIRef("http://example.org/b"), BNode()
    entailed = set(index.entailed([(node, SPORE.trains, config)]))
    assert (node, RDF.type, SPORE.Blueprint) in entailed  # rdfs2, domain
    assert (config, RDF.type, SPORE.ModelConfiguration) in entailed  # rdfs3, range
    prov_plan = URIRef("http://www.w3.org/ns/prov#Plan")
    assert (node, RDF.type, prov_plan) in entailed  # rdfs9, Blueprint ⊑ prov:Plan
    linked = URIRef("http://example.org/c")
    assert (linked, RDF.type, SPORE.ModelConfiguration) not in set(
        index.entailed([(node, SPORE.trains, linked)], type_iris_by_range=False)
    )
