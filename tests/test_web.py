"""The web page: recommendations, browsing, the network data and RDF views, over real loopback hosts.

Pure parts (query parsing, completion, negotiation, links, chart, rows) are tested directly; the
pages are fetched with httpx from two running hosts (tests/web_world.py) and parsed back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from rdflib import RDF, Graph, URIRef
from starlette.requests import Request

from federation.jsonld import expand
from federation.web import web_state
from federation.web.chart import line_chart
from federation.web.reading import MetricSeries, decisions_from_rows, metric_series, snapshots_from_rows
from federation.web.recommending import RecommendationQuery
from federation.web.state import page_of, rdf_view, wanted_rdf
from ontology import SPORE

SCHEMA = "https://schema.org/"


def _request(accept: str | None = None, query: str = "") -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": headers}
    )


# ---- pure parts -------------------------------------------------------------------------------------


def test_query_parse_accepts_artists_and_trims() -> None:
    query = RecommendationQuery.parse("alice", " Radiohead ,, portishead ", None, "5")
    assert query.artists == ("Radiohead", "portishead")
    assert query.listener is None and query.k == 5


@pytest.mark.parametrize(
    ("artists", "listener", "k", "message"),
    [
        ("", "", None, "at least one artist"),
        ("A", "https://x/listener/1", None, "not both"),
        ("A", None, "many", "whole number"),
        ("A", None, "0", "between 1 and 100"),
        ("A", None, "101", "between 1 and 100"),
        ("x" * 201, None, None, "at most 200 characters"),
    ],
)
def test_query_parse_refuses_with_a_sentence(artists, listener, k, message) -> None:
    with pytest.raises(ValueError, match=message):
        RecommendationQuery.parse("alice", artists, listener, k)


@pytest.mark.parametrize(
    ("accept", "query", "wanted"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", None),
        ("text/turtle", "", "turtle"),
        ("application/ld+json", "", "jsonld"),
        ("text/html;q=0.5, text/turtle", "", "turtle"),
        ("text/turtle;q=0.5, text/html", "", None),
        ("text/html", "format=ttl", "turtle"),
        (None, "format=jsonld", "jsonld"),
        (None, "format=nt", "ntriples"),
        (None, "format=xml", "unknown"),
        (None, "", None),
    ],
)
def test_wanted_rdf(accept, query, wanted) -> None:
    assert wanted_rdf(_request(accept, query)) == wanted


def test_rdf_view_refuses_an_unknown_format() -> None:
    response = rdf_view(Graph(), "unknown")
    assert response.status_code == 406
    assert b"text/turtle" in response.body


def test_page_of_links_actors_and_minted_iris_to_their_host() -> None:
    here = "http://127.0.0.1:1"
    assert page_of("http://127.0.0.1:2/nodes/carol", here) == "http://127.0.0.1:2/browse/nodes/carol"
    assert page_of("http://127.0.0.1:2/groups/jazz", here) == "http://127.0.0.1:2/browse/groups/jazz"
    minted = "http://127.0.0.1:2/nodes/carol/snapshots/abc"
    assert page_of(minted, here).startswith("http://127.0.0.1:2/browse/resource?iri=http%3A%2F%2F")
    artist = "https://w3id.org/spore/data/lastfm/artist/1"
    assert (
        page_of(artist, here)
        == here + "/browse/resource?iri=https%3A%2F%2Fw3id.org%2Fspore%2Fdata%2Flastfm%2Fartist%2F1"
    )


def test_line_chart_draws_one_line_per_metric_and_escapes_names() -> None:
    svg = line_chart(
        [MetricSeries("Recall@20", ((1, 0.1), (2, 0.2))), MetricSeries("<b>", ((1, 0.05),))], title="t & u"
    )
    assert svg.count("<polyline") == 2
    assert "t &amp; u" in svg and "&lt;b&gt;" in svg and "<b>" not in svg
    assert line_chart([], title="empty") == ""
    small = line_chart([MetricSeries("Recall@20", ((0, 0.017), (2, 0.031)))], title="small")
    ticks = re.findall(r'text-anchor="end">([0-9.]+)</text>', small)
    assert len(ticks) == len(set(ticks)) == 5  # small values still get distinct tick labels


def test_rows_become_snapshots_series_and_decisions() -> None:
    spore = str(SPORE)
    rows: list[dict[str, Any]] = [
        {"snapshot": "s2", "round": "2", "metric": spore + "Recall", "cutoff": 20, "value": 0.2},
        {"snapshot": "s2", "round": "2", "metric": spore + "NDCG", "cutoff": 20, "value": 0.1},
        {"snapshot": "s1", "round": None, "metric": spore + "Recall", "cutoff": 20, "value": 0.1},
    ]
    found = snapshots_from_rows(rows)
    assert [(row.iri, row.round, row.metrics) for row in found] == [
        ("s2", 2, {"Recall@20": 0.2, "NDCG@20": 0.1}),
        ("s1", None, {"Recall@20": 0.1}),
    ]
    series = metric_series(found)
    assert series[0].name == "Recall@20" and series[0].points == ((2.0, 0.2), (2.0, 0.1))
    decided = decisions_from_rows(
        [
            {"decision": "d", "type": spore + "Decision", "explanation": "why"},
            {"decision": "d", "type": spore + "SwitchGroupDecision", "explanation": "why"},
            {"decision": "e", "type": spore + "Decision", "explanation": None},
        ]
    )
    assert [(d.iri, d.kind) for d in decided] == [("d", "SwitchGroupDecision"), ("e", "Decision")]


# ---- pages on two running hosts -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from web_world import start_web_world

    built = start_web_world(Path(tmp_path_factory.mktemp("web")))
    yield built
    built.stop()


def get(world, path: str, host: str = "a", **kwargs) -> httpx.Response:
    return httpx.get(world.url(getattr(world, host), path), timeout=30, **kwargs)


def _jsonld_graph(text: str) -> Graph:
    """Parse JSON-LD that names the SPORE context by URL, with the project's offline context loader."""
    document = json.loads(text)
    return Graph().parse(data=json.dumps(expand(document)), format="json-ld")


