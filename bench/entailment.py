"""Benchmark: entailment on one node's graph with the SPARQL rules beside owlrl, in the same run.

The node: a synthetic music corpus (catalogue and private graphs, about 10,000 triples with the
defaults) plus the example blueprints and the valid shape fixtures in its blueprint, models, peers
and decisions graphs. SPORE's path: ``reasoning.rules.entail`` on the embedded pyoxigraph store
(the whole run: schema, rules to a fixpoint, clean-up), in memory and on disk (where the rules run
on an in-memory copy and only the difference is written back). Baselines on the same triples:
owlrl's RDFS closure and its OWL RL closure of the node's graphs with the ontology, on rdflib.
Before anything is timed, the SPARQL rules must give the instance facts owlrl's RDFS closure gives.
With ``--server`` the rules also run through the KnowledgeStore interface on an Oxigraph server (one
HTTP request per update), with the same consequences.

    python bench/entailment.py [--listeners 36] [--artists 300] [--repeat 5] [--server] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import owlrl
import rdflib
from pyoxigraph import BlankNode, NamedNode, Quad, RdfFormat, parse

from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.music.importer import import_corpus
from knowledge.music.rdf import TargetGraphs
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore, SparqlEndpointStore, to_rdflib
from ontology import load_ontology
from reasoning.rules import Entailment, entail

from common import ROOT, measure, print_table, write_json
from store import start_server

NODE = NamedNode("http://127.0.0.1:8000/nodes/bench")
INFERRED = NamedNode(f"{NODE.value}/graphs/inferred")
# Where each document of the repository goes in the node's graphs.
DOCUMENTS: dict[GraphKind, list[Path]] = {
    GraphKind.BLUEPRINT: sorted((ROOT / "examples" / "blueprints").glob("*.ttl")),
    GraphKind.MODELS: [ROOT / "tests/fixtures/shapes/valid/snapshot_card.ttl"],
    GraphKind.PEERS: [ROOT / "tests/fixtures/shapes/valid/node_and_group.ttl"],
    GraphKind.DECISIONS: [
        ROOT / "tests/fixtures/shapes/valid/decision.ttl",
        ROOT / "tests/fixtures/shapes/valid/recommendation.ttl",
    ],
}


def _skolem(term: Any) -> Any:
    """Blank nodes as IRIs, so that the data converted to rdflib twice still names its nodes alike."""
    return NamedNode(f"urn:bench:bnode:{term.value}") if isinstance(term, BlankNode) else term


def node_store(listeners: int, artists: int) -> tuple[EmbeddedStore, list[NamedNode]]:
    """A store holding one node's six graphs, and their names."""
    store = EmbeddedStore()
    node = NodeGraphs(NODE, store)
    corpus = synthesize(SynthParams(listeners=listeners, artists=artists, seed=0))
    import_corpus(store, corpus, TargetGraphs.for_node(NODE.value))
    for kind, paths in DOCUMENTS.items():
        for path in paths:
            with path.open("rb") as turtle:
                triples = parse(turtle, format=RdfFormat.TURTLE, base_iri=f"{NODE.value}/{path.stem}")
                store.extend(
                    Quad(_skolem(t.subject), t.predicate, _skolem(t.object), node.graph(kind))
                    for t in triples
                )
    return store, [node.graph(kind) for kind in GraphKind]


def owlrl_closure(data: rdflib.Graph, semantics: type) -> rdflib.Graph:
    graph = rdflib.Graph()
    for triple in data:
        graph.add(triple)
    for triple in load_ontology():
        graph.add(triple)
    owlrl.DeductiveClosure(semantics).expand(graph)
    return graph


def instance_facts(graph: rdflib.Graph, resources: set) -> set:
    """As tests/test_rules.py compares: resource-valued triples about the data's own resources, without
    owlrl's axiomatic types and reflexive triples."""
    axiomatic = {
        rdflib.RDFS.Resource,
        rdflib.RDF.Property,
        rdflib.RDFS.Class,
        rdflib.OWL.Thing,
    }
    return {
        (s, p, o)
        for s, p, o in graph
        if s in resources and not isinstance(o, rdflib.Literal) and o not in axiomatic and s != o
    }


