"""The store conformance suite: every test runs on every store kind (tests/conftest.py ``store``):
embedded in memory, embedded on disk, a live Oxigraph server with and without the Graph Store
Protocol."""

from __future__ import annotations

import pytest
from pyoxigraph import (
    BlankNode,
    CanonicalizationAlgorithm,
    Dataset,
    DefaultGraph,
    Literal,
    NamedNode,
    Quad,
    QuerySolutions,
    RdfFormat,
    parse,
)

from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.store import KnowledgeStore, QueryError, StoreError, to_rdflib

EX = "https://example.org/"
G1 = NamedNode(f"{EX}g1")
G2 = NamedNode(f"{EX}g2")
P = NamedNode(f"{EX}p")
A = NamedNode(f"{EX}a")
B = NamedNode(f"{EX}b")

TURTLE = f"""
@prefix ex: <{EX}> .
ex:a ex:p ex:b, "plain", "chaîne «unicode» 🍄"@fr, 42 ;
     ex:q [ ex:r "nested" ] .
"""

# A value built to break out of a naively formatted query: quotes of both kinds, triple quotes,
# braces, statement separators, an update keyword, newlines, backslashes and a comment marker.
HOSTILE = 'x" } ; DROP ALL ; INSERT DATA { <urn:evil> <urn:evil> "1" } #\n\'\'\' """ \\ \\" \r\n}} {{ \''


def canonical(data: bytes, format: RdfFormat) -> Dataset:
    dataset = Dataset(parse(data, format))
    dataset.canonicalize(CanonicalizationAlgorithm.UNSTABLE)
    return dataset


def rows(result: object) -> list[dict[str, str]]:
    assert isinstance(result, QuerySolutions)
    names = [variable.value for variable in result.variables]
    return [{name: str(row[name]) for name in names if row[name] is not None} for row in result]


def fill(store: KnowledgeStore) -> None:
    store.load(TURTLE, format=RdfFormat.TURTLE, graph=G1)
    store.extend([Quad(A, P, Literal("in g2"), G2), Quad(B, P, Literal("default"), DefaultGraph())])


def test_implements_the_interface(store: KnowledgeStore) -> None:
    assert isinstance(store, KnowledgeStore)


@pytest.mark.parametrize("format", [RdfFormat.TURTLE, RdfFormat.N_TRIPLES, RdfFormat.RDF_XML, RdfFormat.N3])
def test_graph_round_trips_through_each_triple_format(store: KnowledgeStore, format: RdfFormat) -> None:
    store.load(TURTLE, format=RdfFormat.TURTLE, graph=G1)
    expected = store.dump(format=RdfFormat.N_TRIPLES, graph=G1)
    store.load(store.dump(format=format, graph=G1), format=format, graph=G2)
    assert canonical(store.dump(format=RdfFormat.N_TRIPLES, graph=G2), RdfFormat.N_TRIPLES) == canonical(
        expected, RdfFormat.N_TRIPLES
    )
    assert store.count(G2) == store.count(G1) == 6


@pytest.mark.parametrize("format", [RdfFormat.N_QUADS, RdfFormat.TRIG, RdfFormat.JSON_LD])
def test_dataset_round_trips_through_each_quad_format(store: KnowledgeStore, format: RdfFormat) -> None:
    fill(store)
    dumped = store.dump(format=format)
    before = canonical(dumped, format)
    store.clear(None)
    assert store.count() == 0
    store.load(dumped, format=format)
    assert canonical(store.dump(format=RdfFormat.N_QUADS), RdfFormat.N_QUADS) == before
    assert store.count() == 8


def test_dump_of_one_graph_in_a_quad_format_keeps_its_graph_name(store: KnowledgeStore) -> None:
    fill(store)
    quads = list(parse(store.dump(format=RdfFormat.N_QUADS, graph=G2), RdfFormat.N_QUADS))
    assert quads == [Quad(A, P, Literal("in g2"), G2)]


def test_dumping_everything_needs_a_dataset_format(store: KnowledgeStore) -> None:
    with pytest.raises(ValueError, match="dataset format"):
        store.dump(format=RdfFormat.TURTLE)


def test_loading_quads_into_a_graph_is_refused(store: KnowledgeStore) -> None:
    with pytest.raises(ValueError, match="own graph names"):
        store.load(f"<{EX}a> <{EX}p> <{EX}b> <{EX}g> .", format=RdfFormat.N_QUADS, graph=G1)


def test_unparsable_data_is_a_query_error_and_loads_nothing(store: KnowledgeStore) -> None:
    with pytest.raises(StoreError):
        store.load("<https://example.org/a> <https://example.org/p> .", format=RdfFormat.TURTLE, graph=G1)
    assert store.count() == 0