def _items(html: str) -> list[str]:
    return [unescape(name) for name in re.findall(r'<a class="artist" href="[^"]*">([^<]*)</a>', html)]


@pytest.mark.slow
def test_home_offers_the_nodes_the_form_and_listeners(world) -> None:
    page = get(world, "/")
    assert page.status_code == 200
    assert '<option value="alice" selected>Alice</option>' in page.text
    assert "bob (no model yet)" in page.text
    assert 'name="artists"' in page.text and 'role="combobox"' in page.text
    assert page.text.count("listener/") >= 40  # the listener picker lists alice's listeners


@pytest.mark.slow
def test_recommend_for_typed_artists_in_any_case(world) -> None:
    liked = world.artist_names[:2]
    page = get(
        world, "/recommend", params={"node": "alice", "artists": f"{liked[0].upper()}, {liked[1].lower()}"}
    )
    assert page.status_code == 200
    names = _items(page.text)
    assert len(names) == 20
    assert not set(liked) & set(names), "the artists named are left out"
    assert f"for someone who likes {liked[0]}, {liked[1]}" in page.text.replace("&amp;", "&")
    assert world.model.snapshot in page.text  # which snapshot made it
    assert f'href="{world.url(world.b, "/browse/groups/jazz")}"' in page.text  # and which group
    assert 'class="tag"' in page.text
    assert "format=turtle" in page.text and "format=jsonld" in page.text


@pytest.mark.slow
def test_a_typo_gets_did_you_mean_links_that_work(world) -> None:
    artist = world.artist_names[5]
    typo = artist[:-1] + ("x" if artist[-1] != "x" else "y")
    page = get(world, "/recommend", params={"node": "alice", "artists": typo})
    assert page.status_code == 200
    assert "Did you mean" in page.text
    links = [
        (unescape(href), unescape(name))
        for href, name in re.findall(r'<a class="suggestion" href="([^"]*)">([^<]*)</a>', page.text)
    ]
    assert artist in [name for _, name in links]
    href = next(href for href, name in links if name == artist)
    assert parse_qs(urlsplit(href).query)["artists"] == [artist]
    followed = get(world, href)
    assert followed.status_code == 200 and len(_items(followed.text)) == 20


