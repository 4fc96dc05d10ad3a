"""The SPARQL entailment rules give owlrl's consequences, reach a fixpoint, and touch only their graph."""

from __future__ import annotations

from pathlib import Path

import owlrl
import pytest
import rdflib
from pyoxigraph import BlankNode, Literal, NamedNode, Quad, RdfFormat, parse

from knowledge.store import EmbeddedStore, KnowledgeStore
from ontology import NAMESPACE, load_ontology
from reasoning.rules import ONTOLOGY_GRAPH, entail, load_ontology_graph

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted((ROOT / "examples" / "blueprints").glob("*.ttl")) + sorted(
    (ROOT / "tests" / "fixtures" / "shapes" / "valid").glob("*.ttl")
)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
TYPE = NamedNode(RDF + "type")
SUB_CLASS_OF = NamedNode(RDFS + "subClassOf")
SUB_PROPERTY_OF = NamedNode(RDFS + "subPropertyOf")
DOMAIN = NamedNode(RDFS + "domain")
RANGE = NamedNode(RDFS + "range")


def spore(name: str) -> NamedNode:
    return NamedNode(NAMESPACE + name)


def ex(name: str) -> NamedNode:
    return NamedNode("http://example.org/" + name)


NODE = "http://127.0.0.1:8000/nodes/ada/graphs/"
BLUEPRINT, CATALOGUE, PRIVATE = (NamedNode(NODE + kind) for kind in ("blueprint", "catalogue", "private"))
INFERRED = NamedNode(NODE + "inferred")
PROV_PLAN = NamedNode("http://www.w3.org/ns/prov#Plan")
SCHEMA = "https://schema.org/"


def add(store: KnowledgeStore, graph: NamedNode, *triples: tuple) -> None:
    store.extend(Quad(s, p, o, graph) for s, p, o in triples)


def inferred(store: KnowledgeStore, graph: NamedNode = INFERRED) -> set[tuple]:
    triples = store.query("CONSTRUCT WHERE { ?s ?p ?o }", default_graph=graph)
    assert not isinstance(triples, bool)
    return {(t.subject, t.predicate, t.object) for t in triples}  # type: ignore[union-attr]


# ---- against owlrl on the ontology's own examples ----


def as_rdflib(store: KnowledgeStore, *graphs: NamedNode) -> list[rdflib.Graph]:
    """The graphs as rdflib graphs with one blank-node map, so that blank nodes shared between them stay
    shared (two ``to_rdflib`` calls would name them apart)."""
    blank: dict[str, rdflib.BNode] = {}

    def term(node: NamedNode | BlankNode | Literal) -> rdflib.term.Node:
        if isinstance(node, NamedNode):
            return rdflib.URIRef(node.value)
        if isinstance(node, BlankNode):
            return blank.setdefault(node.value, rdflib.BNode())
        datatype = None if node.language else rdflib.URIRef(node.datatype.value)
        return rdflib.Literal(node.value, lang=node.language, datatype=datatype)

    result = []
    for graph in graphs:
        converted = rdflib.Graph()
        for quad in store.query("CONSTRUCT WHERE { ?s ?p ?o }", default_graph=graph):  # type: ignore[union-attr]
            converted.add((term(quad.subject), term(quad.predicate), term(quad.object)))
        result.append(converted)
    return result


def closures(
    store: KnowledgeStore, asserted: list[NamedNode], semantics: type = owlrl.RDFS_Semantics
) -> tuple[rdflib.Graph, rdflib.Graph, set]:
    """(ours, owlrl's) closures of the asserted graphs with the ontology, and the data's own resources."""
    *parts, consequences = as_rdflib(store, *asserted, INFERRED)
    data = rdflib.Graph()
    for part in parts:
        for triple in part:
            data.add(triple)
    resources = {n for n in set(data.subjects()) | set(data.objects()) if not isinstance(n, rdflib.Literal)}
    resources -= set(load_ontology().subjects())  # the ontology's terms are not the data's resources
    ours = rdflib.Graph()
    reference = rdflib.Graph()
    for triple in data:
        ours.add(triple)
        reference.add(triple)
    for triple in consequences:
        ours.add(triple)
    for triple in load_ontology():
        reference.add(triple)
    owlrl.DeductiveClosure(semantics).expand(reference)
    return ours, reference, resources


