"""What only one kind of store does: persistence on disk, and the remote store's HTTP behaviour
(credentials, errors, the protocol requests it sends)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from pyoxigraph import Literal, NamedNode, Quad, RdfFormat

from knowledge.store import (
    EmbeddedStore,
    QueryError,
    SparqlEndpointStore,
    StoreError,
    StoreUnavailable,
    open_store,
)

G = NamedNode("https://example.org/g")
QUAD = Quad(NamedNode("https://example.org/a"), NamedNode("https://example.org/p"), Literal("é"), G)
EMPTY_SELECT = b'{"head":{"vars":["s"]},"results":{"bindings":[]}}'


def test_an_on_disk_store_keeps_its_data_across_reopening(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "node") as store:
        store.extend([QUAD])
    with EmbeddedStore(tmp_path / "node") as reopened:
        assert reopened.count(G) == 1
        assert reopened.named_graphs() == [G]


def test_a_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "node") as store:
        store.extend([QUAD])
    with EmbeddedStore(tmp_path / "node", read_only=True) as reader:
        assert reader.count() == 1
        with pytest.raises(StoreError):
            reader.update("INSERT DATA { <urn:a> <urn:b> <urn:c> }")


def test_a_missing_directory_is_unavailable_for_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no store in"):
        EmbeddedStore(tmp_path / "nothing-here", read_only=True)


def test_open_store_picks_the_kind_from_the_location(tmp_path: Path) -> None:
    assert isinstance(open_store(None), EmbeddedStore)
    assert isinstance(open_store(tmp_path / "s"), EmbeddedStore)
    remote = open_store("http://127.0.0.1:9/sparql", timeout=1)
    assert isinstance(remote, SparqlEndpointStore)
    remote.close()


def test_an_unreachable_endpoint_is_a_one_line_unavailable_error() -> None:
    with (
        SparqlEndpointStore("http://127.0.0.1:9/query", timeout=2) as store,
        pytest.raises(StoreUnavailable, match=r"cannot reach http://127\.0\.0\.1:9/query") as raised,
    ):
        store.query("ASK {}")
    assert "\n" not in str(raised.value)


def test_the_live_server_reports_a_bad_query_with_its_own_message(oxigraph_server: str) -> None:
    with SparqlEndpointStore.oxigraph(oxigraph_server) as store, pytest.raises(QueryError) as raised:
        store.query("SELECT ?s WHERE { ?s ?p }")
    assert raised.value.status == 400
    assert raised.value.endpoint == f"{oxigraph_server}/query"
    assert "1:" in raised.value.message  # the server's parser position


def recording(answer: httpx.Response) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport that records requests and gives one canned answer: for checking what goes on the
    wire; the real server behaviour is covered by the suite against Oxigraph."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return seen, httpx.MockTransport(handle)


def test_basic_credentials_are_sent() -> None:
    seen, transport = recording(
        httpx.Response(200, content=EMPTY_SELECT, headers={"Content-Type": "application/sparql-results+json"})
    )
    with SparqlEndpointStore(
        "http://sparql.test/q", user="ada", password="s3cret", transport=transport
    ) as store:
        store.query("SELECT ?s WHERE { ?s ?p ?o }")
    assert seen[0].headers["Authorization"] == httpx.BasicAuth("ada", "s3cret")._auth_header


def test_a_bearer_token_is_sent_and_a_refusal_is_a_query_error() -> None:
    seen, transport = recording(httpx.Response(401, text="bad token\n"))
    with (
        SparqlEndpointStore("http://sparql.test/q", token="t0k", transport=transport) as store,
        pytest.raises(QueryError, match="answered 401: bad token") as raised,
    ):
        store.update("CLEAR DEFAULT")
    assert seen[0].headers["Authorization"] == "Bearer t0k"
    assert raised.value.status == 401


def test_server_failures_are_store_errors() -> None:
    _, transport = recording(httpx.Response(503, text="overloaded"))
    with (
        SparqlEndpointStore("http://sparql.test/q", transport=transport) as store,
        pytest.raises(StoreError, match="503: overloaded") as raised,
    ):
        store.query("ASK {}")
    assert not isinstance(raised.value, QueryError)


def test_a_timeout_is_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        SparqlEndpointStore("http://sparql.test/q", transport=httpx.MockTransport(slow)) as store,
        pytest.raises(StoreUnavailable, match="did not answer in time"),
    ):
        store.query("ASK {}")


def test_queries_are_posted_with_the_dataset_as_protocol_parameters() -> None:
    seen, transport = recording(
        httpx.Response(200, content=EMPTY_SELECT, headers={"Content-Type": "application/sparql-results+json"})
    )
    with SparqlEndpointStore("http://sparql.test/q", transport=transport) as store:
        store.query("SELECT ?s WHERE { ?s ?p ?o }", default_graph=[G], named_graphs=[G])
    form = parse_qs(seen[0].content.decode())
    assert seen[0].method == "POST"
    assert form["default-graph-uri"] == [G.value]
    assert form["named-graph-uri"] == [G.value]


def test_graph_store_load_posts_the_data_once_to_the_graph() -> None:
    seen, transport = recording(httpx.Response(204))
    with SparqlEndpointStore(
        "http://sparql.test/q", graph_store_url="http://sparql.test/g", transport=transport
    ) as store:
        store.load(b"<urn:a> <urn:b> <urn:c> .", format=RdfFormat.N_TRIPLES, graph=G)
    assert len(seen) == 1
    assert seen[0].url.params["graph"] == G.value
    assert seen[0].headers["Content-Type"] == "application/n-triples"


def test_conflicting_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        SparqlEndpointStore("http://sparql.test/q", user="a", password="b", token="c")
    with pytest.raises(ValueError, match="go together"):
        SparqlEndpointStore("http://sparql.test/q", user="a")


def test_a_reader_can_open_the_store_a_running_node_holds(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "node") as writer:
        writer.extend([QUAD])
        writer.flush()
        with pytest.raises(StoreUnavailable):
            EmbeddedStore(tmp_path / "node")  # a second writer would corrupt it: RocksDB's lock says no
        with EmbeddedStore(tmp_path / "node", read_only=True) as reader:
            assert reader.count(G) == 1


def test_public_queries_need_a_store_that_confines_datasets() -> None:
    from knowledge.graphs import NodeGraphs

    seen, transport = recording(httpx.Response(500))
    unverified = SparqlEndpointStore("http://sparql.test/q", transport=transport)
    with pytest.raises(StoreError, match="not known to confine"):
        NodeGraphs(NamedNode("https://host.example/nodes/ada"), unverified).query_public("ASK {}")
    assert seen == []  # refused before anything was sent
    assert SparqlEndpointStore.oxigraph("http://127.0.0.1:9").confines_datasets
    assert EmbeddedStore().confines_datasets
