"""Where bindings go in query text (pure functions, no store)."""

from __future__ import annotations

import pytest
from pyoxigraph import BlankNode, Literal, NamedNode, Store

from knowledge.store.bindings import BindingError, bind, bind_clauses, values_block, variable_names

X = NamedNode("https://example.org/x")


def parses(text: str, *, update: bool = False) -> None:
    (Store().update if update else Store().query)(text)


@pytest.mark.parametrize(
    ("query", "before_values"),
    [
        ("SELECT ?s WHERE { ?s ?p ?o }", "SELECT ?s WHERE {"),
        ("select * { ?s ?p ?o }", "select * {"),
        ("ASK { ?s ?p ?o }", "ASK {"),
        ("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", "CONSTRUCT { ?s ?p ?o } WHERE {"),
        (
            "PREFIX w: <https://example.org/where#>\n"
            "SELECT (COUNT(*) AS ?n) FROM <urn:g> WHERE { ?s w:where ?o }",
            "FROM <urn:g> WHERE {",
        ),
        ("SELECT ?s # WHERE { in a comment\nWHERE { ?s ?p '{ WHERE' }", "\nWHERE {"),
        ('SELECT ?s WHERE { { SELECT ?s WHERE { ?s ?p """}""" } } }', "SELECT ?s WHERE {"),
        ("SELECT (EXISTS { ?s ?p ?o } AS ?e) WHERE { ?s ?p ?o }", "AS ?e) WHERE {"),
    ],
)
def test_query_bindings_open_the_outermost_where_group(query: str, before_values: str) -> None:
    bound = bind(query, {"s": X})
    head, _, _ = bound.partition(" BIND(<https://example.org/x> AS ?s)")
    assert head.endswith(before_values)
    parses(bound)


def test_construct_where_short_form_gets_a_trailing_values_clause() -> None:
    bound = bind("CONSTRUCT WHERE { ?s ?p ?o }", {"s": X})
    assert bound.rstrip().endswith("VALUES (?s) { (<https://example.org/x>) }")
    parses(bound)


def test_every_update_operation_gets_the_bindings() -> None:
    update = (
        "DELETE { ?s ?p ?o } WHERE { ?s ?p ?o } ;\nINSERT { ?s ?p 'new' } WHERE { OPTIONAL { ?s ?p ?o } }"
    )
    bound = bind(update, {"s": X}, update=True)
    assert bound.count("BIND(<https://example.org/x> AS ?s)") == 2
    parses(bound, update=True)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ("DELETE WHERE { ?s ?p ?o }", "DELETE WHERE"),
        ("INSERT DATA { <urn:a> <urn:b> <urn:c> } ; DELETE { ?s ?p ?o } WHERE { ?s ?p ?o }", "INSERT DATA"),
        ("INSERT { ?s <urn:p> 1 }", "no WHERE group"),
    ],
)
def test_updates_that_cannot_hold_values_are_refused(update: str, message: str) -> None:
    with pytest.raises(BindingError, match=message):
        bind(update, {"s": X}, update=True)


def test_terms_are_written_as_escaped_ntriples() -> None:
    bindings = {"?a": Literal('q"}\n\\'), "b": Literal("1", language="en"), "$c": X}
    assert bind_clauses(bindings) == (
        'BIND("q\\"}\\n\\\\" AS ?a) BIND("1"@en AS ?b) BIND(<https://example.org/x> AS ?c)'
    )
    assert values_block(bindings) == 'VALUES (?a ?b ?c) { ("q\\"}\\n\\\\" "1"@en <https://example.org/x>) }'


@pytest.mark.parametrize(
    ("bindings", "message"),
    [
        ({"s p": X}, "not a SPARQL variable name"),
        ({"s": "https://example.org/x"}, "pyoxigraph term"),
        ({"s": BlankNode()}, "blank node"),
    ],
)
def test_bad_bindings_are_refused(bindings: dict[str, object], message: str) -> None:
    with pytest.raises(BindingError, match=message):
        bind("SELECT * WHERE { ?s ?p ?o }", bindings)  # type: ignore[arg-type]


def test_variables_are_found_outside_strings_and_iris_only() -> None:
    text = "SELECT ?a $b WHERE { ?a <urn:x?c> '?d' . FILTER(?e) } # ?f"
    assert variable_names(text) == {"a", "b", "e"}


def test_no_bindings_leaves_text_untouched() -> None:
    assert bind("SELECT * {}", None) == "SELECT * {}"
    assert bind("SELECT * {}", {}) == "SELECT * {}"


def test_an_update_with_a_sub_select_is_no_query() -> None:
    from knowledge.store.bindings import query_form

    update = "INSERT { ?s a ?c } WHERE { { SELECT DISTINCT ?s ?c WHERE { ?s ?p ?c } } }"
    assert query_form(update) is None
    assert query_form("PREFIX x: <urn:x:> SELECT * WHERE { { SELECT ?s { ?s ?p ?o } } }") == "select"
