"""A served node whose blueprint asks for the knowledge-aware model trains it, tags and entities included."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import torch
from pyoxigraph import NamedNode, RdfFormat
from rdflib import RDF, Graph
from rdflib.namespace import DCAT
from safetensors.torch import load as load_safetensors

from agents.fungus_host import start_fungus_host
from agents.node_setup import CatalogueQuads, NodeRoles, RoundTiming, build_node, read_blueprint
from agents.protocol.recommender import BETAS, BLEND_WEIGHTS
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.lightgcn import KnowledgeLightGCN
from ontology import SPORE

ROOT = Path(__file__).resolve().parent.parent
KG_SCOUT = read_blueprint(ROOT / "examples" / "blueprints" / "kg_scout.ttl")
CORPUS = SynthParams(listeners=40, artists=120, seed=3)


def kg_node(actor: str, store: EmbeddedStore, *, rounds: int = 1):
    catalogue = CatalogueQuads(synthesize(CORPUS))
    return build_node(
        KG_SCOUT,
        actor,
        store=store,
        catalogue=catalogue,
        roles=NodeRoles(founds="#indie", shard=(0, 1)),
        timing=RoundTiming(round_seconds=0.5, max_rounds=rounds),
    )


def test_a_knowledge_aware_blueprint_builds_the_knowledge_model_with_shared_tag_and_entity_tables() -> None:
    torch.set_num_threads(1)
    node = kg_node("http://127.0.0.1:9/nodes/kg_scout", EmbeddedStore())
    learner = node.ctx.learner
    assert isinstance(learner._model(), KnowledgeLightGCN)
    weights = learner.initial_weights(0)
    assert weights["tag_embedding.weight"].shape[0] > 0 and weights["entity_embedding.weight"].shape[0] > 0
    [owned] = node.state.owned.values()
    shared = dict(owned.info.shared_shapes)
    assert "tag_embedding.weight" in shared and "entity_embedding.weight" in shared
    assert not any(name.startswith("listener_") for name in shared)
    trained = learner.train(weights, seed=1).weights
    assert not torch.equal(trained["tag_embedding.weight"], weights["tag_embedding.weight"])


@pytest.mark.slow
def test_a_served_knowledge_aware_node_publishes_a_card_and_snapshot_with_its_kg_parameters(
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    store = EmbeddedStore()
    host, nodes = start_fungus_host(
        tmp_path, lambda base: [kg_node(f"{base}/nodes/kg_scout", store)], store=store
    )
    try:
        actor = f"{host.runtime.config.base_url}/nodes/kg_scout"
        deadline = time.monotonic() + 60
        while not nodes.nodes[actor].done and time.monotonic() < deadline:
            time.sleep(0.2)
        assert nodes.nodes[actor].done
        time.sleep(1)  # the round's publication follows its status by one executor task
        models = NodeGraphs(NamedNode(actor), store).graph(GraphKind.MODELS)
        graph = Graph().parse(data=store.dump(format=RdfFormat.N_TRIPLES, graph=models).decode(), format="nt")
        cards = set(graph.subjects(RDF.type, SPORE.ModelSnapshot))
        assert cards
        card = next(iter(cards))
        assert (card, SPORE.architecture, SPORE.KnowledgeLightGCN) in graph
        blob = httpx.get(str(graph.value(card, DCAT.downloadURL)), timeout=10).content
        tensors = load_safetensors(blob)
        assert {"artist_embedding.weight", "tag_embedding.weight", "entity_embedding.weight"} <= set(tensors)
        assert not any(name.startswith("listener_") for name in tensors)
        # Its group shares co-listening statistics: the node chose its blend on validation listens,
        # reports the blend's metrics beside its model's, and the web page recommends with it.
        node = nodes.nodes[actor]
        choice = node.ctx.learner.last_choice
        assert choice is not None and choice.beta in BETAS and choice.weight in BLEND_WEIGHTS
        metrics = dict(node.state.last_round.metrics)
        assert {"recall@20", "blend-recall@20"} <= set(metrics)
        # ... and published that choice with its evaluations, for a person reading its graph.
        assert metrics["graph_beta"] in {float(v) for v in graph.objects(None, SPORE.itemGraphBeta)}
        assert metrics["blend_weight"] in {float(v) for v in graph.objects(None, SPORE.blendWeight)}
        liked = synthesize(CORPUS).artists[0].name
        page = httpx.get(
            f"{host.runtime.config.base_url}/recommend",
            params={"node": "kg_scout", "artists": liked},
            timeout=30,
        )
        assert page.status_code == 200
        assert "blended with the group&#39;s co-listening graph" in page.text
        assert "knowledge-aware LightGCN model" in page.text  # its own model, tag tables and all
    finally:
        host.stop()