@pytest.mark.slow
def test_recommendation_rdf_is_at_its_iri(world) -> None:
    params = {"node": "alice", "artists": world.artist_names[0], "k": "7"}
    page = get(world, "/recommend", params=params)
    found = re.search(r"its IRI is this page's address: <code>([^<]*)</code>", page.text)
    assert found is not None
    iri = found.group(1).replace("&amp;", "&")
    turtle = httpx.get(iri + "&format=turtle", timeout=30)
    assert turtle.headers["content-type"].startswith("text/turtle")
    graph = Graph().parse(data=turtle.text, format="turtle")
    subject = URIRef(iri)
    assert (subject, RDF.type, SPORE.Recommendation) in graph
    assert (subject, SPORE.madeWith, URIRef(world.model.snapshot)) in graph
    assert len(list(graph.objects(subject, URIRef(SCHEMA + "itemListElement")))) == 7
    jsonld = httpx.get(iri, headers={"accept": "application/ld+json"}, timeout=30)
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert len(_jsonld_graph(jsonld.text)) == len(graph)


@pytest.mark.slow
def test_recommend_for_a_listener_of_the_node(world) -> None:
    listener = world.model.tensors.listeners[3]
    page = get(world, "/recommend", params={"node": "alice", "listener": listener, "k": "5"})
    assert page.status_code == 200 and len(_items(page.text)) == 5
    played = set(world.model.engine.known_artists(3).tolist())
    names = world.model.tensors.artist_names
    assert not {names[i] for i in played} & set(_items(page.text))
    missing = get(world, "/recommend", params={"node": "alice", "listener": "https://nobody.example/l/1"})
    assert missing.status_code == 404 and "not a listener" in missing.text


@pytest.mark.slow
def test_a_public_host_keeps_its_listeners_private(world) -> None:
    state = web_state(world.a.app)
    assert state.listeners_public  # a loopback fungiverse shows them
    listener = world.model.tensors.listeners[3]
    state.listeners_public = False
    try:
        assert listener not in get(world, "/").text
        refused = get(world, "/recommend", params={"node": "alice", "listener": listener})
        assert refused.status_code == 403 and "private" in refused.text
    finally:
        state.listeners_public = True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"node": "nobody", "artists": "x"}, 404, "no node named"),
        ({"node": "alice", "artists": "x", "k": "zero"}, 400, "whole number"),
        ({"node": "bob", "artists": "x"}, 503, "no trained model yet"),
        ({"node": "alice", "artists": "qqqqqqqqqqqq"}, 404, "No close match"),
    ],
)
def test_bad_requests_get_a_clear_page(world, params, status, text) -> None:
    page = get(world, "/recommend", params=params)
    assert page.status_code == status
    assert text in page.text and "Traceback" not in page.text
    rdf = get(world, "/recommend", params=params | {"format": "turtle"})
    assert rdf.status_code == status and "error" in rdf.json()


@pytest.mark.slow
def test_autocomplete_is_tolerant_of_case_and_typos(world) -> None:
    name = world.artist_names[10]
    prefix = get(world, "/recommend/artists", params={"node": "alice", "q": name[:4].swapcase()}).json()
    assert prefix[0] == name[:4].swapcase() and name in prefix[1]
    typo = get(world, "/recommend/artists", params={"node": "alice", "q": name[:-2] + "zz"}).json()[1]
    assert name in typo
    assert get(world, "/recommend/artists", params={"node": "nobody", "q": "a"}).status_code == 404


@pytest.mark.slow
def test_node_page_shows_groups_models_over_rounds_and_decisions(world) -> None:
    page = get(world, "/browse/nodes/alice")
    assert page.status_code == 200
    html = page.text
    assert '<svg class="chart"' in html and html.count("<polyline") >= 2
    rows = re.findall(r"<tr><td>(\d+)</td>", html)
    assert rows == ["3", "2", "1"]  # newest round first
    assert "0.1900" in html and "0.1100" in html
    assert f'href="{world.url(world.b, "/browse/groups/jazz")}"' in html  # the group on the other host
    assert "stayed in #jazz" in html and "SwitchGroupDecision" in html and "MutationDecision" in html
    assert 'href="/browse/nodes/alice?format=turtle"' in html


@pytest.mark.slow
def test_node_and_group_rdf_views(world) -> None:
    node = Graph().parse(data=get(world, "/browse/nodes/alice?format=turtle").text, format="turtle")
    assert (URIRef(world.alice), SPORE.memberOf, URIRef(world.jazz)) in node
    group = get(world, "/browse/groups/jazz", host="b", headers={"accept": "application/ld+json"})
    graph = _jsonld_graph(group.text)
    assert {str(s) for s in graph.subjects(SPORE.memberOf, URIRef(world.jazz))} == {world.alice, world.carol}


