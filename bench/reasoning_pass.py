"""Benchmark: one reasoning pass of one node (entailment and every decision rule), beside rdflib/owlrl.

The node has a history like a member after ``--rounds`` rounds of the evolving fungiverse: its
blueprint, one own measurement of its group's model per round, a claim from each of ``--groups``
groups per round, its cross-checks of the two most tempting groups, and the decisions earlier passes
recorded (built by running those passes). The measured pass is a typical round: entailment of the
node's public graphs, the switching rule (a group claims more than the node measures, so a "stay"
decision is recorded) and the mutation rule (the node still improves, so nothing mutates). A second
case times a pass in which the node stagnates and writes a mutated blueprint (SHACL validation of the
mutant included), each run on a fresh copy of the store.

On disk (a served node's store), side by side: the pass as served nodes run it, with the graphs it
reads also kept in memory (knowledge/store/mirror.py), and the same pass reading RocksDB each time;
and the mutating pass on disk. Copies that mutate are entailed first, as earlier passes leave a node.

Baseline, same triples, same rules: owlrl's RDFS closure of the graphs with the ontology, then
rdflib's SPARQL engine evaluating the same ``decide-switch`` and ``decide-mutation`` queries. Before
timing, both engines must rank the same options with the same verdicts.

    python bench/reasoning_pass.py [--rounds 30] [--groups 8] [--repeat 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import owlrl
import rdflib
import torch
from pyoxigraph import Literal, NamedNode, RdfFormat

import queries
from agents.blueprint_writer import BlueprintChoices, new_blueprint
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore, to_rdflib
from ontology import SPORE, load_ontology
from reasoning.decisions import inferred_graph, reason, reasoning_graphs
from reasoning.evidence import Measurement, blueprint_of, evaluation, group_description, membership
from reasoning.records import rule_dataset
from reasoning.rules import entail

from common import measure, print_table, write_json

NODE = "http://127.0.0.1:8000/nodes/bench"
START = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)


def group(index: int) -> str:
    return f"http://127.0.0.1:800{index % 10}/groups/g{index}"


def add_round(store: EmbeddedStore, round_number: int, groups: int, *, own: float) -> None:
    """One round of evidence: the node's measurement of its group, every group's claim, two checks."""
    models = graph_iri(NamedNode(NODE), GraphKind.MODELS)
    peers = graph_iri(NamedNode(NODE), GraphKind.PEERS)
    at = START + datetime.timedelta(minutes=round_number)
    quads = list(
        evaluation(
            Measurement(
                f"{NODE}/evaluations/{round_number}-own",
                group(0),
                f"{group(0)}/s/{round_number}",
                round_number,
                own,
                NODE,
                at=at,
            ),
            models,
        )
    )
    for index in range(1, groups):
        peer = f"http://127.0.0.1:800{index % 10}/nodes/p{index}"
        claim = own + 0.02 * index
        quads += evaluation(
            Measurement(
                f"{peer}/evaluations/{round_number}",
                group(index),
                f"{group(index)}/s/{round_number}",
                round_number,
                claim,
                peer,
                claimed=True,
                at=at,
            ),
            peers,
        )
        if index >= groups - 2:  # the node cross-checks the two most tempting claims
            quads += evaluation(
                Measurement(
                    f"{NODE}/evaluations/{round_number}-g{index}",
                    group(index),
                    f"{group(index)}/s/{round_number}",
                    round_number,
                    own * 0.97,
                    NODE,
                    at=at,
                ),
                models,
            )
    store.extend(quads)


def node_store(rounds: int, groups: int, *, stagnate: bool) -> EmbeddedStore:
    store = EmbeddedStore()
    node = NamedNode(NODE)
    blueprints = graph_iri(node, GraphKind.BLUEPRINT)
    peers = graph_iri(node, GraphKind.PEERS)
    graph, _ = new_blueprint(BlueprintChoices(name="bench", hashtags=("#g0",)), iri=f"{NODE}/blueprints/1")
    store.load(graph.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=blueprints)
    store.extend(
        blueprint_of(NODE, f"{NODE}/blueprints/1", blueprints) + membership(NODE, group(0), blueprints)
    )
    for index in range(groups):
        store.extend(group_description(group(index), f"#g{index}", peers))
    rng = random.Random(0)
    for r in range(1, rounds + 1):
        value = 0.2 if stagnate and r > 2 else 0.1 + 0.004 * r
        add_round(store, r, groups, own=value)
        if r < rounds:
            reason(store, NODE, round_number=r, now=START, rng=rng, entailment=False, mutation=not stagnate)
    return store


def copy_of(store: EmbeddedStore) -> EmbeddedStore:
    fresh = EmbeddedStore()
    fresh.load(store.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
    return fresh


def rdflib_baseline(store: EmbeddedStore, round_number: int) -> tuple[dict[str, Any], list[list[str]]]:
    """owlrl's RDFS closure of the rule dataset with the ontology, then rdflib running both rules."""
    data = to_rdflib(store, rule_dataset(NODE))
    texts = {name: queries.load(name) for name in ("decide-switch", "decide-mutation")}
    bindings = {"node": rdflib.URIRef(NODE), "round": rdflib.Literal(round_number)}
    verdicts: list[list[str]] = []

    def run() -> None:
        closed = rdflib.Graph()
        for triple in data:
            closed.add(triple)
        for triple in load_ontology():
            closed.add(triple)
        owlrl.DeductiveClosure(owlrl.RDFS_Semantics).expand(closed)
        verdicts.clear()
        for text in texts.values():
            rows = closed.query(text, initBindings=bindings)
            verdicts.append([f"{row.target} {bool(row.qualifies)}" for row in rows])  # type: ignore[union-attr]

    return measure(run, repeat=3, warmup=0), verdicts


