"""Spawning on running hosts: automatic spawning under policy after a served node's round, and
``spore spawn --host`` through the host's authenticated admin route (401, 404, 409, 415, 422)."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from pyoxigraph import NamedNode
from rdflib import RDF, XSD, Graph, Literal, URIRef
from rdflib.namespace import PROV

from agents.blueprint_writer import BlueprintChoices, new_blueprint
from agents.fungus_host import attach_nodes
from agents.host_admin import bearer_problem
from agents.host_spawning import install_spawning
from agents.hosting import HostOptions
from agents.node_blueprint import read_blueprint
from agents.node_setup import CatalogueQuads, NodeRoles, RoundTiming, build_node
from agents.spawn_build import ChildBuilder
from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from federation.keys import load_or_create_key
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore, to_rdflib
from models.graph import load_music_tensors
from ontology import SPORE
from tests.test_asking import ask_over_http, person_server
from tests.test_serve import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "blueprints"
TOKEN = "s3cret-operator-token"


def write_blueprint(directory: Path, name: str, **policy: Any) -> Path:
    """A small LightGCN blueprint seeking #jazz; ``policy`` overrides its spore:Policy values."""
    graph, report = new_blueprint(
        BlueprintChoices(
            name=name, hashtags=("#jazz",), embedding_dimension=8, layers=1, learning_rate="0.05"
        )
    )
    assert report.conforms
    holder = graph.value(next(graph.subjects(SPORE.nodeName, None)), SPORE.policy)
    for key, value in policy.items():
        literal = Literal(value, datatype=XSD.decimal) if isinstance(value, str) else Literal(value)
        graph.set((holder, SPORE[key], literal))
    path = directory / f"{name}.ttl"
    path.write_text(graph.serialize(format="turtle"))
    return path


def founder(
    path: Path,
    actor: str,
    store: EmbeddedStore,
    catalogue: CatalogueQuads,
    timing: RoundTiming,
    shard: tuple[int, int] = (0, 1),
) -> Any:
    """The served node of blueprint ``path``, founding the group of #jazz."""
    roles = NodeRoles(founds="#jazz", shard=shard)
    return build_node(
        read_blueprint(path), actor, store=store, catalogue=catalogue, roles=roles, timing=timing
    )


# -- the credential ----------------------------------------------------------------------------------


def test_the_operator_token_is_required_and_compared_exactly() -> None:
    assert bearer_problem("Bearer x", None) == (
        403,
        "this host takes no admin requests: start it with --admin-token",
    )
    assert bearer_problem(None, TOKEN)[0] == 401  # type: ignore[index]
    assert bearer_problem("Basic " + TOKEN, TOKEN)[0] == 401  # type: ignore[index]
    assert bearer_problem(f"Bearer {TOKEN}x", TOKEN)[0] == 401  # type: ignore[index]
    assert bearer_problem(f"bearer {TOKEN}", TOKEN) is None


# -- a restarted host serves its children again, lineage included ---------------------------------------


def test_a_restarted_host_serves_the_children_it_spawned_and_keeps_their_lineage(tmp_path: Path) -> None:
    from agents.commands.serve import _spawned_before
    from agents.node_publish import NodePublisher
    from knowledge.graphs import NodeGraphs

    spawned = tmp_path / "spawned"
    spawned.mkdir()
    write_blueprint(spawned, "ana_c1")
    write_blueprint(spawned, "ana")  # the operator serves it from its own file already
    (spawned / "broken.ttl").write_text("not turtle")
    assert [child.name for child in _spawned_before(spawned, {"ana"})] == ["ana_c1"]
    assert _spawned_before(tmp_path / "none", set()) == []

    store, actor = EmbeddedStore(), "http://127.0.0.1:9/nodes/ana_c1"
    graphs = NodeGraphs(NamedNode(actor), store)
    blueprint = read_blueprint(spawned / "ana_c1.ttl")
    NodePublisher(
        graphs, blueprint, host="http://127.0.0.1:9/actor", spawned_by="http://127.0.0.1:9/nodes/ana"
    ).start()
    NodePublisher(graphs, blueprint, host="http://127.0.0.1:9/actor").start()  # the restart: no parent given
    written = to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.BLUEPRINT))
    assert written.value(URIRef(actor), SPORE.spawnedBy) == URIRef("http://127.0.0.1:9/nodes/ana")