def instance_facts(graph: rdflib.Graph, subjects: set) -> set:
    """Triples about the data's own resources that link to resources (as tests/test_entailment.py).

    Left out, as owlrl's axiomatic noise: literal objects (owlrl adds value-equal copies in other
    datatypes), reflexive sub-class/sub-property triples (rdfs6/10) and the types that RDF's and
    RDFS's axiomatic triples give (rdfs:Resource, rdf:Property, rdfs:Class) and OWL RL's owl:Thing
    for every individual (and owl:sameAs to itself): the rules read the ontology's schema, not the
    vocabularies' own.
    """
    axiomatic = {
        rdflib.URIRef(RDFS + "Resource"),
        rdflib.URIRef(RDF + "Property"),
        rdflib.URIRef(RDFS + "Class"),
        rdflib.URIRef("http://www.w3.org/2002/07/owl#Thing"),
    }
    return {
        (s, p, o)
        for s, p, o in graph
        if s in subjects and not isinstance(o, rdflib.Literal) and o not in axiomatic and s != o
    }


@pytest.mark.parametrize("semantics", [owlrl.RDFS_Semantics, owlrl.OWLRL_Semantics], ids=["rdfs", "owl-rl"])
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_same_consequences_as_owlrl(path: Path, semantics: type) -> None:
    store = EmbeddedStore()
    with path.open("rb") as turtle:
        triples = list(parse(turtle, format=RdfFormat.TURTLE, base_iri=path.as_uri()))
    add(store, BLUEPRINT, *((t.subject, t.predicate, t.object) for t in triples))

    result = entail(store, graphs=[BLUEPRINT], into=INFERRED)
    ours, reference, resources = closures(store, [BLUEPRINT], semantics)
    expected = instance_facts(reference, resources)
    assert instance_facts(ours, resources) == expected
    assert result.triples > 0  # the example does entail something


def test_same_consequences_as_owlrl_on_a_node_with_data_schema() -> None:
    """Several graphs, a schema declared in the data (as the catalogue does) and triples whose
    consequences another graph asserts: union of asserted and inferred is owlrl's closure."""
    store = EmbeddedStore()
    origin = ex("music.artist.origin")
    add(
        store,
        CATALOGUE,
        (origin, SUB_PROPERTY_OF, spore("knowledgeRelation")),
        (ex("artist/1"), TYPE, NamedNode(SCHEMA + "MusicGroup")),
        (ex("artist/1"), origin, ex("entity/9")),
        (ex("Scene"), SUB_CLASS_OF, spore("KnowledgeEntity")),
        (ex("entity/9"), TYPE, ex("Scene")),
    )
    add(
        store,
        PRIVATE,
        (ex("listening/1"), spore("listener"), ex("user/1")),
        (ex("listening/1"), spore("artist"), ex("artist/1")),
        (
            ex("listening/1"),
            spore("playCount"),
            Literal("3", datatype=NamedNode(RDF[:-1] + "XMLSchema#integer")),
        ),
    )
    entail(store, graphs=[CATALOGUE, PRIVATE], into=INFERRED)
    ours, reference, resources = closures(store, [CATALOGUE, PRIVATE])
    assert instance_facts(ours, resources) == instance_facts(reference, resources)
    # The artist's type follows from spore:artist's range but the catalogue asserts it: not entailed.
    assert (ex("artist/1"), TYPE, NamedNode(SCHEMA + "MusicGroup")) not in inferred(store)


# ---- each rule on a small graph ----


def test_prp_dom_and_cax_sco() -> None:
    store = EmbeddedStore()
    add(store, BLUEPRINT, (ex("b"), spore("trains"), ex("config")))
    entail(store, graphs=[BLUEPRINT], into=INFERRED)
    facts = inferred(store)
    assert (ex("b"), TYPE, spore("Blueprint")) in facts  # prp-dom
    assert (ex("b"), TYPE, PROV_PLAN) in facts  # cax-sco on the domain's type