def oxigraph_verdicts(store: EmbeddedStore, round_number: int) -> list[list[str]]:
    found = []
    for name in ("decide-switch", "decide-mutation"):
        rows = store.query(
            queries.load(name),
            bindings={
                "node": NamedNode(NODE),
                "round": Literal(
                    str(round_number), datatype=NamedNode("http://www.w3.org/2001/XMLSchema#integer")
                ),
            },
            default_graph=rule_dataset(NODE),
        )
        found.append([f"{row['target'].value} {row['qualifies'].value == 'true'}" for row in rows])  # type: ignore[union-attr,index]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds of history (default 30)")
    parser.add_argument("--groups", type=int, default=8, help="groups that publish claims (default 8)")
    parser.add_argument("--repeat", type=int, default=20, help="measured passes (default 20)")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    store = node_store(args.rounds, args.groups, stagnate=False)
    triples = sum(store.count(g) for g in rule_dataset(NODE))
    rng = random.Random(1)

    def one_pass(target: EmbeddedStore) -> Any:
        return reason(target, NODE, round_number=args.rounds, now=START, rng=rng)

    result = one_pass(store)
    assert [d.kind for d in result.decisions] == [str(SPORE.SwitchGroupDecision)], result.decisions
    memory = measure(lambda: one_pass(store), repeat=args.repeat)
    entailment_only = measure(
        lambda: entail(store, graphs=rule_dataset(NODE), into=inferred_graph(NODE)), repeat=args.repeat
    )
    rules_only = measure(
        lambda: reason(store, NODE, round_number=args.rounds, now=START, rng=rng, entailment=False),
        repeat=args.repeat,
    )
    with tempfile.TemporaryDirectory() as directory:
        disk = EmbeddedStore(Path(directory) / "store")
        disk.load(store.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
        from_disk = measure(
            lambda: reason(disk, NODE, round_number=args.rounds, now=START, rng=rng, keep_in_memory=False),
            repeat=args.repeat,
        )
        on_disk = measure(lambda: one_pass(disk), repeat=args.repeat)
        assert disk.kept(reasoning_graphs(NODE)) is not None
        disk.close()

    stagnating = node_store(args.rounds, args.groups, stagnate=True)
    copies = [copy_of(stagnating) for _ in range(4)]
    for copy in copies:  # as the node's earlier passes left it: entailed, so the pass adds few triples
        entail(copy, graphs=rule_dataset(NODE), into=inferred_graph(NODE))
    mutated = [one_pass(copies[0])]
    assert mutated[0].mutation.blueprint is not None, "the stagnating node must mutate"
    with_mutation = measure(lambda: mutated.append(one_pass(copies[len(mutated)])), repeat=3, warmup=0)
    with tempfile.TemporaryDirectory() as directory:
        disks = []
        for index in range(4):
            disk = EmbeddedStore(Path(directory) / f"copy{index}")
            disk.load(stagnating.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
            disk.keep_in_memory(reasoning_graphs(NODE))  # as the node's earlier passes left it
            entail(disk, graphs=rule_dataset(NODE), into=inferred_graph(NODE))
            disks.append(disk)
        on_disk_mutated = [one_pass(disks[0])]
        assert on_disk_mutated[0].mutation.blueprint is not None, "the stagnating node must mutate"
        mutation_on_disk = measure(
            lambda: on_disk_mutated.append(one_pass(disks[len(on_disk_mutated)])), repeat=3, warmup=0
        )
        for disk in disks:
            disk.close()

    verdicts = oxigraph_verdicts(store, args.rounds)
    baseline, rdflib_verdicts = rdflib_baseline(store, args.rounds)
    agree = verdicts == rdflib_verdicts
    if not agree:
        print("rdflib and pyoxigraph rank the options differently:", verdicts, rdflib_verdicts)

    load = os.getloadavg()[0]
    print(f"load average when done: {load:.1f} on {os.cpu_count()} CPUs (a busy machine inflates medians)")
    print(
        f"node: {triples} triples in its public graphs (catalogue aside) after {args.rounds} rounds with "
        f"{args.groups} groups; entailment adds {result.entailment.triples}; "
        f"rule verdicts agree with rdflib: {agree}"
    )
    cases = {
        "pass: entailment + rules (pyoxigraph, in memory)": memory,
        "entailment only (pyoxigraph, in memory)": entailment_only,
        "pass: rules only (pyoxigraph, in memory)": rules_only,
        "pass on disk, its graphs kept in memory (served nodes)": on_disk,
        "pass on disk, every read from RocksDB": from_disk,
        "pass that mutates (SHACL check of the mutant)": with_mutation,
        "pass that mutates, on disk (graphs kept in memory)": mutation_on_disk,
        "baseline: owlrl RDFS + rdflib SPARQL, same rules": baseline,
    }
    print_table(
        ["reasoning pass", "median ms", "min ms", "CPU median ms", "vs SPORE pass"],
        [
            [
                name,
                t["median_s"] * 1e3,
                t["min_s"] * 1e3,
                t["cpu_median_s"] * 1e3,
                t["median_s"] / memory["median_s"],
            ]
            for name, t in cases.items()
        ],
    )
    write_json(
        args.json,
        "reasoning_pass",
        {
            "rounds": args.rounds,
            "groups": args.groups,
            "triples": triples,
            "entailed_triples": result.entailment.triples,
            "verdicts_agree_with_rdflib": agree,
            "pass_in_memory": memory,
            "entailment_only_in_memory": entailment_only,
            "rules_only_in_memory": rules_only,
            "pass_on_disk": on_disk,
            "pass_on_disk_reading_rocksdb": from_disk,
            "pass_with_mutation": with_mutation,
            "pass_with_mutation_on_disk": mutation_on_disk,
            "baseline_owlrl_rdflib": baseline,
            "load_average": load,
            "target_ms": 50,
            "meets_target": memory["median_s"] < 0.05,
            "meets_target_in_cpu_time": memory["cpu_median_s"] < 0.05,
            "meets_target_on_disk": on_disk["median_s"] < 0.05,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