@pytest.mark.slow
def test_group_page_links_members_across_hosts(world) -> None:
    page = get(world, "/browse/groups/jazz", host="b")
    assert page.status_code == 200 and "#jazz" in page.text
    assert f'href="{world.url(world.a, "/browse/nodes/alice")}"' in page.text
    assert 'href="' + world.url(world.b, "/browse/nodes/carol") + '"' in page.text
    assert get(world, "/browse/groups/nothing", host="b").status_code == 404


@pytest.mark.slow
def test_network_json_has_nodes_groups_and_memberships(world) -> None:
    data = get(world, "/browse/network.json", host="b").json()
    assert {node["id"] for node in data["nodes"]} == {world.alice, world.carol}
    assert [group["label"] for group in data["groups"]] == ["#jazz"]
    assert {(e["node"], e["group"]) for e in data["edges"]} == {
        (world.alice, world.jazz),
        (world.carol, world.jazz),
    }
    mine = get(world, "/browse/network.json").json()
    assert mine["round"] == 3
    host = get(world, "/browse")
    assert 'id="network"' in host.text and "network.js" in host.text and "/browse/nodes/bob" in host.text


@pytest.mark.slow
def test_decision_and_snapshot_pages(world) -> None:
    decision = world.alice + "/decisions/2-switch"
    page = get(world, "/browse/resource", params={"iri": decision})
    assert page.status_code == 200
    assert "stayed in #jazz" in page.text and "✓ chosen" in page.text and "0.1600" in page.text
    turtle = get(world, "/browse/resource", params={"iri": decision, "format": "turtle"})
    assert (URIRef(decision), RDF.type, SPORE.SwitchGroupDecision) in Graph().parse(data=turtle.text)
    snapshot = get(world, "/browse/resource", params={"iri": world.model.snapshot})
    assert snapshot.status_code == 200 and "Recall@20" in snapshot.text and "0.1900" in snapshot.text
    assert get(world, "/browse/resource", params={"iri": "https://nowhere.example/x"}).status_code == 404
    assert get(world, "/browse/resource", params={"iri": "javascript:alert(1)"}).status_code == 400
    bad = get(world, "/browse/resource", params={"iri": 'http://x"><script>'})
    assert bad.status_code == 400 and "not an IRI" in bad.text


