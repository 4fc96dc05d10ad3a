"""Linked data: content negotiation, dereferencing every IRI a node mints, the ontology, VoID.

The pure parts (negotiation, the HTML renderer, VoID) are table tests; the rest runs against three
real hosts (tests/linked_data_world.py) and parses what comes back with rdflib, never by string.
"""

from __future__ import annotations

import json

import httpx
import pytest
from pyoxigraph import Literal, NamedNode, Triple
from rdflib import RDF, Graph, Namespace, URIRef
from rdflib.compare import isomorphic

import ontology
from federation.jsonld import known_context
from federation.linked_data.html import render_resource_page
from federation.linked_data.negotiation import Representation, choose, not_acceptable_message
from federation.linked_data.void import NodeDataset, void_description
from tests.linked_data_world import World

VOID = Namespace("http://rdfs.org/ns/void#")
SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
SPORE = Namespace(ontology.NAMESPACE)
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
R = Representation


# -- negotiation, pure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "activity", "expected"),
    [
        (None, True, R.ACTIVITY_JSON),  # Mastodon-era clients and curl keep getting AS2
        ("", True, R.ACTIVITY_JSON),
        ("application/activity+json, application/ld+json", True, R.ACTIVITY_JSON),
        ("application/json", True, R.JSON_LD),  # the AS2 document, as ld+json
        ("application/activity+json;q=0", True, None),
        ("*/*", True, R.ACTIVITY_JSON),
        ("*/*", False, R.TURTLE),  # RDF tools
        (None, False, R.TURTLE),
        (BROWSER, True, R.HTML),
        (BROWSER, False, R.HTML),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', True, R.JSON_LD),
        ("application/activity+json", False, None),  # not an AP object
        ("text/turtle", True, R.TURTLE),
        ("application/n-triples", False, R.N_TRIPLES),
        ("text/plain", False, R.N_TRIPLES),  # N-Triples before RDF 1.1
        ("application/json", False, R.JSON_LD),
        ("text/html;q=0.5, application/activity+json;q=0.1", True, R.HTML),  # q-values decide
        ("text/turtle;q=0.2, application/ld+json;q=0.9", False, R.JSON_LD),
        ("text/*;q=0.3, application/n-triples;q=0.2", False, R.TURTLE),
        ("text/turtle;q=0, */*;q=0.1", False, R.JSON_LD),  # q=0 means "not this"
        ("image/png", False, None),
        ("application/rdf+xml", True, None),
    ],
)
def test_negotiation_table(accept: str | None, activity: bool, expected: Representation | None) -> None:
    assert choose(accept, activity=activity) == expected


def test_406_message_lists_what_is_served() -> None:
    message = not_acceptable_message(activity=True)
    for media in ("application/activity+json", "application/ld+json", "text/turtle", "text/html"):
        assert media in message
    assert "application/activity+json" not in not_acceptable_message(activity=False)


# -- the generic HTML page and VoID, pure ------------------------------------------------------------


def test_html_page_escapes_the_graph_and_links_resources_and_formats() -> None:
    iri = "http://h.example/nodes/ada/blueprint/1"
    triples = [
        Triple(NamedNode(iri), NamedNode("http://purl.org/dc/terms/title"), Literal("<script>x</script>")),
        Triple(NamedNode(iri), NamedNode(SPORE.trains), NamedNode("https://w3id.org/spore/ns#LightGCN")),
        Triple(NamedNode("http://h.example/nodes/ada"), NamedNode(SPORE.blueprint), NamedNode(iri)),
    ]
    page = render_resource_page(iri, triples, base_url="http://h.example")
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    assert 'href="http://h.example/ns#LightGCN"' in page  # w3id IRIs resolve on this host
    assert 'href="http://h.example/nodes/ada"' in page  # what points here
    assert f'href="{iri}?format=turtle"' in page and f'href="{iri}?format=jsonld"' in page


def test_void_description_names_endpoints_subsets_and_sizes() -> None:
    triples = void_description(
        "http://h.example/.well-known/void",
        base_url="http://h.example",
        title="SPORE host h.example",
        sparql_endpoint="http://h.example/sparql",
        nodes=[
            NodeDataset(
                "ada",
                "http://h.example/nodes/ada",
                "http://h.example/nodes/ada/sparql",
                {
                    "http://h.example/nodes/ada/graphs/models": 3,
                    "http://h.example/nodes/ada/graphs/blueprint": 4,
                },
            )
        ],
        groups=["http://h.example/groups/jazz"],
    )
    graph = Graph()
    for t in triples:
        graph.add(tuple(URIRef(x.value) if isinstance(x, NamedNode) else _lit(x) for x in t))  # type: ignore[arg-type]
    host = URIRef("http://h.example/.well-known/void#host")
    subset = URIRef("http://h.example/.well-known/void#node-ada")
    assert (host, RDF.type, VOID.Dataset) in graph
    assert graph.value(host, VOID.sparqlEndpoint) == URIRef("http://h.example/sparql")
    assert graph.value(subset, VOID.sparqlEndpoint) == URIRef("http://h.example/nodes/ada/sparql")
    assert graph.value(subset, VOID.triples).toPython() == 7
    assert graph.value(host, VOID.triples).toPython() == 7
    assert (host, VOID.rootResource, URIRef("http://h.example/groups/jazz")) in graph
    assert (host, VOID.vocabulary, URIRef(ontology.NAMESPACE)) in graph