def test_prp_rng_types_resources_but_not_literals() -> None:
    store = EmbeddedStore()
    config = BlankNode()
    add(
        store,
        BLUEPRINT,
        (ex("b"), spore("trains"), config),
        (
            config,
            spore("embeddingSize"),
            Literal("64", datatype=NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
        ),
    )
    entail(store, graphs=[BLUEPRINT], into=INFERRED)
    facts = inferred(store)
    assert (config, TYPE, spore("ModelConfiguration")) in facts
    assert all(not isinstance(s, Literal) for s, _, _ in facts)


def test_prp_spo1_from_the_ontology_and_from_the_data() -> None:
    store = EmbeddedStore()
    relation = ex("music.artist.genre")
    add(
        store,
        CATALOGUE,
        (relation, SUB_PROPERTY_OF, spore("knowledgeRelation")),
        (ex("artist/1"), relation, ex("genre/jazz")),
        (ex("listening/1"), spore("listener"), ex("user/1")),
    )
    entail(store, graphs=[CATALOGUE], into=INFERRED)
    facts = inferred(store)
    assert (ex("artist/1"), spore("knowledgeRelation"), ex("genre/jazz")) in facts
    assert (ex("listening/1"), NamedNode(SCHEMA + "agent"), ex("user/1")) in facts


def test_scm_sco_and_scm_spo_close_long_chains() -> None:
    store = EmbeddedStore()
    classes = [ex(f"C{i}") for i in range(6)]
    properties = [ex(f"p{i}") for i in range(6)]
    add(
        store,
        CATALOGUE,
        *((classes[i], SUB_CLASS_OF, classes[i + 1]) for i in range(5)),
        *((properties[i], SUB_PROPERTY_OF, properties[i + 1]) for i in range(5)),
        (ex("x"), TYPE, classes[0]),
        (ex("x"), properties[0], ex("y")),
    )
    entail(store, graphs=[CATALOGUE], into=INFERRED)
    facts = inferred(store)
    assert {(classes[0], SUB_CLASS_OF, c) for c in classes[2:]} <= facts  # scm-sco
    assert {(properties[1], SUB_PROPERTY_OF, p) for p in properties[3:]} <= facts  # scm-spo
    assert {(ex("x"), TYPE, c) for c in classes[1:]} <= facts
    assert {(ex("x"), p, ex("y")) for p in properties[1:]} <= facts
    assert (classes[0], SUB_CLASS_OF, classes[1]) not in facts  # asserted, so not entailed


def test_chains_across_rules_are_complete_in_one_pass_over_the_flattened_schema() -> None:
    """p ⊑ q, q has domain C, C ⊑ D ⊑ E: x p y gives x q y, x a C, x a E; scm-dom-rng gives p the
    domain and range of q, with their super-classes, so one pass of the instance rules suffices."""
    store = EmbeddedStore()
    add(
        store,
        CATALOGUE,
        (ex("p"), SUB_PROPERTY_OF, ex("q")),
        (ex("q"), DOMAIN, ex("C")),
        (ex("q"), RANGE, ex("R")),
        (ex("C"), SUB_CLASS_OF, ex("D")),
        (ex("D"), SUB_CLASS_OF, ex("E")),
    )
    add(store, PRIVATE, (ex("x"), ex("p"), ex("y")))
    result = entail(store, graphs=[CATALOGUE, PRIVATE], into=INFERRED)
    assert result.passes == 1
    assert inferred(store) >= {
        (ex("x"), ex("q"), ex("y")),
        (ex("x"), TYPE, ex("C")),
        (ex("x"), TYPE, ex("D")),
        (ex("x"), TYPE, ex("E")),
        (ex("y"), TYPE, ex("R")),
    }


def test_rdf_type_in_the_schema_makes_the_rules_run_to_a_fixpoint() -> None:
    """kind ⊑ rdf:type ⊑ isa, A ⊑ B: x kind A gives x a A (prp-spo1), x a B (cax-sco), and only a
    further pass over those types gives x isa B: the consequences must feed the rules again."""
    store = EmbeddedStore()
    add(
        store,
        CATALOGUE,
        (ex("kind"), SUB_PROPERTY_OF, TYPE),
        (TYPE, SUB_PROPERTY_OF, ex("isa")),
        (ex("A"), SUB_CLASS_OF, ex("B")),
        (ex("x"), ex("kind"), ex("A")),
    )
    result = entail(store, graphs=[CATALOGUE], into=INFERRED)
    assert result.passes >= 3  # one more than needed: the pass that added nothing
    facts = inferred(store)
    assert {(ex("x"), TYPE, ex("A")), (ex("x"), TYPE, ex("B")), (ex("x"), ex("isa"), ex("B"))} <= facts


# ---- what entail touches ----


def node_store(path: Path | None = None) -> EmbeddedStore:
    store = EmbeddedStore(path)
    add(store, BLUEPRINT, (ex("b"), spore("trains"), ex("config")), (ex("b"), TYPE, spore("Blueprint")))
    add(store, CATALOGUE, (ex("artist/1"), TYPE, NamedNode(SCHEMA + "MusicGroup")))
    add(
        store,
        PRIVATE,
        (ex("l"), spore("artist"), ex("artist/1")),
        (ex("l"), spore("listener"), ex("u")),
        (ex("l"), NamedNode(SCHEMA + "agent"), ex("u")),  # also follows from spore:listener ⊑ schema:agent
    )
    return store


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
def test_idempotent_and_asserted_graphs_unchanged(on_disk: bool, tmp_path: Path) -> None:
    store = node_store(tmp_path / "store" if on_disk else None)
    load_ontology_graph(store)
    before = store.dump(format=RdfFormat.N_QUADS)
    first = entail(store, graphs=[BLUEPRINT, CATALOGUE, PRIVATE], into=INFERRED)
    facts = inferred(store)
    second = entail(store, graphs=[BLUEPRINT, CATALOGUE, PRIVATE], into=INFERRED)
    assert inferred(store) == facts and first == second
    assert first.triples == len(facts) > 0
    outside = {
        q
        for q in parse(store.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
        if q.graph_name != INFERRED
    }
    assert outside == set(
        parse(before, format=RdfFormat.N_QUADS)
    )  # nothing else changed, no working graph left
    assert (ex("b"), TYPE, spore("Blueprint")) not in facts  # asserted in the same graph
    assert (ex("artist/1"), TYPE, NamedNode(SCHEMA + "MusicGroup")) not in facts  # asserted in another
    assert (ex("l"), NamedNode(SCHEMA + "agent"), ex("u")) not in facts
    assert (ex("l"), NamedNode(SCHEMA + "object"), ex("artist/1")) in facts


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
def test_stale_consequences_go_when_their_premise_goes(on_disk: bool, tmp_path: Path) -> None:
    """On disk only the difference is written: what no longer follows must still go."""
    store = node_store(tmp_path / "store" if on_disk else None)
    entail(store, graphs=[BLUEPRINT, PRIVATE], into=INFERRED)
    assert (ex("u"), TYPE, NamedNode(SCHEMA + "Person")) in inferred(store)
    store.update("DELETE WHERE { GRAPH ?g { ?s <https://w3id.org/spore/ns#listener> ?o } }")
    entail(store, graphs=[BLUEPRINT, PRIVATE], into=INFERRED)
    assert (ex("u"), TYPE, NamedNode(SCHEMA + "Person")) not in inferred(store)


def test_the_ontology_graph_is_loaded_once_and_repaired() -> None:
    store = EmbeddedStore()
    load_ontology_graph(store)
    size = store.count(ONTOLOGY_GRAPH)
    assert size == len(load_ontology())
    store.update("DELETE WHERE { GRAPH ?g { ?s ?p ?o } }")  # someone emptied the store
    add(store, ONTOLOGY_GRAPH, (ex("stale"), TYPE, ex("Junk")))
    entail(store, graphs=[], into=INFERRED)
    assert store.count(ONTOLOGY_GRAPH) == size
    assert not store.query("ASK { GRAPH ?g { ?s a <http://example.org/Junk> } }")


def test_the_inferred_graph_must_not_be_a_premise() -> None:
    store = node_store()
    with pytest.raises(ValueError, match="must not be one of the graphs"):
        entail(store, graphs=[BLUEPRINT, INFERRED], into=INFERRED)
    with pytest.raises(ValueError, match="must not be one of the graphs"):
        entail(store, graphs=[BLUEPRINT], into=ONTOLOGY_GRAPH)


def test_same_result_on_every_store(store: KnowledgeStore) -> None:
    """Through the KnowledgeStore interface only: embedded, on disk and on an Oxigraph server."""
    reference = node_store()
    expected = entail(reference, graphs=[BLUEPRINT, CATALOGUE, PRIVATE], into=INFERRED)
    store.load(reference.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
    result = entail(store, graphs=[BLUEPRINT, CATALOGUE, PRIVATE], into=INFERRED)
    assert result == expected
    assert inferred(store) == inferred(reference)
