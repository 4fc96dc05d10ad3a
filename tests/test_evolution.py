"""The evolving fungiverse wires reasoning into the simulator: evidence, decisions and protocol acts."""

from __future__ import annotations

import random

import pytest
import torch
from pyoxigraph import NamedNode
from rdflib import URIRef

from agents.evolution import EvolutionSettings, _World, learner_settings, run_evolution
from agents.recsys_scenario import NON_IID, deal_listeners, synthetic_tensors
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music import SynthParams
from knowledge.store import to_rdflib
from reasoning.decisions import read_decisions
from reasoning.mutation import current_blueprint
from reasoning.operators import blueprint_graph, mutate
from reasoning.records import rule_dataset
from shapes.validation import default_validator

SETTINGS = EvolutionSettings(nodes=6, group_size=3, rounds=8, seed=1, switch_patience=1, stagnation_rounds=2)


@pytest.fixture(scope="module")
def corpus() -> tuple:
    torch.set_num_threads(1)
    tensors = synthetic_tensors(SynthParams(seed=1, listeners=60, artists=200))
    return tensors, deal_listeners(tensors, SETTINGS.nodes, seed=1, split=NON_IID)


def test_a_new_blueprint_changes_the_learner_it_describes() -> None:
    tensors = synthetic_tensors(SynthParams(seed=1, listeners=30, artists=100))
    world = _World(tensors, deal_listeners(tensors, 2, seed=1), EvolutionSettings(nodes=2, group_size=2))
    actor = world.actors[0]
    source = to_rdflib(world.store, graph_iri(NamedNode(actor), GraphKind.BLUEPRINT))
    parent = current_blueprint(world.store, actor)
    assert parent is not None
    mutant = mutate(
        source,
        parent,
        URIRef(f"{actor}/blueprints/9"),
        rng=random.Random(0),
        rate=1.0,
        operators=world.operators,
    )
    settings = learner_settings(mutant.graph, mutant.iri)
    assert settings != learner_settings(blueprint_graph(source, parent), parent)
    assert set(settings) == {"learning_rate", "local_epochs", "num_layers"}


@pytest.mark.slow
def test_static_groups_decide_nothing_and_keep_their_members(corpus: tuple) -> None:
    tensors, data = corpus
    result = run_evolution(tensors, data, EvolutionSettings(**{**vars(SETTINGS), "evolve": False}))
    assert result.passes == 0 and not any(result.counts.values())
    assert all(point["members"] == {"#fungi0": 3, "#fungi1": 3} for point in result.timeline[1:])
    assert len(result.final_recall) == SETTINGS.nodes


@pytest.mark.slow
def test_evolving_nodes_reason_every_round_and_record_valid_decisions(corpus: tuple) -> None:
    tensors, data = corpus
    result = run_evolution(tensors, data, SETTINGS)
    store = result.store
    assert store is not None
    assert result.passes >= SETTINGS.nodes * SETTINGS.rounds
    assert result.counts["cross_checks"] > 0
    decided = sum(result.counts[k] for k in ("switches", "mutations", "reverts", "adoptions", "discarded"))
    assert decided > 0
    # Every switch the counts report is a Leave and Join that the protocol carried out: the members
    # of the groups always add up to the nodes, and a switched node's graph names its new group.
    assert all(sum(p["members"].values()) <= SETTINGS.nodes for p in result.timeline)
    for actor, group in result.groups.items():
        views = read_decisions(store, node=actor, dataset=rule_dataset(actor))
        decisions = to_rdflib(store, graph_iri(NamedNode(actor), GraphKind.DECISIONS))
        if views:
            report = default_validator().validate(decisions)
            assert report.conforms, report.lines()
        switched = [v for v in views if v.explanation.startswith("Left ")]
        if switched and group is not None:
            chosen = next(o.target for o in switched[-1].options if o.chosen)
            assert group == chosen or len(switched) > 1