def _lit(term: object) -> object:
    from rdflib import Literal as RdfLiteral

    assert isinstance(term, Literal)
    return RdfLiteral(term.value, datatype=URIRef(term.datatype.value))


# -- three real hosts --------------------------------------------------------------------------------


@pytest.fixture
def world(ld_world: World) -> World:
    return ld_world


def _get(url: str, accept: str | None = None, **params: str) -> httpx.Response:
    return httpx.get(url, headers={"accept": accept} if accept else {}, params=params, timeout=10)


def _parse(response: httpx.Response, iri: str) -> Graph:
    media = response.headers["content-type"].split(";")[0]
    graph = Graph()
    fmt = {"text/turtle": "turtle", "application/n-triples": "nt", "application/ld+json": "json-ld"}[media]
    if fmt == "json-ld":
        # Contexts cannot be fetched offline: give rdflib the copies the host itself ships.
        document = json.loads(response.text)
        contexts = document["@context"] if isinstance(document["@context"], list) else [document["@context"]]
        document["@context"] = [known_context(c)["@context"] if isinstance(c, str) else c for c in contexts]
        graph.parse(data=json.dumps(document), format="json-ld", publicID=iri)
    else:
        graph.parse(data=response.text, format=fmt, publicID=iri)
    return graph


def _minted(world: World) -> list[str]:
    return sorted(
        world.nodes
        | world.groups
        | world.snapshots
        | world.blueprints
        | world.decisions
        | world.recommendations
    )


@pytest.mark.slow
@pytest.mark.parametrize("accept", ["text/turtle", "application/n-triples", "application/ld+json"])
def test_every_minted_iri_dereferences_as_rdf_about_itself(world: World, accept: str) -> None:
    for iri in _minted(world):
        response = _get(iri, accept)
        assert response.status_code == 200, (iri, response.text)
        assert "accept" in response.headers["vary"].lower()
        assert f'<{iri}?format=turtle>; rel="alternate"; type="text/turtle"' in response.headers.get(
            "link", ""
        ), iri
        graph = _parse(response, iri)
        assert any(True for _ in graph.predicate_objects(URIRef(iri))), (iri, accept)


@pytest.mark.slow
def test_artists_dereference_at_their_w3id_path_on_every_host(world: World) -> None:
    for artist in world.artists:
        path = artist.removeprefix("https://w3id.org/spore")
        found = [_get(host.runtime.config.base_url + path, "text/turtle") for host in world.hosts]
        ok = [r for r in found if r.status_code == 200]
        assert ok, artist  # the host whose node has it in its catalogue describes it
        graph = _parse(ok[0], artist)
        assert graph.value(URIRef(artist), URIRef("https://schema.org/name")) is not None


@pytest.mark.slow
def test_private_graph_never_appears_in_any_representation(world: World) -> None:
    for iri in _minted(world) + sorted(world.artists):
        host = (
            next(h for h in world.hosts if iri.startswith(h.runtime.config.base_url))
            if "w3id" not in iri
            else None
        )
        url = (
            iri
            if host
            else world.hosts[0].runtime.config.base_url + iri.removeprefix("https://w3id.org/spore")
        )
        for accept in ("text/turtle", "text/html"):
            text = _get(url, accept).text
            assert "4242" not in text and "listening" not in text, (iri, accept)