def test_named_graphs_are_isolated(store: KnowledgeStore) -> None:
    fill(store)
    assert store.named_graphs() == [G1, G2]
    assert store.count(G1) == 6
    assert store.count(G2) == 1
    assert store.count(DefaultGraph()) == 1
    assert store.count() == 8
    in_g2 = rows(store.query("SELECT ?o WHERE { ?s ?p ?o }", default_graph=G2))
    assert in_g2 == [{"o": '"in g2"'}]
    default_only = rows(store.query("SELECT ?o WHERE { ?s ?p ?o }"))
    assert default_only == [{"o": '"default"'}]


def test_clear_removes_one_graph_the_default_graph_or_everything(store: KnowledgeStore) -> None:
    fill(store)
    store.clear(G1)
    assert store.named_graphs() == [G2]
    assert store.count() == 2
    store.clear(DefaultGraph())
    assert store.count() == 1
    assert store.count(G2) == 1
    store.clear(None)
    assert store.count() == 0
    assert store.named_graphs() == []


def test_select_ask_and_construct(store: KnowledgeStore) -> None:
    fill(store)
    selected = rows(store.query(f"SELECT ?o WHERE {{ GRAPH ?g {{ <{EX}a> <{EX}p> ?o }} FILTER(isIRI(?o)) }}"))
    assert selected == [{"o": f"<{EX}b>"}]
    assert store.query(f"ASK {{ GRAPH <{G2.value}> {{ ?s ?p ?o }} }}") is True
    assert store.query(f"ASK {{ <{EX}nobody> ?p ?o }}") is False
    triples = store.query(f"CONSTRUCT {{ ?s <{EX}copy> ?o }} WHERE {{ GRAPH <{G2.value}> {{ ?s ?p ?o }} }}")
    assert not isinstance(triples, bool | QuerySolutions)
    assert [(t.subject, t.predicate, t.object) for t in triples] == [
        (A, NamedNode(f"{EX}copy"), Literal("in g2"))
    ]


def test_unicode_and_typed_literals_survive(store: KnowledgeStore) -> None:
    fill(store)
    found = rows(store.query("SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o FILTER(lang(?o) = 'fr') } }"))
    assert found == [{"o": '"chaîne «unicode» 🍄"@fr'}]
    typed = rows(store.query("SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o FILTER(isNumeric(?o)) } }"))
    assert typed == [{"o": '"42"^^<http://www.w3.org/2001/XMLSchema#integer>'}]


def test_updates_with_bindings(store: KnowledgeStore) -> None:
    fill(store)
    store.update(
        "INSERT { GRAPH ?g { ?s ?p ?v } } WHERE { }",
        bindings={"g": G2, "s": B, "p": P, "v": Literal("bound")},
    )
    assert store.count(G2) == 2
    store.update(
        "DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o } }", bindings={"g": G2, "s": A}
    )
    assert rows(store.query("SELECT ?o { GRAPH ?g { ?s ?p ?o } }", default_graph=[], named_graphs=[G2])) == [
        {"o": '"bound"'}
    ]


def test_query_bindings_restrict_like_a_join(store: KnowledgeStore) -> None:
    fill(store)
    counted = rows(store.query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }", bindings={"g": G1}))
    assert counted == [{"n": '"6"^^<http://www.w3.org/2001/XMLSchema#integer>'}]
    assert store.query("ASK { GRAPH ?g { ?s ?p ?o } }", bindings={"o": Literal("in g2")}) is True
    assert store.query("ASK { GRAPH ?g { ?s ?p ?o } }", bindings={"o": Literal("in g3")}) is False


def test_a_hostile_value_stays_one_literal(store: KnowledgeStore) -> None:
    fill(store)
    before = canonical(store.dump(format=RdfFormat.N_QUADS), RdfFormat.N_QUADS)
    hostile = Literal(HOSTILE)

    echoed = rows(store.query("SELECT ?v WHERE { }", bindings={"v": hostile}))
    assert echoed == [{"v": str(hostile)}]
    assert store.query("ASK { GRAPH ?g { ?s ?p ?v } }", bindings={"v": hostile}) is False
    assert canonical(store.dump(format=RdfFormat.N_QUADS), RdfFormat.N_QUADS) == before

    store.update(
        "INSERT { GRAPH ?g { ?s ?p ?v } } WHERE { }", bindings={"g": G2, "s": B, "p": P, "v": hostile}
    )
    stored = rows(store.query("SELECT ?v WHERE { GRAPH ?g { ?s ?p ?v } }", bindings={"g": G2, "s": B}))
    assert stored == [{"v": str(hostile)}]
    assert store.count() == 9  # exactly one triple more; nothing dropped, nothing else inserted
    back = list(parse(store.dump(format=RdfFormat.N_TRIPLES, graph=G2), RdfFormat.N_TRIPLES))
    assert Literal(HOSTILE) in {quad.object for quad in back}
    assert next(q.object for q in back if q.subject == B).value == HOSTILE