def test_a_child_takes_its_parents_listeners_model_and_known_groups(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store, base = EmbeddedStore(), "http://127.0.0.1:9"
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=12, artists=40, seed=3)))
    timing = RoundTiming(1.0)
    path = write_blueprint(tmp_path, "ada")
    parent = founder(path, f"{base}/nodes/ada", store, catalogue, timing, shard=(0, 2))  # half the listeners
    builder = ChildBuilder(store, catalogue, timing, tmp_path / "spawned")
    child = builder.build(read_blueprint(path), f"{base}/nodes/ada_c1", parent, (1, 2))
    private = [graph_iri(NamedNode(node.actor), GraphKind.PRIVATE) for node in (parent, child)]
    held = [set(to_rdflib(store, graph)) for graph in private]
    assert held[0] == held[1] and held[0]  # the parent's listeners, not the shard (1, 2) it was given
    assert all(torch.equal(child.state.weights[k], w) for k, w in parent.state.weights.items())
    assert (
        child.state.weights["artist_embedding.weight"] is not parent.state.weights["artist_embedding.weight"]
    )
    assert set(child.state.known_groups) == set(parent.state.known_groups) and child.state.owned == {}


# -- the admin route's refusals, on a host in this process ---------------------------------------------


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    """A host that serves no node yet, with the admin route, a token and a cap of one node."""
    store = EmbeddedStore()
    config = HostConfig(
        base_url="http://127.0.0.1:9", data_dir=tmp_path, allow_loopback=True, sparql_update_token=TOKEN
    )
    app = build_host(config, store=store)
    host = attach_nodes(app, [], options=HostOptions(max_nodes=1, autostart=False))
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=12, artists=40, seed=3)))
    install_spawning(app, host, ChildBuilder(store, catalogue, RoundTiming(1.0), tmp_path / "spawned"))
    with TestClient(app) as client:
        yield client


def post(client: TestClient, body: bytes, media: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"content-type": media} | ({"authorization": f"Bearer {token}"} if token else {})
    return client.post("/admin/spawn", content=body, headers=headers)


def test_the_admin_route_refuses_with_a_clear_status_and_never_500(admin: TestClient) -> None:
    valid = (EXAMPLES / "jazz_explorer.ttl").read_bytes()
    without = post(admin, valid, "text/turtle", token=None)
    assert without.status_code == 401 and "bearer token" in without.json()["error"]
    assert without.headers["www-authenticate"].startswith("Bearer")
    assert post(admin, valid, "text/turtle", token="wrong").status_code == 401
    invalid = post(admin, (EXAMPLES / "invalid" / "typo_property.ttl").read_bytes(), "text/turtle")
    assert invalid.status_code == 422 and invalid.json()["error"].startswith("the blueprint fails the shapes")
    assert invalid.json()["violations"]
    broken = post(admin, b"@prefix nope", "text/turtle")
    assert broken.status_code == 422 and "not readable Turtle" in broken.json()["error"]
    assert post(admin, b"{}", "application/json").status_code == 400
    assert post(admin, b"{not json", "application/json").status_code == 400
    assert post(admin, valid, "text/plain").status_code == 415
    unknown = post(
        admin, json.dumps({"parent": "http://127.0.0.1:9/nodes/nobody"}).encode(), "application/json"
    )
    assert unknown.status_code == 404 and "is not a node of" in unknown.json()["error"]


def test_a_host_at_its_cap_answers_409_with_the_reason(tmp_path: Path) -> None:
    config = HostConfig(
        base_url="http://127.0.0.1:9", data_dir=tmp_path, nodes=(NodeSpec("ada"),), sparql_update_token=TOKEN
    )
    store = EmbeddedStore()
    app = build_host(config, store=store)
    # The host plans one node (still loading its data): it counts against the cap of one.
    planned = {"http://127.0.0.1:9/nodes/ada": ("#jazz",)}
    host = attach_nodes(app, [], options=HostOptions(max_nodes=1, autostart=False), planned=planned)
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=12, artists=40, seed=3)))
    install_spawning(app, host, ChildBuilder(store, catalogue, RoundTiming(1.0), tmp_path / "spawned"))
    with TestClient(app) as client:
        refused = post(client, (EXAMPLES / "jazz_explorer.ttl").read_bytes(), "text/turtle")
    assert refused.status_code == 409
    assert refused.json()["error"] == "spawn refused: the host serves 1 nodes, its cap is 1"


