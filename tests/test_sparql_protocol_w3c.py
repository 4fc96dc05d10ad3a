"""A selection of the W3C SPARQL 1.1 Protocol tests, table-driven, against a real host on loopback.

Source: https://github.com/w3c/rdf-tests, sparql/sparql11/protocol/manifest.ttl; each row names its
test. The tests' graphs ``http://kasei.us/2009/09/sparql/data/dataN.rdf`` cannot exist on a SPORE
endpoint (its dataset is its nodes' public graphs), so ``{dataN}`` stands for one of alice's public
graphs holding the triple ``<…/dataN.rdf> a foaf:Document`` that the tests' data files hold. Updates
carry the host's bearer token and write public graphs, which is what the endpoint allows.

Documented differences (docs/federation.md, "SPARQL endpoint"), pinned by the last table:
query_multiple_dataset (a query's FROM is refused, not overridden) and update_dataset_* (the
using-graph-uri parameters are refused; write USING clauses).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pyoxigraph as ox
import pytest
import rdflib

from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore

pytestmark = pytest.mark.slow
TOKEN = "w3c-protocol-token"
KASEI = "http://kasei.us/2009/09/sparql/data/"
FOAF_DOCUMENT = ox.NamedNode("http://xmlns.com/foaf/0.1/Document")
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
GRAPHS = {
    "data0": GraphKind.BLUEPRINT,
    "data1": GraphKind.CATALOGUE,
    "data2": GraphKind.MODELS,
    "data3": GraphKind.DECISIONS,
}
RESULTS = (
    "application/sparql-results+json",
    "application/sparql-results+xml",
    "text/csv",
    "text/tab-separated-values",
)
RDF = ("text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml")
FORM = "application/x-www-form-urlencoded"
DIRECT_QUERY = "application/sparql-query"
DIRECT_UPDATE = "application/sparql-update"


@dataclass(frozen=True)
class Case:
    """One request of a W3C protocol test; ``{dataN}`` in ``query``/``body`` is a graph IRI."""

    name: str
    method: str
    query: str = ""  # the URL's query string
    content_type: str | None = None
    body: str | bytes = b""
    status: int = 200  # ours, always within the class the W3C test expects
    boolean: bool | None = None  # the expected boolean result
    media: tuple[str, ...] = ()  # acceptable response media types
    token: bool = False


def q(text: str) -> str:
    return quote(text, safe="{}")


D1, D2, D3 = (f"<{KASEI}data{n}.rdf>" for n in (1, 2, 3))
ASK_12 = f"ASK {{ {D1} a ?type . {D2} a ?type . }}"
ASK_NAMED = f"ASK {{ GRAPH ?g1 {{ {D1} a ?type }} GRAPH ?g2 {{ {D2} a ?type }} }}"
ASK_FULL = f"ASK {{ {D3} a ?type GRAPH ?g1 {{ {D1} a ?type }} GRAPH ?g2 {{ {D2} a ?type }} }}"

CASES = [
    Case("query_post_form", "POST", "default-graph-uri={data0}", FORM, "query=ASK%20%7B%7D", boolean=True),
    Case(
        "query_dataset_default_graphs_get",
        "GET",
        f"query={q(ASK_12)}&default-graph-uri={{data1}}&default-graph-uri={{data2}}",
        boolean=True,
    ),
    Case(
        "query_dataset_default_graphs_post",
        "POST",
        "default-graph-uri={data1}&default-graph-uri={data2}",
        DIRECT_QUERY,
        ASK_12,
        boolean=True,
    ),
    Case(
        "query_dataset_named_graphs_post",
        "POST",
        "named-graph-uri={data1}&named-graph-uri={data2}",
        DIRECT_QUERY,
        ASK_NAMED,
        boolean=True,
    ),
    Case(
        "query_dataset_named_graphs_get",
        "GET",
        f"query={q(ASK_NAMED)}&named-graph-uri={{data1}}&named-graph-uri={{data2}}",
        boolean=True,
    ),
    Case(
        "query_dataset_full",
        "POST",
        "default-graph-uri={data3}&named-graph-uri={data1}&named-graph-uri={data2}",
        DIRECT_QUERY,
        ASK_FULL,
        boolean=True,
    ),
    Case("query_get", "GET", "query=SELECT%20%2A%20%7B%7D", media=RESULTS),
    Case(
        "query_content_type_select",
        "POST",
        "default-graph-uri={data0}",
        DIRECT_QUERY,
        "SELECT (1 AS ?value) {}",
        media=RESULTS,
    ),
    Case("query_content_type_ask", "POST", "default-graph-uri={data0}", DIRECT_QUERY, "ASK {}", boolean=True),
    Case(
        "query_content_type_describe",
        "POST",
        "default-graph-uri={data0}",
        DIRECT_QUERY,
        "DESCRIBE <http://example.org/>",
        media=RDF,
    ),
    Case(
        "query_content_type_construct",
        "POST",
        "default-graph-uri={data0}",
        DIRECT_QUERY,
        "CONSTRUCT { <s> <p> 1 } WHERE {}",
        media=RDF,
    ),
    Case("query_post_direct", "POST", "", DIRECT_QUERY, "ASK {}", boolean=True),
    Case(
        "update_post_form",
        "POST",
        "",
        FORM,
        "update=" + q("INSERT DATA { GRAPH <{data3}> { <urn:form> a <urn:Updated> } }"),
        status=204,
        token=True,
    ),
    Case(
        "update_post_direct",
        "POST",
        "",
        DIRECT_UPDATE,
        "INSERT DATA { GRAPH <{data3}> { <urn:direct> a <urn:Updated> } }",
        status=204,
        token=True,
    ),
    Case(
        "update_base_uri",
        "POST",
        "",
        DIRECT_UPDATE,
        "INSERT DATA { GRAPH <{data3}> { <based> a <urn:Updated> } }",
        status=204,
        token=True,
    ),
    Case("bad_query_method", "PUT", "query=ASK%20%7B%7D&default-graph-uri={data0}", FORM, status=405),
    Case("bad_multiple_queries", "GET", "query=ASK%20%7B%7D&query=SELECT%20%2A%20%7B%7D", status=400),
    Case("bad_query_wrong_media_type", "POST", "", "text/plain", "ASK {}", status=415),
    Case("bad_query_missing_form_type", "POST", "", None, "query=ASK%20%7B%7D", status=415),
    Case("bad_query_missing_direct_type", "POST", "", None, "ASK {}", status=415),
    Case(
        "bad_query_non_utf8",
        "POST",
        "",
        "application/sparql-query; charset=UTF-16",
        "ASK {}".encode("utf-16"),
        status=415,
    ),
    Case("bad_query_syntax", "GET", "query=ASK%20%7B", status=400),
    Case("bad_update_get", "GET", "update=CLEAR%20ALL", status=405),
    Case("bad_multiple_updates", "POST", "", FORM, "update=CLEAR%20NAMED&update=CLEAR%20DEFAULT", status=400),
    Case("bad_update_wrong_media_type", "POST", "", "text/plain", "CLEAR NAMED", status=415, token=True),
    Case("bad_update_missing_form_type", "POST", "", None, "update=CLEAR%20NAMED", status=415, token=True),
    Case(
        "bad_update_non_utf8",
        "POST",
        "",
        "application/sparql-update; charset=UTF-16",
        "CLEAR NAMED".encode("utf-16"),
        status=415,
        token=True,
    ),
    Case("bad_update_syntax", "POST", "", FORM, "update=" + q("INSERT DATA { GRAPH"), status=400, token=True),
    Case(
        "bad_update_dataset_conflict",
        "POST",
        "using-graph-uri={data1}",
        DIRECT_UPDATE,
        "DELETE { ?s ?p ?o } USING <{data2}> WHERE { ?s ?p ?o }",
        status=400,
        token=True,
    ),
]

# Where SPORE answers differently from the W3C expectation, on purpose (docs/federation.md).
DIFFERENCES = [
    # A query's FROM is refused on every public endpoint (Virtuoso merges it with the protocol dataset).
    Case(
        "query_multiple_dataset",
        "POST",
        "default-graph-uri={data1}",
        DIRECT_QUERY,
        f"ASK FROM <{{data2}}> {{ <{KASEI}data1.rdf> a ?type }}",
        status=400,
    ),
    # The update's own USING clauses name its dataset; the protocol parameters are not applied.
    Case(
        "update_dataset_default_graph",
        "POST",
        "using-graph-uri={data1}",
        DIRECT_UPDATE,
        "INSERT { GRAPH <{data3}> { ?s a <urn:Copied> } } WHERE { ?s a ?type }",
        status=400,
        token=True,
    ),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    store = EmbeddedStore()
    sock = bind_loopback()
    config = HostConfig(
        base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        data_dir=Path(tmp_path_factory.mktemp("w3c")),
        nodes=(NodeSpec("alice"),),
        allow_loopback=True,
        sparql_update_token=TOKEN,
    )
    running = RunningHost(build_host(config, store=store), sock).start()
    store.extend(
        ox.Quad(ox.NamedNode(f"{KASEI}{name}.rdf"), RDF_TYPE, FOAF_DOCUMENT, ox.NamedNode(iri))
        for name, iri in graph_names(running).items()
    )
    yield running
    running.stop()


def graph_names(host: RunningHost) -> dict[str, str]:
    node = ox.NamedNode(f"{host.runtime.config.base_url}/nodes/alice")
    return {name: graph_iri(node, kind).value for name, kind in GRAPHS.items()}


def fill(text: str, names: dict[str, str], *, encode: bool) -> str:
    for name, iri in names.items():
        text = text.replace("{" + name + "}", quote(iri, safe="") if encode else iri)
    return text


def send(host: RunningHost, case: Case) -> httpx.Response:
    names = graph_names(host)
    url = f"{host.runtime.config.base_url}/sparql"
    if case.query:
        url += "?" + fill(case.query, names, encode=True)
    body = case.body
    if isinstance(body, str):
        body = fill(body, names, encode=case.content_type == FORM).encode()
    headers = {"content-type": case.content_type} if case.content_type else {}
    if case.token:
        headers["authorization"] = f"Bearer {TOKEN}"
    # httpx adds no Content-Type of its own to raw content, so the "missing type" cases stay missing.
    return httpx.request(case.method, url, content=body or None, headers=headers, timeout=10)


@pytest.mark.parametrize("case", CASES + DIFFERENCES, ids=lambda case: case.name)
def test_w3c_protocol(host: RunningHost, case: Case) -> None:
    response = send(host, case)
    assert response.status_code == case.status, response.text
    media = response.headers.get("content-type", "").split(";")[0]
    if case.boolean is not None:
        assert media in RESULTS
        assert response.json()["boolean"] is case.boolean
    if case.media:
        assert media in case.media
        if case.media == RDF:
            rdflib.Graph().parse(data=response.text, format="turtle")
    if case.status >= 400:
        assert response.text.strip() and len(response.text.strip().splitlines()) == 1


def test_updates_landed_with_the_endpoint_as_base(host: RunningHost) -> None:
    """update_post_form, update_post_direct and update_base_uri: the writes are visible afterwards."""
    for case in CASES:
        if case.name.startswith("update_"):
            send(host, case)
    base = host.runtime.config.base_url
    query = "SELECT ?s WHERE { ?s a <urn:Updated> } ORDER BY ?s"
    response = httpx.get(f"{base}/sparql", params={"query": query}, timeout=10)
    subjects = [row["s"]["value"] for row in response.json()["results"]["bindings"]]
    assert subjects == [f"{base}/based", "urn:direct", "urn:form"]
