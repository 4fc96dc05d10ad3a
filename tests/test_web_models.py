"""The web page recommends with a fungus node's current weights (agents/web_models.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from pyoxigraph import NamedNode

from agents.node import FungusNode, node_state
from agents.protocol.context import NodeContext
from agents.protocol.recommender import LightGCNLearner
from agents.web_models import LiveNodeModel, serve_node_models
from federation.config import HostConfig, NodeSpec
from federation.host import build_host
from federation.web import NodeModel
from knowledge.graphs import NodeGraphs
from knowledge.music.importer import import_corpus
from knowledge.music.rdf import TargetGraphs
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.graph import load_music_tensors
from ontology import SPORE

BASE = "http://127.0.0.1:9"
ACTOR = f"{BASE}/nodes/ada"


@pytest.fixture(scope="module")
def node() -> FungusNode:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    import_corpus(
        store, synthesize(SynthParams(listeners=24, artists=80, seed=5)), TargetGraphs.for_node(ACTOR)
    )
    tensors = load_music_tensors(store, ACTOR)
    learner = LightGCNLearner(
        tensors.interactions,
        tensors.interactions[:, :0],
        num_listeners=tensors.num_listeners,
        num_artists=tensors.num_artists,
        embedding_dim=8,
        num_layers=2,
    )
    weights = learner.initial_weights(0)
    state = node_state(ACTOR, seed=0, weights=weights, architecture=str(SPORE.LightGCN), seeks=("#jazz",))
    return FungusNode("ada", NodeContext(learner=learner), state, graphs=NodeGraphs(NamedNode(ACTOR), store))


def test_no_model_before_the_first_round_then_the_current_weights(node: FungusNode) -> None:
    live = LiveNodeModel(node)
    assert live() is None  # random initial weights are not an answer
    trained = node.ctx.learner.train(node.state.weights, seed=1).weights
    node.state = replace(node.state, rounds_done=1, weights=trained)
    model = live()
    assert model is not None and live() is model  # built once per set of weights
    assert model.snapshot.startswith(ACTOR + "/snapshots/")
    expected = NodeModel.from_weights(trained, model.tensors, node=ACTOR, num_layers=2)
    assert model.snapshot == expected.snapshot
    assert [r.iri for r in model.engine.for_artists([0], 5)] == [
        r.iri for r in expected.engine.for_artists([0], 5)
    ]
    again = node.ctx.learner.train(trained, seed=2).weights
    node.state = replace(node.state, rounds_done=2, weights=again)
    rebuilt = live()
    assert rebuilt is not None and rebuilt.snapshot != model.snapshot  # a new round's weights, a new snapshot


def test_the_page_of_a_host_serves_its_nodes_models(node: FungusNode, tmp_path: Path) -> None:
    assert node.graphs is not None
    config = HostConfig(base_url=BASE, data_dir=tmp_path, nodes=(NodeSpec("ada"),), allow_loopback=True)
    app = build_host(config, store=node.graphs.store)
    reported: list[dict[str, Any]] = []
    host: Any = SimpleNamespace(nodes={node.actor: node}, on_round=reported.append)  # what NodeHost offers
    serve_node_models(app, host)
    host.on_round({"node": "ada", "round": 1, "group": "#jazz", "metrics": {"recall@20": 0.25, "loss": 0.7}})
    assert reported and reported[0]["round"] == 1  # the host's own listener still hears it
    if node.state.rounds_done == 0:
        node.state = replace(node.state, rounds_done=1)
    name = load_music_tensors(node.graphs.store, ACTOR).artist_names[3]
    page = TestClient(app).get("/recommend", params={"node": "ada", "artists": name.lower(), "k": "5"})
    assert page.status_code == 200
    assert page.text.count('class="artist"') == 5
    assert "/nodes/ada/snapshots/" in page.text