@pytest.mark.slow
def test_linked_data_html_uses_the_rich_renderer(world) -> None:
    pytest.importorskip("federation.linked_data")
    page = httpx.get(world.alice, headers={"accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert "Models over rounds" in page.text


@pytest.mark.slow
def test_static_assets_are_served(world) -> None:
    for name, kind in (
        ("spore.css", "text/css"),
        ("autocomplete.js", "javascript"),
        ("network.js", "javascript"),
    ):
        response = get(world, f"/assets/web/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]


@pytest.mark.slow
def test_a_model_from_protocol_weights_ranks_as_the_trained_one(world) -> None:
    from federation.web import NodeModel

    rebuilt = NodeModel.from_weights(
        world.weights, world.model.tensors, node=world.alice, group=world.jazz, round=3
    )
    assert rebuilt.snapshot == world.model.snapshot  # the same content address
    liked = [world.model.tensors.artist_index(world.model.tensors.artists[0])]
    assert [r.iri for r in rebuilt.engine.for_artists(liked, 10)] == [
        r.iri for r in world.model.engine.for_artists(liked, 10)
    ]
    fewer = dict(world.weights) | {"artist_embedding.weight": world.weights["artist_embedding.weight"][:-1]}
    with pytest.raises(ValueError, match="do not fit"):
        NodeModel.from_weights(fewer, world.model.tensors, node=world.alice)


@pytest.mark.slow
def test_a_provided_model_source_is_asked_per_request(world) -> None:
    registry = web_state(world.a.app).models
    calls = []

    def source():
        calls.append(1)
        return world.model

    registry.provide("bob", source)
    try:
        page = get(world, "/recommend", params={"node": "bob", "artists": world.artist_names[0]})
        assert page.status_code == 200 and len(_items(page.text)) == 20 and calls
    finally:
        registry.withdraw("bob")
    assert get(world, "/recommend", params={"node": "bob", "artists": "x"}).status_code == 503


def _status(world, host: str, rock: str) -> dict:
    """A node runtime's status (docs/federation.md, "Host status") with alice founding #rock."""
    alice = {
        "name": "alice",
        "actor": world.alice,
        "round": 7,
        "group": {
            "iri": rock,
            "hashtag": "#rock",
            "owner": world.alice,
            "members": [world.alice, world.carol],
            "rule": str(SPORE.TrimmedMean),
            "schedule": "sync",
        },
        "owns": [
            {
                "iri": rock,
                "hashtag": "#rock",
                "owner": world.alice,
                "members": [world.alice, world.carol],
                "round": 7,
            }
        ],
    }
    carol = {
        "name": "carol",
        "actor": world.carol,
        "round": 7,
        "group": {"iri": rock, "hashtag": "#rock", "owner": world.alice, "members": [world.carol]},
        "owns": [],
    }
    return {
        "host": world.url(world.a, "") if host == "a" else world.url(world.b, ""),
        "nodes": [alice] if host == "a" else [carol],
    }


@pytest.mark.slow
def test_protocol_groups_from_the_runtime_status(world) -> None:
    rock = world.alice + "/groups/rock"
    state = web_state(world.a.app)
    state.status_source = lambda: _status(world, "a", rock)
    state.peers_source = lambda: [_status(world, "b", rock)]
    state.status_ttl = 0.0  # this test swaps the runtime's report
    try:
        data = get(world, "/browse/network.json").json()
        labels = {group["id"]: group["label"] for group in data["groups"]}
        assert labels[rock] == "#rock"
        assert {(e["node"], e["group"]) for e in data["edges"]} >= {(world.alice, rock), (world.carol, rock)}
        assert next(node for node in data["nodes"] if node["id"] == world.carol)["round"] == 7
        assert data["round"] == 7
        node = get(world, "/browse/nodes/alice").text
        assert ">#rock</a>" in node
        page = get(world, "/browse/resource", params={"iri": rock})
        assert page.status_code == 200 and "#rock" in page.text and "TrimmedMean" in page.text
        assert f'href="{world.url(world.b, "/browse/nodes/carol")}"' in page.text  # the owner's member list
        graph = Graph().parse(data=get(world, "/browse/resource", params={"iri": rock, "format": "ttl"}).text)
        assert (URIRef(world.carol), SPORE.memberOf, URIRef(rock)) in graph
        host = get(world, "/browse").text
        assert "2 members · round 7" in host
        state.rounds.record(
            "alice", {"node": "alice", "round": 6, "group": "#rock", "metrics": {"recall@20": 0.2}}
        )
        state.rounds.record(
            "alice", {"node": "alice", "round": 7, "group": "#rock", "metrics": {"recall@20": 0.3}}
        )
        chart = get(world, "/browse/resource", params={"iri": rock}).text
        assert "The #rock model over rounds" in chart  # the founder is alice, whose graph charts #jazz

    finally:
        state.status_source = lambda: None
        state.peers_source = lambda: []
        state.status_ttl = 1.0


@pytest.mark.slow
def test_the_current_snapshot_has_a_page_before_any_card(world) -> None:
    from federation.web import NodeModel

    state = web_state(world.a.app)
    live = world.alice + "/snapshots/" + "e" * 64
    state.models.publish("alice", NodeModel(world.model.engine, live, group=world.jazz, round=5))
    state.rounds.record("alice", {"node": "alice", "round": 5, "metrics": {"recall@20": 0.31}})
    try:
        page = get(world, "/browse/resource", params={"iri": live})
        assert page.status_code == 200 and "spore:ModelSnapshot" in page.text and "0.3100" in page.text
        graph = Graph().parse(data=get(world, "/browse/resource", params={"iri": live, "format": "ttl"}).text)
        assert (URIRef(world.jazz), SPORE.groupModel, URIRef(live)) in graph
    finally:
        state.models.publish("alice", world.model)


@pytest.mark.slow
def test_a_stored_recommendation_lists_its_artists_in_order(world) -> None:
    iri = world.alice + "/recommendations/asked-1"
    page = get(world, "/browse/resource", params={"iri": iri})
    assert page.status_code == 200 and "Recommendation by alice" in page.text
    expected = [r.name for r in world.model.engine.for_artists([0, 1], 5)]
    assert _items(page.text) == expected
    pytest.importorskip("federation.linked_data")
    html = httpx.get(iri, headers={"accept": "text/html"}, timeout=30)
    if html.status_code == 200:  # the linked-data routes serve this IRI: with the rich page
        assert _items(html.text) == expected