def test_an_iri_binding_is_escaped_as_an_iri(store: KnowledgeStore) -> None:
    fill(store)
    # pyoxigraph refuses to build an IRI with spaces or '>' at all, so only IRIs can be IRIs.
    with pytest.raises(ValueError):
        NamedNode("https://example.org/x> } DROP ALL")
    assert store.query("ASK { ?s ?p ?o }", bindings={"s": NamedNode(f"{EX}a?q=%7D")}) is False


def test_unknown_binding_names_are_refused(store: KnowledgeStore) -> None:
    with pytest.raises(QueryError, match=r"\?nosuch"):
        store.query("SELECT ?s WHERE { ?s ?p ?o }", bindings={"nosuch": A})


def test_dataset_restriction_overrides_from_clauses(store: KnowledgeStore) -> None:
    fill(store)
    sneaky = (
        f"SELECT ?o FROM <{G1.value}> FROM NAMED <{G1.value}> "
        "WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"
    )
    seen = rows(store.query(sneaky, default_graph=[G2], named_graphs=[G2]))
    assert seen == [{"o": '"in g2"'}, {"o": '"in g2"'}]
    only_default = rows(store.query("SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } }", default_graph=[G2]))
    assert only_default == []  # naming the default graph alone leaves no named graphs


def test_node_public_queries_never_see_the_private_graph(store: KnowledgeStore) -> None:
    node = NodeGraphs(NamedNode("https://host.example/nodes/ada"), store)
    store.extend(
        [Quad(A, P, Literal(kind.value), node.graph(kind)) for kind in GraphKind]
        + [Quad(A, P, Literal("other node"), NamedNode("https://host.example/nodes/bob/graphs/private"))]
    )
    private = node.graph(GraphKind.PRIVATE).value
    seen = rows(node.query_public("SELECT ?o WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"))
    values = sorted({row["o"] for row in seen})
    assert values == sorted(f'"{kind.value}"' for kind in GraphKind if kind.public)
    assert node.query_public(f"ASK {{ GRAPH <{private}> {{ ?s ?p ?o }} }}") is False
    assert node.query_public("ASK { GRAPH ?g { ?s ?p ?o } }", bindings={"g": NamedNode(private)}) is False


def test_bad_queries_are_query_errors_with_the_parsers_message(store: KnowledgeStore) -> None:
    with pytest.raises(QueryError, match=r"1:\d+") as raised:
        store.query("SELEC ?s WHERE { ?s ?p ?o }")
    assert raised.value.message
    with pytest.raises(QueryError):
        store.update("INSERT DATA { ?s ?p ?o }")


def test_to_rdflib_merges_graphs_and_keeps_blank_nodes_shared(store: KnowledgeStore) -> None:
    fill(store)
    shared = BlankNode()
    store.extend([Quad(shared, P, Literal("one"), G1), Quad(shared, P, Literal("two"), G2)])
    graph = to_rdflib(store, [G1, G2])
    assert len(graph) == 9
    subjects = {s for s, _, o in graph if str(o) in {"one", "two"}}
    assert len(subjects) == 1
    assert len(to_rdflib(store, G2)) == 2


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("SELECT * WHERE { SeRvIcE <http://169.254.169.254/latest> { ?s ?p ?o } }", "SERVICE"),
        ("SELECT * FROM <https://host.example/nodes/ada/graphs/private> WHERE { ?s ?p ?o }", "FROM"),
        ("DEFINE input:default-graph-uri <urn:x> SELECT * WHERE { ?s ?p ?o }", "DEFINE"),
        ("SELECT (bif:sys_stat('st_dbms_name') AS ?v) WHERE { }", "bif:"),
    ],
)
def test_node_public_queries_refuse_what_widens_the_dataset(
    store: KnowledgeStore, query: str, refused: str
) -> None:
    node = NodeGraphs(NamedNode("https://host.example/nodes/ada"), store)
    with pytest.raises(QueryError, match=f"not allowed in a query over a node's public graphs: {refused}"):
        node.query_public(query)


def test_refused_words_inside_literals_and_iris_are_harmless(store: KnowledgeStore) -> None:
    node = NodeGraphs(NamedNode("https://host.example/nodes/ada"), store)
    assert node.query_public("ASK { ?s <https://e.example/from> 'SERVICE <http://x/> FROM bif:x' }") is False