def check_agreement(store: EmbeddedStore, graphs: list[NamedNode], data: rdflib.Graph) -> int:
    """The rules' closure equals owlrl's RDFS closure on the data's resources; returns its size."""
    entail(store, graphs=graphs, into=INFERRED)
    ours = to_rdflib(store, [*graphs, INFERRED])
    resources = {n for n in set(ours.subjects()) | set(ours.objects()) if not isinstance(n, rdflib.Literal)}
    resources -= set(load_ontology().subjects())
    reference = owlrl_closure(to_rdflib(store, graphs), owlrl.RDFS_Semantics)
    expected = instance_facts(reference, resources)
    got = instance_facts(ours, resources)
    if got != expected:
        missing, extra = len(expected - got), len(got - expected)
        raise SystemExit(f"the SPARQL rules disagree with owlrl: {missing} facts missing, {extra} extra")
    return len(got)


def time_on_disk(
    store: EmbeddedStore, graphs: list[NamedNode], expected: Entailment, repeat: int
) -> dict[str, float]:
    """The same node in an on-disk (RocksDB) store, where only changed consequences are written."""
    with tempfile.TemporaryDirectory() as scratch:
        disk = EmbeddedStore(Path(scratch) / "store")
        disk.load(store.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
        if entail(disk, graphs=graphs, into=INFERRED) != expected:
            raise SystemExit("the rules entailed something else on disk")
        timing = measure(lambda: entail(disk, graphs=graphs, into=INFERRED), repeat=repeat)
        disk.close()
        return timing


def time_on_server(
    store: EmbeddedStore, graphs: list[NamedNode], expected: Entailment, repeat: int
) -> dict[str, float]:
    """The same node and rules on a fresh ``oxigraph serve``, which must entail the same triples."""
    with tempfile.TemporaryDirectory() as scratch:
        process, base = start_server(Path(scratch) / "oxigraph")
        try:
            remote = SparqlEndpointStore.oxigraph(base)
            remote.load(store.dump(format=RdfFormat.N_QUADS), format=RdfFormat.N_QUADS)
            remote.clear(INFERRED)
            if entail(remote, graphs=graphs, into=INFERRED) != expected:
                raise SystemExit("the rules entailed something else on the Oxigraph server")
            timing = measure(lambda: entail(remote, graphs=graphs, into=INFERRED), repeat=repeat)
            remote.close()
            return timing
        finally:
            process.terminate()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=36, help="synthetic listeners (default 36)")
    parser.add_argument("--artists", type=int, default=300, help="synthetic artists (default 300)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs of the SPARQL rules")
    parser.add_argument("--owlrl-repeat", type=int, default=1, help="measured runs of each owlrl closure")
    parser.add_argument("--server", action="store_true", help="also time the rules on an Oxigraph server")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()

    store, graphs = node_store(args.listeners, args.artists)
    asserted = sum(store.count(graph) for graph in graphs)
    data = to_rdflib(store, graphs)
    agreed = check_agreement(store, graphs, data)

    result = entail(store, graphs=graphs, into=INFERRED)
    rules = measure(lambda: entail(store, graphs=graphs, into=INFERRED), repeat=args.repeat)
    rdfs = measure(lambda: owlrl_closure(data, owlrl.RDFS_Semantics), repeat=args.owlrl_repeat, warmup=0)
    owl_rl = measure(lambda: owlrl_closure(data, owlrl.OWLRL_Semantics), repeat=args.owlrl_repeat, warmup=0)
    disk = time_on_disk(store, graphs, result, args.repeat)
    server = time_on_server(store, graphs, result, args.repeat) if args.server else None

    print(
        f"node: {asserted} asserted triples in {len(graphs)} graphs; the rules entail {result.triples} "
        f"in {result.passes} passes; {agreed} instance facts agree with owlrl's RDFS closure"
    )
    cases = {
        "SPARQL rules (pyoxigraph, embedded)": rules,
        "owlrl RDFS closure": rdfs,
        "owlrl OWL RL closure": owl_rl,
        "SPARQL rules (pyoxigraph, on disk)": disk,
    }
    if server is not None:
        cases["SPARQL rules (Oxigraph server, HTTP)"] = server
    print_table(
        ["entailment", "median ms", "min ms", "vs SPARQL rules"],
        [
            [name, t["median_s"] * 1e3, t["min_s"] * 1e3, t["median_s"] / rules["median_s"]]
            for name, t in cases.items()
        ],
    )
    write_json(
        args.json,
        "reasoning",
        {
            "listeners": args.listeners,
            "artists": args.artists,
            "asserted_triples": asserted,
            "entailed_triples": result.triples,
            "passes": result.passes,
            "agreeing_instance_facts": agreed,
            "sparql_rules": rules,
            "owlrl_rdfs": rdfs,
            "owlrl_owl_rl": owl_rl,
            "sparql_rules_on_disk": disk,
            "sparql_rules_oxigraph_server": server,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
