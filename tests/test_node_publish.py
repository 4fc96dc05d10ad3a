"""A served node writes its self into its public graphs: blueprint, description, snapshots, group."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from pyoxigraph import NamedNode, RdfFormat
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import PROV

from agents.fungus_host import start_fungus_host
from agents.node import FungusNode, founded_group, node_state
from agents.node_publish import (
    NodePublisher,
    blueprint_graph,
    evaluations_graph,
    group_graph,
    node_description,
    snapshot_artifact,
    snapshot_graph,
)
from agents.node_setup import read_blueprint
from agents.protocol.context import NodeContext
from agents.protocol.learners import LinearLearner
from agents.protocol.state import RoundRecord
from federation.linked_data.crawl import crawl
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.store import EmbeddedStore
from models.card import snapshot_iri
from ontology import SPORE
from shapes.validation import default_validator

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = read_blueprint(ROOT / "examples" / "blueprints" / "jazz_explorer.ttl")
ACTOR = "http://127.0.0.1:9/nodes/jazz_explorer"
GROUP = founded_group(ACTOR, "#jazz", (), aggregation_rule=str(SPORE.WeightedMean))
REMOTE = "http://127.0.0.2:9/nodes/kg_scout"
_NT = RdfFormat.N_TRIPLES
WEIGHTS = {"artist_weight": torch.arange(6.0).reshape(3, 2), "listener_weight": torch.ones(4, 2)}


def conforms(graph: Graph) -> None:
    report = default_validator().validate(graph)
    assert report.conforms, report.lines()


def test_the_blueprint_is_served_under_the_nodes_blueprint_iri_and_conforms() -> None:
    graph = blueprint_graph(BLUEPRINT, f"{ACTOR}/blueprint")
    subject = URIRef(f"{ACTOR}/blueprint")
    assert (subject, RDF.type, SPORE.Blueprint) in graph
    assert (subject, SPORE.nodeName, Literal("jazz_explorer")) in graph
    assert not any(str(s).endswith("#blueprint") for s in graph.subjects())
    description = node_description(
        ACTOR,
        name="jazz_explorer",
        blueprint=str(subject),
        host="http://127.0.0.1:9/actor",
        groups=[GROUP.iri],
    )
    assert (URIRef(ACTOR), SPORE.memberOf, URIRef(GROUP.iri)) in description
    conforms(graph + description)


def test_a_snapshot_holds_only_shared_weights_and_its_card_and_evaluations_conform() -> None:
    digest, blob = snapshot_artifact(WEIGHTS)
    assert hashlib.sha256(blob).hexdigest() == digest
    assert b"listener_weight" not in blob and b"artist_weight" in blob  # private rows never published
    card = snapshot_graph(
        ACTOR, BLUEPRINT, sha256=digest, byte_size=len(blob), round_number=2, merged="ab" * 32
    )
    evaluations = evaluations_graph(
        ACTOR,
        sha256=digest,
        round_number=2,
        metrics={"recall@20": 0.25, "ndcg@20": 0.125, "loss": 3.0, "graph_beta": 0.4, "blend_weight": 0.25},
        group=GROUP.iri,
    )
    conforms(card + evaluations)
    # The blend the node chose on validation is on every evaluation it produced, for a person to see.
    for evaluation in evaluations.subjects(RDF.type, SPORE.Evaluation):
        assert list(evaluations.objects(evaluation, SPORE.itemGraphBeta)) == [Literal(0.4)]
        assert list(evaluations.objects(evaluation, SPORE.blendWeight)) == [Literal(0.25)]
    snapshot = snapshot_iri(digest)
    assert str(snapshot).startswith("ni:///sha-256;")
    assert (snapshot, SPORE.roundNumber, Literal(2)) in card
    values = {
        (str(graph_metric), float(value))
        for e in evaluations.subjects(RDF.type, SPORE.Evaluation)
        for graph_metric in evaluations.objects(e, SPORE.metric)
        for value in evaluations.objects(e, SPORE.value)
    }
    assert values == {(str(SPORE.Recall), 0.25), (str(SPORE.NDCG), 0.125)}  # "loss" is no ranking metric


def test_a_group_lists_remote_members_and_its_model() -> None:
    graph = group_graph(GROUP, {REMOTE}, "cd" * 32)
    conforms(graph)
    assert set(graph.objects(URIRef(GROUP.iri), SPORE.members)) == {URIRef(ACTOR), URIRef(REMOTE)}
    assert (URIRef(GROUP.iri), SPORE.groupModel, snapshot_iri("cd" * 32)) in graph


def test_the_publisher_keeps_every_evaluation_but_only_the_latest_cards() -> None:
    store = EmbeddedStore()
    graphs = NodeGraphs(NamedNode(ACTOR), store)
    publisher = NodePublisher(graphs, BLUEPRINT, host="http://127.0.0.1:9/actor", keep_snapshots=2)
    publisher.start()
    assert store.count(graphs.graph(GraphKind.BLUEPRINT)) > 0
    for round_number in range(1, 6):
        weights = {**WEIGHTS, "artist_weight": WEIGHTS["artist_weight"] + round_number}
        record = RoundRecord(
            round_number - 1, (ACTOR, REMOTE), "ef" * 32, (("recall@20", 0.1), ("ndcg@20", 0.05))
        )
        publisher.round(record, weights, GROUP, frozenset({ACTOR, REMOTE}))
    models = Graph().parse(
        data=store.dump(format=_NT, graph=graphs.graph(GraphKind.MODELS)).decode(), format="nt"
    )
    assert len(set(models.subjects(RDF.type, SPORE.ModelSnapshot))) == 2
    assert len(set(models.subjects(RDF.type, SPORE.Evaluation))) == 10
    conforms(models)
    peers = Graph().parse(
        data=store.dump(format=_NT, graph=graphs.graph(GraphKind.PEERS)).decode(), format="nt"
    )
    assert len(set(peers.objects(URIRef(GROUP.iri), SPORE.groupModel))) == 1  # replaced, not piled up
    blueprint = store.dump(format=_NT, graph=graphs.graph(GraphKind.BLUEPRINT)).decode()
    assert f"<{ACTOR}> <{SPORE.memberOf}> <{GROUP.iri}>" in blueprint

    # A host restarted on the same store prunes the cards it wrote before, too.
    again = NodePublisher(graphs, BLUEPRINT, host="http://127.0.0.1:9/actor", keep_snapshots=1)
    again.start()
    again.round(
        RoundRecord(5, (ACTOR,), "ef" * 32, (("recall@20", 0.2),)), WEIGHTS, GROUP, frozenset({ACTOR})
    )
    models = Graph().parse(
        data=store.dump(format=_NT, graph=graphs.graph(GraphKind.MODELS)).decode(), format="nt"
    )
    [card] = set(models.subjects(RDF.type, SPORE.ModelSnapshot))
    assert models.value(card, SPORE.roundNumber).toPython() == 6
    assert len(set(models.subjects(RDF.type, SPORE.Evaluation))) == 11


class RankedLinearLearner(LinearLearner):
    """The tiny deterministic learner, reporting its fit under the ranking metrics' names."""

    def evaluate(self, weights):  # type: ignore[no-untyped-def]
        fit = 1.0 / (1.0 + super().evaluate(weights)["mse"])
        return {"recall@20": fit, "ndcg@20": fit / 2}