@pytest.mark.slow
def test_activitypub_objects_keep_as2_and_add_rdf_and_html(world: World) -> None:
    node = sorted(world.nodes)[0]
    as2 = _get(node, "application/activity+json")
    assert as2.headers["content-type"].startswith("application/activity+json")
    assert as2.json()["type"] == "Service"
    ld = _get(node, 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"')
    assert ld.headers["content-type"].startswith("application/ld+json") and ld.json()["id"] == node
    turtle = _parse(_get(node, "text/turtle"), node)
    # The AS2 document's statements and the node's public graphs in one description.
    assert (URIRef(node), RDF.type, URIRef("https://www.w3.org/ns/activitystreams#Service")) in turtle
    assert (URIRef(node), RDF.type, SPORE.FungusNode) in turtle
    assert turtle.value(URIRef(node), SPORE.blueprint) == URIRef(f"{node}/blueprint/1")
    # Activities addressed to the node are not part of its description (they only name it in "to").
    assert not list(turtle.subjects(URIRef("https://www.w3.org/ns/activitystreams#to"), URIRef(node)))
    html = _get(node, BROWSER)  # the web page's node view (federation.web.render_resource)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "<html" in html.text.lower()
    # A blueprint has no rich view: the generic page links back to the node and to its RDF.
    generic = _get(f"{node}/blueprint/1", BROWSER).text
    assert f'href="{node}"' in generic and f'href="{node}/blueprint/1?format=turtle"' in generic


@pytest.mark.slow
def test_unservable_accept_is_406_with_the_list_and_format_parameter_overrides(world: World) -> None:
    node, blueprint = sorted(world.nodes)[0], sorted(world.blueprints)[0]
    refused = _get(node, "image/png")
    assert refused.status_code == 406 and "text/turtle" in refused.text
    assert _get(blueprint, "application/activity+json").status_code == 406
    forced = _get(blueprint, BROWSER, format="turtle")
    assert forced.headers["content-type"].startswith("text/turtle")
    assert _get(blueprint, None, format="svg").status_code == 406


@pytest.mark.slow
def test_a_group_lists_its_members_across_hosts(world: World) -> None:
    jazz = next(g for g in world.groups if g.endswith("/jazz"))
    graph = _parse(_get(jazz, "text/turtle"), jazz)
    members = {str(m) for m in graph.objects(URIRef(jazz), SPORE.members)}
    assert {n for n in world.nodes if not n.endswith("/dee")} == members  # ada, bob here, cy elsewhere


@pytest.mark.slow
def test_unknown_iris_are_404(world: World) -> None:
    base = world.hosts[0].runtime.config.base_url
    assert _get(f"{base}/nodes/ada/snapshots/{'0' * 64}", "text/turtle").status_code == 404
    assert _get(f"{base}/no/such/thing").status_code == 404
    assert _get(f"{base}/nodes/ada/a%20b%22c", "text/turtle").status_code == 404  # not even an IRI


@pytest.mark.slow
def test_public_graph_iris_dereference_and_the_private_one_does_not(world: World) -> None:
    ada = next(n for n in world.nodes if n.endswith("/nodes/ada"))
    models = _get(f"{ada}/graphs/models", "text/turtle")
    assert models.status_code == 200
    graph = _parse(models, f"{ada}/graphs/models")
    assert graph.value(URIRef(f"{ada}/graphs/models"), VOID.sparqlEndpoint) == URIRef(f"{ada}/sparql")
    assert {str(s) for s in graph.subjects(RDF.type, SPORE.ModelSnapshot)} == {
        s for s in world.snapshots if s.startswith(ada)
    }
    assert _get(f"{ada}/graphs/private", "text/turtle").status_code == 404
    # The service description names the graphs; each of those names now leads somewhere.
    sd = Graph().parse(data=_get(f"{ada}/sparql", "text/turtle").text, format="turtle")
    for name in sd.objects(None, SD.name):
        assert _get(str(name), "text/turtle").status_code == 200, name


@pytest.mark.slow
def test_ontology_is_served_at_its_namespace_path(world: World) -> None:
    base = world.hosts[1].runtime.config.base_url
    shipped = ontology.load_ontology()
    turtle = _get(f"{base}/ns", "text/turtle")
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert isomorphic(Graph().parse(data=turtle.text, format="turtle"), shipped)
    jsonld = _parse(_get(f"{base}/ns", "application/ld+json"), ontology.ONTOLOGY_IRI)
    assert len(jsonld) == len(shipped)
    page = _get(f"{base}/ns", BROWSER).text
    classes = {
        str(c)[len(ontology.NAMESPACE) :]
        for c in shipped.subjects(RDF.type, URIRef("http://www.w3.org/2002/07/owl#Class"))
        if str(c).startswith(ontology.NAMESPACE)
    }
    assert classes and all(f'id="{name}"' in page for name in classes)
    context = _get(f"{base}/context.jsonld")
    assert context.json() == ontology.load_context()


@pytest.mark.slow
def test_void_and_service_description_describe_the_host(world: World) -> None:
    host = world.hosts[0]
    base = host.runtime.config.base_url
    void = _parse(_get(f"{base}/.well-known/void", "text/turtle"), f"{base}/.well-known/void")
    dataset = URIRef(f"{base}/.well-known/void#host")
    assert void.value(dataset, VOID.sparqlEndpoint) == URIRef(f"{base}/sparql")
    roots = {str(r) for r in void.objects(dataset, VOID.rootResource)}
    assert {n for n in world.nodes if n.startswith(base)} <= roots
    for subset in void.objects(dataset, VOID.subset):
        assert void.value(subset, VOID.triples).toPython() > 0
        endpoint = str(void.value(subset, VOID.sparqlEndpoint))
        assert _get(endpoint, "application/sparql-results+json", query="ASK { ?s ?p ?o }").json()["boolean"]
    sd = Graph().parse(data=_get(f"{base}/sparql", "text/turtle").text, format="turtle")
    assert (URIRef(f"{base}/sparql"), RDF.type, SD.Service) in sd


@pytest.mark.slow
def test_described_resources_answer_head_and_refuse_writes(world: World) -> None:
    blueprint = sorted(world.blueprints)[0]
    base = world.hosts[0].runtime.config.base_url
    for url in (blueprint, f"{base}/ns", f"{base}/.well-known/void"):
        head = httpx.head(url, headers={"accept": "text/turtle"})
        assert head.status_code == 200 and head.headers["content-type"].startswith("text/turtle"), url
    refused = httpx.post(blueprint, content=b"x")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert httpx.post(f"{base}/no/such/thing").status_code == 404
