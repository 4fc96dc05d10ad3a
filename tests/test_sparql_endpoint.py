"""The public SPARQL endpoint over real HTTP: SPARQLWrapper as an independent client, privacy, limits,
updates with credentials, and the service description.

One host serves nodes alice and bob from an embedded store. Alice's private graph holds a listener
IRI that no request, whatever its GRAPH, FROM or protocol dataset, may ever return.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest
import rdflib
from SPARQLWrapper import JSON, POST, TURTLE, URLENCODED, XML, SPARQLWrapper
from SPARQLWrapper.SPARQLExceptions import QueryBadFormed

from federation.config import HostConfig, Limits, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from federation.sparql_protocol import negotiate
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore
from knowledge.store.bindings import outer_limit

pytestmark = pytest.mark.slow
TOKEN = "test-update-token"
LISTENER = "https://listeners.example/secret-listener-42"
ARTIST = "https://music.example/artist/portishead"
NAME = ox.NamedNode("http://xmlns.com/foaf/0.1/name")
SD = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")


def graph(host: RunningHost, node: str, kind: GraphKind) -> str:
    return graph_iri(ox.NamedNode(f"{host.runtime.config.base_url}/nodes/{node}"), kind).value


def serve(root: Path, store: EmbeddedStore, limits: Limits, token: str | None) -> RunningHost:
    sock = bind_loopback()
    config = HostConfig(
        base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        data_dir=root,
        nodes=(NodeSpec("alice"), NodeSpec("bob")),
        allow_loopback=True,
        limits=limits,
        sparql_update_token=token,
    )
    return RunningHost(build_host(config, store=store), sock).start()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    store = EmbeddedStore()
    running = serve(tmp_path_factory.mktemp("sparql"), store, Limits(), TOKEN)
    base = running.runtime.config.base_url

    def quad(s: str, o: ox.Literal | ox.NamedNode, node: str, kind: GraphKind) -> ox.Quad:
        return ox.Quad(ox.NamedNode(s), NAME, o, ox.NamedNode(graph(running, node, kind)))

    store.extend(
        [
            quad(ARTIST, ox.Literal("Portishead"), "alice", GraphKind.CATALOGUE),
            quad(f"{base}/nodes/alice/snapshots/1", ox.Literal("round 1"), "alice", GraphKind.MODELS),
            quad("https://music.example/artist/bjork", ox.Literal("Björk"), "bob", GraphKind.CATALOGUE),
            quad(LISTENER, ox.Literal("a listener"), "alice", GraphKind.PRIVATE),
            quad(ARTIST, ox.NamedNode(LISTENER), "alice", GraphKind.PRIVATE),
        ]
    )
    store.extend([ox.Quad(ox.NamedNode(LISTENER), NAME, ox.Literal("outside every node"))])  # default graph
    yield running
    running.stop()


def endpoint(host: RunningHost, node: str | None = None) -> str:
    base = host.runtime.config.base_url
    return f"{base}/nodes/{node}/sparql" if node else f"{base}/sparql"


# -- SPARQLWrapper, an independent client ------------------------------------------------------------


def test_sparqlwrapper_get_json(host: RunningHost) -> None:
    client = SPARQLWrapper(endpoint(host))
    client.setQuery("SELECT ?name WHERE { ?artist <http://xmlns.com/foaf/0.1/name> ?name } ORDER BY ?name")
    client.setReturnFormat(JSON)
    rows = client.queryAndConvert()["results"]["bindings"]
    assert [row["name"]["value"] for row in rows] == ["Björk", "Portishead", "round 1"]


def test_sparqlwrapper_post_form_xml(host: RunningHost) -> None:
    client = SPARQLWrapper(endpoint(host, "alice"))
    client.setMethod(POST)
    client.setRequestMethod(URLENCODED)
    client.setReturnFormat(XML)
    client.setQuery(f"SELECT ?name WHERE {{ <{ARTIST}> <http://xmlns.com/foaf/0.1/name> ?name }}")
    document = client.queryAndConvert()  # a minidom Document
    values = [node.firstChild.data for node in document.getElementsByTagName("literal")]
    assert values == ["Portishead"]


def test_sparqlwrapper_ask_and_construct(host: RunningHost) -> None:
    client = SPARQLWrapper(endpoint(host, "bob"))
    client.setReturnFormat(JSON)
    client.setQuery(f"ASK {{ <{ARTIST}> ?p ?o }}")
    assert client.queryAndConvert()["boolean"] is False  # alice's artist is not in bob's graphs
    client.setQuery("CONSTRUCT WHERE { ?s ?p ?o }")
    client.setReturnFormat(TURTLE)
    parsed = rdflib.Graph().parse(data=client.queryAndConvert(), format="turtle")
    assert {str(o) for o in parsed.objects()} == {"Björk"}


def test_sparqlwrapper_sees_a_malformed_query(host: RunningHost) -> None:
    client = SPARQLWrapper(endpoint(host))
    client.setQuery("SELECT * WHERE { ?s ?p ")
    with pytest.raises(QueryBadFormed, match="malformed query"):
        client.query()


# -- privacy -------------------------------------------------------------------------------------------

PRIVATE_PROBES = [
    ("SELECT * WHERE {{ ?s ?p ?o }}", {}),
    ("SELECT * WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}", {}),
    ("SELECT * WHERE {{ GRAPH <{private}> {{ ?s ?p ?o }} }}", {}),
    ("SELECT * WHERE {{ ?s ?p ?o FILTER EXISTS {{ GRAPH <{private}> {{ ?s ?p ?o }} }} }}", {}),
    ("SELECT * FROM <{private}> WHERE {{ ?s ?p ?o }}", {}),
    ("SELECT * FROM NAMED <{private}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}", {}),
    ("SELECT * WHERE {{ ?s ?p ?o }}", {"default-graph-uri": "{private}"}),
    ("SELECT * WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}", {"named-graph-uri": "{private}"}),
    ("DESCRIBE <{listener}>", {}),
    ("CONSTRUCT WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}", {}),
    ("SELECT * WHERE {{ <{artist}> ?p ?o }}", {}),
    ("SELECT * WHERE {{ SERVICE <{base}/sparql> {{ ?s ?p ?o }} }}", {}),
]


@pytest.mark.parametrize("node", [None, "alice"])
@pytest.mark.parametrize(("template", "params"), PRIVATE_PROBES)
def test_private_data_is_never_returned(
    host: RunningHost, node: str | None, template: str, params: dict
) -> None:
    values = {
        "private": graph(host, "alice", GraphKind.PRIVATE),
        "listener": LISTENER,
        "artist": ARTIST,
        "base": host.runtime.config.base_url,
    }
    query = template.format(**values)
    dataset = {name: value.format(**values) for name, value in params.items()}
    response = httpx.get(endpoint(host, node), params={"query": query, **dataset}, timeout=10)
    assert response.status_code in (200, 400), response.text
    assert LISTENER not in response.text
    assert "a listener" not in response.text and "outside every node" not in response.text


def test_asking_about_the_private_graph_answers_false(host: RunningHost) -> None:
    query = f"ASK {{ GRAPH <{graph(host, 'alice', GraphKind.PRIVATE)}> {{ ?s ?p ?o }} }}"
    response = httpx.get(endpoint(host, "alice"), params={"query": query}, timeout=10)
    assert response.json() == {"head": {}, "boolean": False}


def test_from_and_service_are_refused_with_the_reason(host: RunningHost) -> None:
    for query, word in [
        ("SELECT * FROM <http://x> { ?s ?p ?o }", "FROM"),
        ("ASK { SERVICE <http://x> {} }", "SERVICE"),
    ]:
        response = httpx.get(endpoint(host), params={"query": query}, timeout=10)
        assert response.status_code == 400
        assert response.text.startswith("refused: ") and word in response.text
        assert len(response.text.strip().splitlines()) == 1


def test_a_node_endpoint_serves_only_its_own_graphs(host: RunningHost) -> None:
    query = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"
    response = httpx.get(
        endpoint(host, "bob"), params={"query": query}, headers={"accept": "text/csv"}, timeout=10
    )
    assert response.text.split()[1:] == [graph(host, "bob", GraphKind.CATALOGUE)]
    assert httpx.get(endpoint(host, "nobody"), params={"query": "ASK {}"}, timeout=10).status_code == 404


# -- results and negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/sparql-results+json"),
        ("*/*", "application/sparql-results+json"),
        ("text/csv;q=0.5, application/sparql-results+xml", "application/sparql-results+xml"),
        ("text/tab-separated-values", "text/tab-separated-values"),
        ("application/json;q=0.2, text/csv;q=0.9", "text/csv"),
        ("text/*", "text/csv"),
        ("application/sparql-results+json;q=0, */*;q=0.1", "application/sparql-results+xml"),
        ("image/png", None),
    ],
)
def test_negotiation_table(accept: str | None, expected: str | None) -> None:
    offers = [
        "application/sparql-results+json",
        "application/sparql-results+xml",
        "text/csv",
        "text/tab-separated-values",
    ]
    assert negotiate(accept, offers) == expected


@pytest.mark.parametrize(
    ("accept", "media", "marker"),
    [
        ("text/tab-separated-values", "text/tab-separated-values", '"Portishead"'),
        ("text/csv", "text/csv", "Portishead"),
        ("application/sparql-results+xml", "application/sparql-results+xml", "<literal>Portishead</literal>"),
    ],
)
def test_select_formats(host: RunningHost, accept: str, media: str, marker: str) -> None:
    query = f"SELECT ?name WHERE {{ <{ARTIST}> <http://xmlns.com/foaf/0.1/name> ?name }}"
    response = httpx.get(endpoint(host), params={"query": query}, headers={"accept": accept}, timeout=10)
    assert response.headers["content-type"].startswith(media)
    assert marker in response.text


def test_construct_as_compacted_json_ld_and_n_triples(host: RunningHost) -> None:
    query = f"CONSTRUCT WHERE {{ <{ARTIST}> ?p ?o }}"
    response = httpx.get(
        endpoint(host), params={"query": query}, headers={"accept": "application/ld+json"}, timeout=10
    )
    document = response.json()
    assert document["@context"] == "https://w3id.org/spore/context.jsonld"
    assert document["@id"] == ARTIST
    nt = httpx.get(
        endpoint(host), params={"query": query}, headers={"accept": "application/n-triples"}, timeout=10
    )
    assert nt.text.strip() == f'<{ARTIST}> <http://xmlns.com/foaf/0.1/name> "Portishead" .'


def test_unservable_accept_is_406(host: RunningHost) -> None:
    response = httpx.get(
        endpoint(host), params={"query": "ASK {}"}, headers={"accept": "text/turtle"}, timeout=10
    )
    assert response.status_code == 406  # a boolean has no RDF form
    assert "results are served as" in response.text


def test_malformed_query_gets_the_parsers_position(host: RunningHost) -> None:
    response = httpx.get(endpoint(host), params={"query": "SELECT * WHERE { ?s ?p"}, timeout=10)
    assert response.status_code == 400
    assert response.text.startswith("malformed query: error at 1:")


def test_browsers_may_query_from_any_origin(host: RunningHost) -> None:
    headers = {
        "origin": "https://yasgui.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    preflight = httpx.options(endpoint(host), headers=headers, timeout=10)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "content-type" in preflight.headers["access-control-allow-headers"]
    answer = httpx.post(
        endpoint(host), content="ASK {}", headers={"content-type": "application/sparql-query"}, timeout=10
    )
    assert answer.headers["access-control-allow-origin"] == "*"


# -- service description -------------------------------------------------------------------------------


def test_service_description(host: RunningHost) -> None:
    response = httpx.get(endpoint(host, "alice"), timeout=10)
    assert response.headers["content-type"].startswith("text/turtle")
    description = rdflib.Graph().parse(data=response.text, format="turtle")
    service = rdflib.URIRef(endpoint(host, "alice"))
    assert (service, SD.endpoint, service) in description
    assert (service, SD.supportedLanguage, SD.SPARQL11Update) in description  # a token is configured
    names = {str(name) for name in description.objects(None, SD.name)}
    assert graph(host, "alice", GraphKind.CATALOGUE) in names
    assert graph(host, "alice", GraphKind.PRIVATE) not in names
    assert len(names) == 5


# -- updates ---------------------------------------------------------------------------------------------


def post_update(host: RunningHost, text: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"content-type": "application/sparql-update"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(endpoint(host), content=text, headers=headers, timeout=10)


def test_update_needs_the_token(host: RunningHost) -> None:
    text = f'INSERT DATA {{ GRAPH <{graph(host, "bob", GraphKind.MODELS)}> {{ <urn:x> <urn:p> "y" }} }}'
    missing = post_update(host, text, token=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert post_update(host, text, token="wrong").status_code == 403
    assert httpx.post(endpoint(host), data={"update": text}, timeout=10).status_code == 401
    ask = httpx.get(endpoint(host, "bob"), params={"query": "ASK { <urn:x> ?p ?o }"}, timeout=10)
    assert ask.json()["boolean"] is False


def test_update_with_the_token_writes_a_public_graph(host: RunningHost) -> None:
    text = f'INSERT DATA {{ GRAPH <{graph(host, "bob", GraphKind.DECISIONS)}> {{ <urn:d> <urn:p> "kept" }} }}'
    assert post_update(host, text).status_code == 204
    ask = httpx.get(endpoint(host, "bob"), params={"query": "ASK { <urn:d> ?p 'kept' }"}, timeout=10)
    assert ask.json()["boolean"] is True


@pytest.mark.parametrize(
    "template",
    [
        'INSERT DATA {{ GRAPH <{private}> {{ <urn:x> <urn:p> "y" }} }}',
        "DROP GRAPH <{private}>",
        "DROP ALL",
        "CLEAR DEFAULT",
        'INSERT DATA {{ <urn:x> <urn:p> "in the store default graph" }}',
        "INSERT {{ GRAPH <{public}> {{ ?s ?p ?o }} }} WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
        "INSERT {{ GRAPH <{public}> {{ ?s ?p ?o }} }} USING NAMED <{private}>"
        " WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
        "DELETE {{ GRAPH ?g {{ ?s ?p ?o }} }} USING NAMED <{public}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}",
        "LOAD <http://127.0.0.1:1/data.ttl> INTO GRAPH <{public}>",
        "COPY <{private}> TO <{public}>",
        "INSERT {{ GRAPH <{public}> {{ ?s ?p ?o }} }} USING <{public}>"
        " WHERE {{ SERVICE <http://x> {{ ?s ?p ?o }} }}",
    ],
)
def test_updates_never_touch_or_read_the_private_graph(host: RunningHost, template: str) -> None:
    private = graph(host, "alice", GraphKind.PRIVATE)
    public = graph(host, "alice", GraphKind.MODELS)
    response = post_update(host, template.format(private=private, public=public))
    assert response.status_code in (400, 403), response.text
    assert host.runtime.store.count(ox.NamedNode(private)) == 2
    leaked = httpx.get(endpoint(host), params={"query": f"ASK {{ ?s ?p <{LISTENER}> }}"}, timeout=10)
    assert leaked.json()["boolean"] is False


def test_update_confined_by_using_copies_public_data_only(host: RunningHost) -> None:
    catalogue, models = graph(host, "alice", GraphKind.CATALOGUE), graph(host, "alice", GraphKind.MODELS)
    text = (
        f"INSERT {{ GRAPH <{models}> {{ ?s <urn:copied> ?o }} }} "
        f"USING NAMED <{catalogue}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}"
    )
    assert post_update(host, text).status_code == 204
    query = "SELECT ?o WHERE { ?s <urn:copied> ?o }"
    rows = httpx.get(endpoint(host, "alice"), params={"query": query}, timeout=10).json()["results"][
        "bindings"
    ]
    assert [row["o"]["value"] for row in rows] == ["Portishead"]


# -- limits ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    store = EmbeddedStore()
    limits = Limits(sparql_timeout_seconds=0.2, sparql_max_result_bytes=4096, sparql_workers=1)
    running = serve(tmp_path_factory.mktemp("limited"), store, limits, token=None)
    rng = random.Random(7)
    target = ox.NamedNode(graph(running, "alice", GraphKind.CATALOGUE))
    store.extend(
        ox.Quad(ox.NamedNode(f"urn:s{i}"), NAME, ox.Literal(rng.random()), target) for i in range(2500)
    )
    yield running
    running.stop()


def test_result_over_the_size_limit_is_422(limited: RunningHost) -> None:
    response = httpx.get(endpoint(limited), params={"query": "SELECT * { ?s ?p ?o }"}, timeout=10)
    assert response.status_code == 422
    assert response.text.strip() == "the result is larger than 4,096 bytes; add a LIMIT"
    small = httpx.get(endpoint(limited), params={"query": "SELECT * { ?s ?p ?o } LIMIT 3"}, timeout=10)
    assert small.status_code == 200 and len(small.json()["results"]["bindings"]) == 3
    # A LIMIT small enough to be written in one go is held to the same cap.
    bounded = httpx.get(endpoint(limited), params={"query": "SELECT * { ?s ?p ?o } LIMIT 2000"}, timeout=10)
    assert bounded.status_code == 422 and "4,096 bytes" in bounded.text


def test_the_outer_limit_is_told_from_limits_in_sub_queries_strings_and_comments() -> None:
    assert outer_limit("SELECT * { ?s ?p ?o } LIMIT 1000") == 1000
    assert outer_limit("SELECT * { ?s ?p ?o } ORDER BY DESC(?o) limit 5 OFFSET 10") == 5
    assert outer_limit("SELECT * { { SELECT ?s { ?s ?p ?o } LIMIT 3 } ?s ?q ?r }") is None
    assert outer_limit('SELECT * { ?s ?p "LIMIT 3" }') is None
    assert outer_limit("SELECT * { ?s ?p ?o } # LIMIT 3") is None
    assert outer_limit("SELECT * { ?s ?p ?o } LIMIT 10 VALUES ?s { <urn:a> }") is None


def test_request_body_over_the_cap_is_413(host: RunningHost) -> None:
    padding = "#" + "x" * (host.runtime.config.limits.max_body_bytes + 1) + "\nASK {}"
    headers = {"content-type": "application/sparql-query"}
    response = httpx.post(endpoint(host), content=padding, headers=headers, timeout=10)
    assert response.status_code == 413 and "request body over" in response.text


def test_query_past_the_deadline_is_503(limited: RunningHost) -> None:
    query = "SELECT (COUNT(*) AS ?n) { ?a ?p ?b . ?c ?p ?d }"  # 6.25 million joined rows
    response = httpx.get(endpoint(limited), params={"query": query}, timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "limit" in response.text


def test_update_is_disabled_without_a_configured_token(limited: RunningHost) -> None:
    response = post_update(limited, "CLEAR GRAPH <urn:g>", token="anything")
    assert response.status_code == 403 and "disabled" in response.text


def test_a_node_spawned_on_the_running_host_is_served(limited: RunningHost) -> None:
    """Spawning adds actors to a host that is already serving: the endpoints must follow."""
    assert httpx.get(endpoint(limited, "carol"), timeout=10).status_code == 404
    limited.runtime.actors.add_node(NodeSpec("carol"))
    own = httpx.get(endpoint(limited, "carol"), timeout=10)
    assert own.status_code == 200
    assert graph(limited, "carol", GraphKind.MODELS) in own.text
    host_names = httpx.get(endpoint(limited), timeout=10).text
    assert graph(limited, "carol", GraphKind.CATALOGUE) in host_names
    assert httpx.head(endpoint(limited, "carol"), timeout=10).status_code == 200
