"""Self-replication: child blueprints, caps per node and per host, lineage, the CLI, automatic spawning."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import pytest
from pyoxigraph import NamedNode, QuerySolutions
from rdflib import Graph, URIRef
from rdflib.namespace import PROV

import queries
from agents.autospawn import AutoSpawner, healthy
from agents.cli import main
from agents.protocol.learning import resolve_rule
from agents.scenarios import linear_fungiverse
from agents.spawn import max_children, plan_spawn, spawn_in_store
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore, to_rdflib
from ontology import SPORE
from reasoning.lineage import lineage
from reasoning.mutation import write_blueprint
from shapes.validation import default_validator

PARENT = URIRef("https://host.test/nodes/ada/blueprint")
NODE = "https://host.test/nodes/ada"


def blueprint(max_children: int | None = 2, name: str = "ada") -> Graph:
    cap = f"spore:maxChildren {max_children} ;" if max_children is not None else ""
    graph = Graph()
    graph.parse(
        data=f"""
        @prefix spore: <https://w3id.org/spore/ns#> .
        <{PARENT}> a spore:Blueprint ; spore:nodeName "{name}" ; spore:revision 1 ;
            spore:seeksHashtag "#jazz" ;
            spore:trains [ a spore:ModelConfiguration ; spore:architecture spore:LightGCN ;
                spore:embeddingDimension 32 ; spore:layers 2 ; spore:learningRate 0.01 ; spore:localEpochs 1 ;
                spore:aggregationRule spore:WeightedMean ] ;
            spore:usesModule [ a spore:CodeModule ; spore:moduleId "spore.train.lightgcn" ;
                spore:sha256 "{"0" * 64}" ; spore:implements spore:TrainingBehaviour ] ;
            spore:policy [ a spore:Policy ; {cap} spore:mutationRate 0.2 ; spore:switchMargin 0.01 ;
                spore:outlierThreshold 3.5 ; spore:accusationQuorum 2 ;
                spore:stagnationRounds 2 ] .
        """,
        format="turtle",
    )
    return graph


def plan(graph: Graph, *, children: int = 0, host_nodes: int = 1, cap: int = 8, name: str = "ada_c1"):
    return plan_spawn(
        graph,
        PARENT,
        child=URIRef(f"https://host.test/nodes/{name}/blueprint"),
        name=name,
        children=children,
        host_nodes=host_nodes,
        max_nodes_per_host=cap,
        rng=random.Random(1),
    )


def test_a_child_is_a_mutated_valid_blueprint_linked_to_its_parent() -> None:
    outcome = plan(blueprint())
    assert outcome.spawned and outcome.graph is not None and outcome.changes
    child = outcome.child
    assert (child, PROV.wasRevisionOf, PARENT) in outcome.graph
    assert str(outcome.graph.value(child, SPORE.nodeName)) == "ada_c1"
    assert default_validator().validate(outcome.graph).conforms
    assert outcome.changes[0].setting in outcome.reason


def test_caps_per_node_and_per_host_refuse_with_a_reason() -> None:
    assert max_children(blueprint(None), PARENT) == 0
    refused = plan(blueprint(None))
    assert not refused.spawned and "allows 0 (spore:maxChildren)" in refused.reason
    full = plan(blueprint(2), children=2)
    assert not full.spawned and "has 2 children and its policy allows 2" in full.reason
    crowded = plan(blueprint(2), host_nodes=8, cap=8)
    assert not crowded.spawned and "the host serves 8 nodes, its cap is 8" in crowded.reason


def test_a_child_that_fails_the_shapes_is_not_written() -> None:
    outcome = plan(blueprint(), name="Not A Name")
    assert not outcome.spawned and outcome.graph is None
    assert outcome.reason.startswith("the mutated child fails the shapes:")


def store_with_parent() -> EmbeddedStore:
    store = EmbeddedStore()
    graph = blueprint(1)
    graph.add((URIRef(NODE), SPORE.hostedBy, URIRef("https://host.test")))
    write_blueprint(store, NODE, graph, PARENT)
    return store


def rows(result: object) -> list[dict[str, str]]:
    assert isinstance(result, QuerySolutions)
    names = [v.value for v in result.variables]
    return [{n: row[n].value for n in names if row[n] is not None} for row in result]


def test_spawning_in_a_store_writes_the_child_records_the_decision_and_lineage_follows_it() -> None:
    store = store_with_parent()
    now = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)
    outcome = spawn_in_store(store, NODE, host="https://host.test", seed=3, now=now)
    assert outcome.spawned and outcome.child is not None
    child_node = "https://host.test/nodes/ada_c1"
    children = rows(store.query(queries.load("spawn-children"), bindings={"parent": NamedNode(NODE)}))
    assert [(r["child"], r["name"], r["from"]) for r in children] == [(child_node, "ada_c1", str(PARENT))]
    ancestry = lineage(
        store, str(outcome.child), graphs=[graph_iri(NamedNode(child_node), GraphKind.BLUEPRINT)]
    )
    assert [(r.blueprint, r.generation) for r in ancestry] == [(str(outcome.child), 0), (str(PARENT), 1)]
    decisions = to_rdflib(store, graph_iri(NamedNode(NODE), GraphKind.DECISIONS))
    assert default_validator().validate(decisions).conforms
    assert len(list(decisions.subjects(predicate=None, object=SPORE.SpawnDecision))) == 1
    refused = spawn_in_store(store, NODE, host="https://host.test", seed=4, now=now + datetime.timedelta(1))
    assert not refused.spawned and "policy allows 1" in refused.reason
    decisions = to_rdflib(store, graph_iri(NamedNode(NODE), GraphKind.DECISIONS))
    explanations = sorted(str(o) for o in decisions.objects(None, SPORE.explanation))
    assert len(explanations) == 2
    assert explanations[0].startswith("spawn refused: the parent has 1 child and")
    assert explanations[1].startswith("spawned ada_c1: ")


def spore(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_the_cli_spawns_children_next_to_the_blueprint_until_the_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "ada.ttl"
    parent.write_text(blueprint(2).serialize(format="turtle"))
    for number in (1, 2):
        code, out, err = spore(["spawn", str(parent), "--seed", "5"], capsys)
        assert code == 0, err
        assert out.startswith(f"spawned ada_c{number}: ")
        written = tmp_path / f"ada_c{number}.ttl"
        assert spore(["validate", str(written)], capsys)[0] == 0
        child = Graph().parse(written, publicID=written.resolve().as_uri())
        assert (None, PROV.wasRevisionOf, PARENT) in child  # an absolute parent IRI stays absolute
    code, out, err = spore(["spawn", str(parent)], capsys)
    assert code == 1 and err.splitlines() == [
        "spore: error: spawn refused: the parent has 2 children and its policy allows 2 (spore:maxChildren)"
    ]
    elsewhere = ["spawn", str(parent), "--out-dir", str(tmp_path / "b"), "--max-nodes-per-host", "1"]
    code, _, err = spore(elsewhere, capsys)
    assert code == 1 and "its cap is 1" in err
    code, _, err = spore(["spawn", str(tmp_path / "nope.ttl")], capsys)
    assert code == 2 and "no such blueprint file" in err


def test_the_health_rule_copies_improving_blueprints_only() -> None:
    assert healthy([0.10, 0.11, 0.13], window=2, margin=0.05) is not None
    assert healthy([0.10, 0.10, 0.101], window=2, margin=0.05) is None
    assert healthy([0.5, 0.4, 0.3], window=2, margin=0.05, higher_is_better=False) is not None
    assert healthy([0.1], window=2, margin=0.05) is None


def test_automatic_spawning_starts_a_child_that_joins_and_learns_and_refusals_are_recorded() -> None:
    fungiverse = linear_fungiverse(4, rule_for=resolve_rule, group_size=4, max_rounds=8)
    sim = fungiverse.simulator
    parent = fungiverse.actors[1]
    spawner = AutoSpawner(sim, {parent: (blueprint(1), PARENT)}, metric="mse", higher_is_better=False)
    started: list[str] = []
    while sim.now < 80 and not started:
        sim.run(sim.now + 1.0)
        started += spawner.observe()
    assert started == ["https://node1.fungi.test/nodes/ada_c1"]
    sim.run(sim.now + 30.0)
    spawner.observe()
    child = sim.state(started[0])
    assert child.membership is not None and child.membership.group == fungiverse.groups[0]
    assert child.rounds_done >= 1
    owner = sim.state(fungiverse.actors[0])
    assert started[0] in next(iter(owner.owned.values())).members
    kinds = [(d.chosen is not None, d.explanation.split(":")[0]) for d in spawner.decisions]
    assert kinds[0] == (True, "spawned ada_c1")
    assert kinds[1:] == [(False, "spawn refused")]  # the cap of one child, recorded once


@pytest.mark.slow
def test_a_spawned_child_served_on_another_host_joins_its_parents_group_and_learns(tmp_path: Path) -> None:
    """``spore spawn PARENT --serve -- ...``: the child's host peers with the parent's; both nodes
    end up in one group of two and merge rounds together."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from agents.blueprint_writer import BlueprintChoices, new_blueprint

    graph, report = new_blueprint(
        BlueprintChoices(
            name="ana", hashtags=("#jazz",), embedding_dimension=16, layers=1, learning_rate="0.01"
        )
    )
    assert report.conforms
    parent = tmp_path / "ana.ttl"
    parent.write_text(graph.serialize(format="turtle"))

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    common = ["--synth", "--rounds", "2", "--round-seconds", "2", "--max-seconds", "150"]
    commands = [
        ["serve", str(parent), "--port", str(ports[0]), "--data-dir", str(tmp_path / "a"), "--peer", urls[1]],
        ["spawn", str(parent), "--serve", "--", "--port", str(ports[1]), "--data-dir", str(tmp_path / "b")]
        + ["--peer", urls[0]],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "agents", *command, *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for command in commands
    ]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=240)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, (out[-2000:], err[-2000:])
        outputs.append(out)
    assert outputs[1].splitlines()[0].startswith("spawned ana_c1: ")
    rounds = [json.loads(line) for out in outputs for line in out.splitlines() if '"event": "round"' in line]
    child_rounds = [line for line in rounds if line["node"] == "ana_c1"]
    assert child_rounds and all(line["group"] == "#jazz" for line in child_rounds)
    assert max(line["members"] for line in child_rounds) == 2  # the child joined its parent's group
    assert "recall@20" in child_rounds[-1]["metrics"]
