"""Queries across the fungiverse: merging (pure), per-peer timeouts, the endpoint option, the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pyoxigraph import BlankNode, Literal, NamedNode, Quad, RdfFormat, Triple, serialize

from agents.cli import cli as main
from federation.fanout import PeerAnswer, PeerStatus, fan_out, merge, results_json
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore
from tests.linked_data_world import World

RESULTS = "application/sparql-results+json"
MEMBERS_QUERY = (
    "PREFIX spore: <https://w3id.org/spore/ns#> SELECT ?node ?group WHERE { ?node spore:memberOf ?group }"
)


def _select(endpoint: str, variables: list[str], *rows: dict[str, str]) -> PeerAnswer:
    bindings = [{k: {"type": "literal", "value": v} for k, v in row.items()} for row in rows]
    results = {"head": {"vars": variables}, "results": {"bindings": bindings}}
    return PeerAnswer(endpoint, PeerStatus.ANSWERED, results=results)


# -- merging, pure -----------------------------------------------------------------------------------


def test_select_rows_are_concatenated_and_say_who_answered() -> None:
    merged = merge(
        [
            _select("http://a/sparql", ["x"], {"x": "1"}, {"x": "2"}),
            PeerAnswer("http://b/sparql", PeerStatus.TIMEOUT, "no answer within 1 s"),
            _select("http://c/sparql", ["x", "y"], {"x": "3", "y": "z"}),
        ]
    )
    assert merged.variables == ["x", "y", "answeredBy"]
    assert [(r["x"]["value"], r["answeredBy"]["value"]) for r in merged.rows] == [
        ("1", "http://a/sparql"),
        ("2", "http://a/sparql"),
        ("3", "http://c/sparql"),
    ]
    assert merged.answered == ["http://a/sparql", "http://c/sparql"]
    assert merged.failed == {"http://b/sparql": "timeout: no answer within 1 s"}
    document = results_json(merged)
    assert document["fungiverse"]["failed"] == merged.failed and len(document["results"]["bindings"]) == 3


def test_source_variable_does_not_clobber_a_query_variable() -> None:
    merged = merge([_select("http://a/sparql", ["answeredBy"], {"answeredBy": "mine"})])
    assert merged.variables == ["answeredBy", "answeredBy2"]
    assert merged.rows[0]["answeredBy"]["value"] == "mine"


def test_ask_is_true_when_any_peer_says_true() -> None:
    yes = PeerAnswer("http://a/sparql", PeerStatus.ANSWERED, results={"head": {}, "boolean": True})
    no = PeerAnswer("http://b/sparql", PeerStatus.ANSWERED, results={"head": {}, "boolean": False})
    assert merge([no, yes]).boolean is True
    assert merge([no]).boolean is False


def test_graphs_are_unioned_and_blank_nodes_of_two_peers_stay_apart() -> None:
    shared = Triple(NamedNode("http://x/s"), NamedNode("http://x/p"), Literal("o"))
    blank = Triple(BlankNode("b0"), NamedNode("http://x/p"), Literal("o"))
    text = (serialize([shared, blank], format=RdfFormat.N_TRIPLES) or b"").decode()
    merged = merge([PeerAnswer(u, PeerStatus.ANSWERED, triples=text) for u in ("http://a", "http://b")])
    assert merged.is_graph
    assert merged.triples.count(shared) == 1
    assert len({t.subject for t in merged.triples if isinstance(t.subject, BlankNode)}) == 2


def test_a_silent_peer_times_out_without_holding_the_others() -> None:
    async def scenario() -> list[PeerAnswer]:
        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        silent = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/sparql"
        with socket.socket() as probe:  # a port nobody listens on: refused at once
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}/sparql"
        async with server:
            result = await fan_out("ASK {}", [silent, closed], timeout=0.5)
        return result.answers

    silent, closed = asyncio.run(scenario())
    assert silent.status is PeerStatus.TIMEOUT and silent.seconds < 5
    assert closed.status is PeerStatus.FAILED


# -- the endpoint option and the CLI, on three real hosts -------------------------------------------


def _ask(url: str, query: str, accept: str = RESULTS, **params: str) -> httpx.Response:
    return httpx.post(
        url,
        params={"fungiverse": "true", **params},
        data={"query": query},
        headers={"accept": accept},
        timeout=30,
    )


def _node(world: World, name: str) -> str:
    return next(n for n in world.nodes if n.endswith(f"/nodes/{name}"))


@pytest.mark.slow
def test_a_node_endpoint_reaches_every_node_it_knows_across_hosts(ld_world: World) -> None:
    ada = _node(ld_world, "ada")
    response = _ask(f"{ada}/sparql", MEMBERS_QUERY)
    assert response.status_code == 200, response.text
    document = response.json()
    nodes = {row["node"]["value"] for row in document["results"]["bindings"]}
    # ada knows jazz; jazz lists bob (same host) and cy (host B); dee is in rock, which ada never met.
    assert nodes == {_node(ld_world, n) for n in ("ada", "bob", "cy")}
    assert {row["answeredBy"]["value"] for row in document["results"]["bindings"]} == {
        f"{_node(ld_world, n)}/sparql" for n in ("ada", "bob", "cy")
    }
    assert set(response.headers["spore-answered-by"].split()) == set(document["fungiverse"]["answered"])


@pytest.mark.slow
def test_an_unreachable_peer_is_reported_and_the_rest_still_answer(ld_world: World) -> None:
    dee = _node(ld_world, "dee")
    host = next(h for h in ld_world.hosts if dee.startswith(h.runtime.config.base_url))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    peers = graph_iri(NamedNode(dee), GraphKind.PEERS)
    claim = Quad(
        NamedNode(f"{dead}/nodes/ghost"),
        NamedNode("http://rdfs.org/ns/void#sparqlEndpoint"),
        NamedNode(f"{dead}/nodes/ghost/sparql"),
        peers,
    )
    store = host.runtime.store
    store.extend([claim])  # type: ignore[union-attr]
    try:
        response = _ask(f"{dee}/sparql", MEMBERS_QUERY, **{"peer-timeout": "2"})
    finally:
        store.update(
            f"DELETE DATA {{ GRAPH {peers} {{ {claim.subject} {claim.predicate} {claim.object} }} }}"
        )  # type: ignore[union-attr]
    report = response.json()["fungiverse"]
    assert f"{dead}/nodes/ghost/sparql" in report["failed"]
    assert f"{dee}/sparql" in report["answered"]
    assert f"{dead}/nodes/ghost/sparql" in response.headers["spore-not-answered"]


@pytest.mark.slow
def test_fungiverse_construct_ask_and_errors(ld_world: World) -> None:
    host = ld_world.hosts[0].runtime.config.base_url
    construct = _ask(
        f"{host}/sparql",
        "CONSTRUCT { ?group <urn:x:has> ?node } WHERE { ?node <https://w3id.org/spore/ns#memberOf> ?group }",
        "text/turtle",
    )
    assert construct.status_code == 200 and construct.headers["content-type"].startswith("text/turtle")
    assert _node(ld_world, "cy") in construct.text  # from host B, through the jazz group's members
    ask = _ask(f"{host}/sparql", "ASK { ?s a <https://w3id.org/spore/ns#FungusNode> }")
    assert ask.json()["boolean"] is True
    assert _ask(f"{host}/sparql", "SELECT ?x WHERE { ?x ?y").status_code == 400
    assert _ask(f"{host}/sparql", MEMBERS_QUERY, "text/csv").status_code == 406
    assert _ask(f"{host}/sparql", MEMBERS_QUERY, **{"peer-timeout": "nope"}).status_code == 400
    refused = _ask(f"{host}/sparql", "SELECT * WHERE { SERVICE <http://x/> { ?s ?p ?o } }")
    assert refused.status_code == 400 and "SERVICE" in refused.text


@pytest.mark.slow
def test_cli_fungiverse_through_an_endpoint(ld_world: World) -> None:
    ada = _node(ld_world, "ada")
    result = CliRunner().invoke(
        main, ["query", "--fungiverse", MEMBERS_QUERY, "--endpoint", f"{ada}/sparql", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {r["node"]["value"] for r in document["results"]["bindings"]} >= {ada, _node(ld_world, "cy")}
    assert "answered (3)" in result.stderr
    malformed = CliRunner().invoke(
        main, ["query", "--fungiverse", "SELECT ?x {", "--endpoint", f"{ada}/sparql"]
    )
    assert malformed.exit_code == 2 and "400" in malformed.output


@pytest.mark.slow
def test_cli_fungiverse_from_a_store_asks_the_peers_it_mentions(ld_world: World, tmp_path: Path) -> None:
    me, cy = NamedNode("http://127.0.0.1:9/nodes/me"), _node(ld_world, "cy")
    jazz = next(g for g in ld_world.groups if g.endswith("/jazz"))
    with EmbeddedStore(tmp_path / "store") as store:
        store.extend(
            [
                Quad(
                    me,
                    NamedNode("https://w3id.org/spore/ns#memberOf"),
                    NamedNode(jazz),
                    graph_iri(me, GraphKind.BLUEPRINT),
                ),
                Quad(
                    NamedNode(cy),
                    NamedNode("http://rdfs.org/ns/void#sparqlEndpoint"),
                    NamedNode(f"{cy}/sparql"),
                    graph_iri(me, GraphKind.PEERS),
                ),
            ]
        )
    result = CliRunner().invoke(
        main, ["query", "--fungiverse", MEMBERS_QUERY, "--store", str(tmp_path / "store"), "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert any(row.startswith(f"{me.value},{jazz},file://") for row in rows)  # answered locally
    assert any(row.startswith(f"{cy},{jazz},{cy}/sparql") for row in rows)  # answered by cy
    bad = CliRunner().invoke(main, ["query", "--fungiverse", MEMBERS_QUERY])
    assert bad.exit_code == 2 and "--fungiverse needs" in bad.output


@pytest.mark.slow
def test_a_fungiverse_query_reaches_a_bounded_number_of_peers(
    ld_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import federation.fungiverse_endpoint as endpoint

    monkeypatch.setattr(endpoint, "FANOUT_MAX_PEERS", 2)
    ada = _node(ld_world, "ada")
    report = _ask(f"{ada}/sparql", MEMBERS_QUERY).json()["fungiverse"]
    assert len(report["answered"]) == 2 and f"{ada}/sparql" in report["answered"]
    assert list(report["failed"].values()) == ["failed: skipped: over the limit of 2 peers"]