def test_a_healthy_node_on_a_full_host_records_the_refusal_once(tmp_path: Path) -> None:
    """The rule says spawn, the host's cap says no: one refusal in the decisions graph, no crash."""
    torch.set_num_threads(1)
    store, base = EmbeddedStore(), "http://127.0.0.1:9"
    actor = f"{base}/nodes/ada"
    config = HostConfig(base_url=base, data_dir=tmp_path, nodes=(NodeSpec("ada"),), allow_loopback=True)
    app = build_host(config, store=store)
    host = attach_nodes(app, [], options=HostOptions(max_nodes=1, autostart=False, autospawn=True))
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=12, artists=40, seed=3)))
    timing = RoundTiming(1.0)
    spawner = install_spawning(app, host, ChildBuilder(store, catalogue, timing, tmp_path / "spawned"))
    path = write_blueprint(tmp_path, "ada", stagnationRounds=1, switchMargin="0.01", maxChildren=3)
    host.add_nodes([founder(path, actor, store, catalogue, timing)])
    spawner.history[actor] = [(1, 0.10), (2, 0.20)]
    with TestClient(app) as client:
        assert client.portal.call(spawner.consider, actor) is None
        spawner.history[actor].append((3, 0.30))
        assert client.portal.call(spawner.consider, actor) is None
    decisions = to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.DECISIONS))
    explanations = [
        str(decisions.value(d, SPORE.explanation)) for d in decisions.subjects(RDF.type, SPORE.SpawnDecision)
    ]
    assert explanations == ["spawn refused: the host serves 1 nodes, its cap is 1"]
    assert list(host.nodes) == [actor] and spawner.spawned == []


# -- automatic spawning after a served node's round ----------------------------------------------------


