"""The named queries: each has a header, parses, and answers correctly on a small hand-made store."""

from __future__ import annotations

import pytest
from pyoxigraph import Literal, NamedNode, Quad, QuerySolutions, Store

import queries
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.store import EmbeddedStore
from knowledge.store.bindings import query_form, variable_names

RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
SCHEMA = "https://schema.org/"
ADA = NamedNode("https://host.example/nodes/ada")
BOB = NamedNode("https://host.example/nodes/bob")


def typed(subject: str, type_: str, graph: NamedNode) -> Quad:
    return Quad(NamedNode(subject), RDF_TYPE, NamedNode(SCHEMA + type_), graph)


@pytest.fixture
def store() -> EmbeddedStore:
    """Ada's catalogue holds two bands and a person, her models graph one dataset; Bob's catalogue
    one band; one fact in the default graph."""
    ada = NodeGraphs(ADA, EmbeddedStore())
    catalogue, models = ada.graph(GraphKind.CATALOGUE), ada.graph(GraphKind.MODELS)
    bob_catalogue = NodeGraphs(BOB, ada.store).graph(GraphKind.CATALOGUE)
    band = NamedNode("https://music.example/band/1")
    ada.store.extend(
        [
            typed("https://music.example/band/1", "MusicGroup", catalogue),
            typed("https://music.example/band/2", "MusicGroup", catalogue),
            typed("https://music.example/person/1", "Person", catalogue),
            Quad(band, NamedNode(SCHEMA + "name"), Literal("Björk's band"), catalogue),
            typed("https://music.example/data/1", "Dataset", models),
            typed("https://music.example/band/3", "MusicGroup", bob_catalogue),
            Quad(band, NamedNode(SCHEMA + "genre"), Literal("default-graph fact")),
        ]
    )
    store = ada.store
    assert isinstance(store, EmbeddedStore)
    return store


def table(result: object) -> list[tuple[str, ...]]:
    assert isinstance(result, QuerySolutions)
    names = [v.value for v in result.variables]
    return [tuple(str(row[n]) if row[n] is not None else "" for n in names) for row in result]


@pytest.mark.parametrize("name", queries.names())
def test_every_query_has_a_header_and_parses(name: str) -> None:
    query = queries.describe(name)
    assert query.purpose and query.result
    assert set(query.bindings) <= variable_names(query.text)  # every documented binding is a variable
    # raises SyntaxError if the file does not parse; a named update (entail-*) runs on an empty store
    (Store().query if query_form(query.text) else Store().update)(query.text)


def test_the_starter_queries_are_shipped() -> None:
    assert {"graph-sizes", "node-summary", "describe-resource"} <= set(queries.names())


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(queries.UnknownQuery, match="known: .*graph-sizes"):
        queries.load("no-such-query")
    with pytest.raises(queries.UnknownQuery, match="not a query name"):
        queries.load("../etc/passwd")


def test_graph_sizes(store: EmbeddedStore) -> None:
    assert table(store.query(queries.load("graph-sizes"))) == [
        (
            "<https://host.example/nodes/ada/graphs/catalogue>",
            '"4"^^<http://www.w3.org/2001/XMLSchema#integer>',
        ),
        ("<https://host.example/nodes/ada/graphs/models>", '"1"^^<http://www.w3.org/2001/XMLSchema#integer>'),
        (
            "<https://host.example/nodes/bob/graphs/catalogue>",
            '"1"^^<http://www.w3.org/2001/XMLSchema#integer>',
        ),
    ]


def test_node_summary_for_one_node(store: EmbeddedStore) -> None:
    rows = table(store.query(queries.load("node-summary"), bindings={"node": ADA}))
    summary = [
        (graph.rsplit("/", 1)[1], type_.removeprefix(f"<{SCHEMA}"), count.split('"')[1])
        for graph, type_, count in rows
    ]
    assert summary == [
        ("catalogue>", "MusicGroup>", "2"),
        ("catalogue>", "Person>", "1"),
        ("models>", "Dataset>", "1"),
    ]
    everyone = table(store.query(queries.load("node-summary")))
    assert len(everyone) == 4


def test_describe_resource_collects_every_graph(store: EmbeddedStore) -> None:
    band = NamedNode("https://music.example/band/1")
    assert queries.describe("describe-resource").required == ["resource"]
    triples = store.query(queries.load("describe-resource"), bindings={"resource": band})
    assert not isinstance(triples, bool | QuerySolutions)
    objects = sorted(str(t.object) for t in triples)
    assert objects == ['"Björk\'s band"', '"default-graph fact"', f"<{SCHEMA}MusicGroup>"]
