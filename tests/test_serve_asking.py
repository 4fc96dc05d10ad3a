"""A served fungus node answers Fediverse asks with the model its last round left it."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from pyoxigraph import NamedNode

from agents.fungus_host import start_fungus_host
from agents.node import FungusNode, founded_group, node_state
from agents.protocol.context import NodeContext
from agents.protocol.recommender import LightGCNLearner
from federation.keys import load_or_create_key
from knowledge.graphs import NodeGraphs
from knowledge.music.importer import import_corpus
from knowledge.music.rdf import TargetGraphs
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.graph import load_music_tensors
from ontology import SPORE
from tests.test_asking import ask_over_http, person_server


def lightgcn_node(actor: str, store: EmbeddedStore) -> FungusNode:
    """A node over a small synthetic catalogue that trains alone in its own group, one short round."""
    import_corpus(
        store, synthesize(SynthParams(listeners=24, artists=80, seed=5)), TargetGraphs.for_node(actor)
    )
    tensors = load_music_tensors(store, actor)
    learner = LightGCNLearner(
        tensors.interactions,
        tensors.interactions[:, :0],
        num_listeners=tensors.num_listeners,
        num_artists=tensors.num_artists,
        embedding_dim=8,
        num_layers=2,
    )
    weights = learner.initial_weights(0)
    shapes = (("artist_embedding.weight", tuple(weights["artist_embedding.weight"].shape)),)
    founds = [founded_group(actor, "#jazz", shapes, aggregation_rule=str(SPORE.WeightedMean))]
    state = node_state(
        actor, seed=0, weights=weights, architecture=str(SPORE.LightGCN), seeks=("#jazz",), founds=founds
    )
    ctx = NodeContext(learner=learner, train_seconds=0.2, max_rounds=1)
    # boot_at: the node starts 2 s after the host, so an ask in that window finds no model yet
    return FungusNode("ada", ctx, state, graphs=NodeGraphs(NamedNode(actor), store), boot_at=2.0)


def wait_for(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.slow
def test_a_served_node_answers_an_ask_after_its_first_round_and_apologises_before(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    received: list[dict[str, Any]] = []
    server, key = person_server(load_or_create_key(tmp_path / "bob.pem"), received)
    host, nodes = start_fungus_host(
        tmp_path / "host", lambda base: [lightgcn_node(f"{base}/nodes/ada", store)], store=store
    )
    try:
        actor = f"{host.runtime.config.base_url}/nodes/ada"
        names = load_music_tensors(store, actor).artist_names
        node = nodes.nodes[actor]
        assert node.state.rounds_done == 0  # asked before any round: a polite "not yet", not silence
        ask_over_http(actor, key, 1, names[3])
        wait_for(lambda: len(received) >= 1)
        assert received, "an ask before the first round got no reply"
        wait_for(lambda: node.state.rounds_done >= 1)
        assert node.state.rounds_done >= 1
        ask_over_http(actor, key, 2, f"{names[3].upper()}, {names[7]}")
        wait_for(lambda: len(received) >= 2)
    finally:
        host.stop()
        server.stop()
    first, reply = received
    early = first["body"]["object"]
    assert early["inReplyTo"].endswith("/statuses/1")
    assert "no trained model yet" in early["content"]
    note = reply["body"]["object"]
    assert "signature" in reply["headers"]
    assert note["type"] == "Note" and note["inReplyTo"].endswith("/statuses/2")
    liked = f"Because you like {html.escape(names[3])}, {html.escape(names[7])}, you might enjoy:"
    assert liked in note["content"]
    listed = [line.split(". ", 1)[1] for line in note["content"].split("</p><p>")[1].split("<br>")]
    assert len(listed) == 10 and set(listed) <= {html.escape(name) for name in names}  # from its catalogue
    assert any(a["href"].startswith(f"{actor}/recommendations/") for a in note["attachment"])