def wait_for(condition: Any, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(condition())


@pytest.mark.slow
def test_a_served_node_spawns_a_child_that_learns_and_answers_an_ask(tmp_path: Path) -> None:
    """Policy: compare over 1 round, spawn on no loss (margin 0), at most one child."""
    torch.set_num_threads(1)
    path = write_blueprint(tmp_path, "ada", stagnationRounds=1, switchMargin="0.0", maxChildren=1)
    store = EmbeddedStore()
    catalogue = CatalogueQuads(synthesize(SynthParams(listeners=24, artists=80, seed=5)))
    timing = RoundTiming(round_seconds=0.5)

    def make_nodes(base: str) -> list[Any]:
        return [founder(path, f"{base}/nodes/ada", store, catalogue, timing)]

    received: list[dict[str, Any]] = []
    server, key = person_server(load_or_create_key(tmp_path / "bob.pem"), received)
    # As start_fungus_host, with spawning installed before the host starts (it stops with the host).
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = HostConfig(
        base_url=base, data_dir=tmp_path / "host", nodes=(NodeSpec("ada"),), allow_loopback=True
    )
    app = build_host(config, store=store)
    host = attach_nodes(app, make_nodes(base), options=HostOptions(autospawn=True, max_nodes=4))
    install_spawning(app, host, ChildBuilder(store, catalogue, timing, tmp_path / "spawned"))
    running = RunningHost(app, sock).start()
    parent, child = f"{base}/nodes/ada", f"{base}/nodes/ada_c1"
    try:
        assert wait_for(lambda: child in host.nodes), "no child was spawned"
        assert wait_for(lambda: host.nodes[child].state.rounds_done >= 1), "the child did not learn"
        names = load_music_tensors(store, child).artist_names
        ask_over_http(child, key, 1, names[3], name="@ada_c1")
        assert wait_for(lambda: len(received) >= 1), "the child did not answer the ask"
        status = httpx.get(f"{base}/status").json()
        described = httpx.get(child, headers={"accept": "text/turtle"})
        lineage = f"ASK {{ <{child}> <{SPORE.spawnedBy}> <{parent}> }}"
        asked = httpx.get(
            f"{child}/sparql", params={"query": lineage}, headers={"accept": "application/json"}
        )
        page = httpx.get(child, headers={"accept": "text/html"})
        finger = httpx.get(f"{base}/.well-known/webfinger", params={"resource": f"acct:ada_c1@{base[7:]}"})
    finally:
        running.stop()
        server.stop()
    note = received[0]["body"]["object"]
    assert note["inReplyTo"].endswith("/statuses/1") and "you might enjoy" in note["content"]
    assert html.escape(names[3]) in note["content"]
    by_name = {entry["name"]: entry for entry in status["nodes"]}
    assert by_name["ada_c1"]["actor"] == child and by_name["ada_c1"]["rounds_done"] >= 1
    assert page.status_code == 200 and "ada_c1" in page.text  # the web page knows it
    assert asked.status_code == 200 and asked.json()["boolean"] is True  # its own SPARQL endpoint
    assert finger.status_code == 200 and finger.json()["subject"] == f"acct:ada_c1@{base[7:]}"
    # Lineage: the child's description names its parent; its blueprint revises the parent's.
    assert described.status_code == 200
    rdf = Graph().parse(data=described.text, format="turtle", publicID=child)
    assert (URIRef(child), SPORE.spawnedBy, URIRef(parent)) in rdf
    blueprint = to_rdflib(store, graph_iri(NamedNode(child), GraphKind.BLUEPRINT))
    assert (URIRef(f"{child}/blueprint"), PROV.wasRevisionOf, URIRef(f"{parent}/blueprint")) in blueprint
    # The decision, with the evaluations it read as evidence, is in the parent's decisions graph.
    decisions = to_rdflib(store, graph_iri(NamedNode(parent), GraphKind.DECISIONS))
    explained = {
        str(decisions.value(d, SPORE.explanation)): d
        for d in decisions.subjects(RDF.type, SPORE.SpawnDecision)
    }
    [spawned] = [d for text, d in explained.items() if text.startswith("spawned ada_c1: ")]
    evidence = {str(e) for e in decisions.objects(spawned, PROV.wasDerivedFrom)}
    assert any(e.startswith(f"{parent}#round-") and e.endswith("-recall-20") for e in evidence)
    # maxChildren 1: the next healthy round's spawn is refused, and the refusal recorded once.
    refusals = [text for text in explained if text.startswith("spawn refused: ")]
    assert refusals in (
        [],
        ["spawn refused: the parent has 1 child and its policy allows 1 (spore:maxChildren)"],
    )


def test_spore_spawn_host_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_spawn import spore as spore_in_process

    closed = f"http://127.0.0.1:{free_port()}"
    code, _, err = spore_in_process(
        ["spawn", f"{closed}/nodes/ada", "--host", closed, "--token", "t"], capsys
    )
    assert code == 1 and err.startswith(f"spore: error: cannot reach {closed}") and err.count("\n") == 1
    code, _, err = spore_in_process(["spawn", str(tmp_path / "nope.ttl"), "--host", closed], capsys)
    assert code == 2 and "no such blueprint file" in err
    code, _, err = spore_in_process(["spawn", str(tmp_path / "nope.ttl"), "--as-is"], capsys)
    assert code == 2 and "--as-is needs --host" in err
    code, _, err = spore_in_process(
        ["spawn", f"{closed}/nodes/ada", "--host", closed, "--store", "x"], capsys
    )
    assert code == 2 and "no --store" in err


# -- spore spawn --host onto a running spore serve ------------------------------------------------------


def spore(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SPORE_ADMIN_TOKEN", None)
    if token is not None:
        env["SPORE_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "agents", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.slow
def test_spore_spawn_starts_children_on_a_running_host_within_its_cap(tmp_path: Path) -> None:
    parent = write_blueprint(tmp_path, "ana", maxChildren=5)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "agents", "serve", str(parent), "--port", str(port), "--synth"]
        + ["--data-dir", str(tmp_path / "host"), "--round-seconds", "2", "--max-seconds", "170"]
        + ["--admin-token", TOKEN, "--max-nodes", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )

    def status() -> dict[str, Any]:
        try:
            return dict(httpx.get(f"{base}/status", timeout=5).json())
        except (httpx.HTTPError, ValueError):
            return {}

    try:
        assert wait_for(lambda: status().get("started"), 90), "the host did not start"
        node = f"{base}/nodes/ana"
        wrong = spore("spawn", node, "--host", base, token="not-the-token")
        invalid = spore(
            "spawn", str(EXAMPLES / "invalid" / "typo_property.ttl"), "--host", base, "--as-is", token=TOKEN
        )
        from_file = spore("spawn", str(parent), "--host", base, token=TOKEN)
        from_node = spore("spawn", node, "--host", base, "--name", "ana_kid", token=TOKEN)
        full = spore("spawn", node, "--host", base, token=TOKEN)
        learnt = wait_for(
            lambda: any(n["name"] == "ana_kid" and n["rounds_done"] >= 1 for n in status().get("nodes", [])),
            60,
        )
        described = httpx.get(f"{base}/nodes/ana_kid", headers={"accept": "text/turtle"})
        names = {entry["name"] for entry in status()["nodes"]}
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert wrong.returncode == 1 and wrong.stderr.startswith(f"spore: error: {base} answered 401:")
    assert invalid.returncode == 1 and "answered 422: the blueprint fails the shapes" in invalid.stderr
    assert from_file.returncode == 0 and from_file.stdout.startswith(f"spawned ana_c1 at {base}/nodes/ana_c1")
    assert from_node.returncode == 0 and from_node.stdout.startswith(
        f"spawned ana_kid at {base}/nodes/ana_kid"
    )
    assert (
        full.returncode == 1
        and "answered 409: spawn refused: the host serves 3 nodes, its cap is 3" in full.stderr
    )
    assert len(full.stderr.strip().splitlines()) == 1
    assert names == {"ana", "ana_c1", "ana_kid"}
    assert learnt, "the spawned child did not finish a round"
    rdf = Graph().parse(data=described.text, format="turtle", publicID=f"{base}/nodes/ana_kid")
    assert (URIRef(f"{base}/nodes/ana_kid"), SPORE.spawnedBy, URIRef(node)) in rdf
    spawned = [json.loads(line) for line in out.splitlines() if '"event": "spawned"' in line]
    assert [event["node"] for event in spawned] == ["ana_c1", "ana_kid"]