def linear_node(actor: str, store: EmbeddedStore) -> FungusNode:
    learner = RankedLinearLearner(
        torch.randn(20, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(20)
    )
    weights = learner.initial_weights(1)
    founds = [
        founded_group(actor, "#jazz", (("artist_weight", (3,)),), aggregation_rule=str(SPORE.WeightedMean))
    ]
    state = node_state(
        actor, seed=1, weights=weights, architecture=str(SPORE.LinearModel), seeks=("#jazz",), founds=founds
    )
    ctx = NodeContext(learner=learner, train_seconds=0.2, max_rounds=2)
    return FungusNode(
        "jazz_explorer", ctx, state, graphs=NodeGraphs(NamedNode(actor), store), blueprint=BLUEPRINT
    )


@pytest.mark.slow
def test_a_served_node_is_found_by_a_crawl_with_its_group_snapshots_and_metrics(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    host, nodes = start_fungus_host(
        tmp_path, lambda base: [linear_node(f"{base}/nodes/jazz_explorer", store)], store=store
    )
    try:
        actor = f"{host.runtime.config.base_url}/nodes/jazz_explorer"
        deadline = time.monotonic() + 30
        while not nodes.nodes[actor].done and time.monotonic() < deadline:
            time.sleep(0.1)
        assert nodes.nodes[actor].done
        turtle = httpx.get(actor, headers={"accept": "text/turtle"})
        node = Graph().parse(data=turtle.text, format="turtle", publicID=actor)
        evaluations = set(node.subjects(RDF.type, SPORE.Evaluation))
        assert {int(r) for e in evaluations for r in node.objects(e, SPORE.roundNumber)} == {1, 2}
        snapshots = {s for e in evaluations for s in node.objects(e, SPORE.evaluates)}
        assert snapshots and all(node.value(e, SPORE.value) is not None for e in evaluations)

        found = crawl(actor, allow=lambda url: url.startswith(host.runtime.config.base_url))
        graph = found.graph
        assert (URIRef(actor), RDF.type, SPORE.FungusNode) in graph
        assert (URIRef(f"{actor}/blueprint"), RDF.type, SPORE.Blueprint) in graph
        assert (URIRef(f"{actor}/groups/jazz"), RDF.type, SPORE.LearningGroup) in graph
        cards = set(graph.subjects(RDF.type, SPORE.ModelSnapshot))
        assert snapshots <= cards
        [latest] = [s for s in cards if int(graph.value(s, SPORE.roundNumber)) == 2]
        blob = httpx.get(str(graph.value(latest, URIRef("http://www.w3.org/ns/dcat#downloadURL")))).content
        assert hashlib.sha256(blob).hexdigest() == str(graph.value(latest, SPORE.sha256))

    finally:
        host.stop()


@pytest.mark.slow
def test_two_served_hosts_are_crawled_to_every_node_group_and_snapshot(tmp_path: Path) -> None:
    from tests.test_serve import ROOT as REPO
    from tests.test_serve import free_port, write_blueprint

    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "agents", "serve", str(write_blueprint(tmp_path, name))]
            + ["--port", str(ports[index]), "--data-dir", str(tmp_path / f"host{index}"), "--synth"]
            + ["--round-seconds", "2", "--max-seconds", "150", "--peer", urls[1 - index]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for index, name in enumerate(("ana", "bo"))
    ]
    try:
        actors: list[str] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:  # open-ended nodes: wait until both finished round 2
            time.sleep(1)
            try:
                statuses = [httpx.get(f"{url}/status", timeout=5).json() for url in urls]
            except httpx.HTTPError:
                continue
            entries = [entry for status in statuses for entry in status.get("nodes", [])]
            if len(entries) == 2 and all((entry.get("round") or 0) >= 2 for entry in entries):
                actors = [entry["actor"] for entry in entries]
                break
        assert len(actors) == 2, [p.poll() for p in processes]
        time.sleep(1)  # the round's publication follows its status by one executor task

        found = crawl(actors[0], allow=lambda url: url.startswith(tuple(urls)), max_documents=200)
        graph = found.graph
        assert {URIRef(a) for a in actors} <= set(graph.subjects(RDF.type, SPORE.FungusNode))
        [group] = set(graph.subjects(RDF.type, SPORE.LearningGroup))
        assert set(graph.objects(group, SPORE.members)) == {URIRef(a) for a in actors}
        for actor in actors:
            cards = [
                s
                for s in graph.subjects(PROV.wasAttributedTo, URIRef(actor))
                if (s, RDF.type, SPORE.ModelSnapshot) in graph
            ]
            assert cards, f"no snapshot of {actor} reached"

        turtle = httpx.get(actors[1], headers={"accept": "text/turtle"}, timeout=10)
        assert turtle.headers["content-type"].startswith("text/turtle")
        node = Graph().parse(data=turtle.text, format="turtle", publicID=actors[1])
        recalls = [
            e for e in node.subjects(SPORE.metric, SPORE.Recall) if node.value(e, SPORE.evaluates) is not None
        ]
        assert recalls and all(0.0 <= float(node.value(e, SPORE.value)) <= 1.0 for e in recalls)

        # The protocol's activities ({actor}/activities/update-N …) dereference on their own host.
        as2 = {"accept": "application/activity+json"}
        page = httpx.get(f"{actors[0]}/outbox?page=1", headers=as2, timeout=10).json()
        sent = page["orderedItems"][0]["id"]
        assert sent.startswith(f"{actors[0]}/activities/")
        answer = httpx.get(sent, headers=as2, timeout=10)
        assert answer.status_code == 200 and answer.json()["id"] == sent
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
