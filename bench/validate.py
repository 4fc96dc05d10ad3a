"""Benchmark: validating blueprints with SPORE's validator beside plain pyshacl, in the same run.

SPORE's path: parse with pyoxigraph, one-pass RDFS entailment from a precomputed ontology index,
pyshacl without its own inference; many blueprints in one pass. Baseline: ``pyshacl.validate`` on an
rdflib in-memory graph with the ontology mixed in and its RDFS inference, as one would call it
without SPORE. Both validate the same documents and must agree on which are valid.

    python bench/validate.py [--count 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import random
import sys

import pyshacl
from rdflib import BNode, Graph, URIRef
from rdflib.term import Node

from knowledge.documents import load_document
from ontology import SPORE, load_ontology
from shapes import load_shapes
from shapes.validation import default_validator

from common import ROOT, measure, print_table, write_json

EXAMPLES = sorted((ROOT / "examples" / "blueprints").glob("*.ttl"))


def _renamed(term: Node, iri: URIRef, fresh: dict[Node, Node]) -> Node:
    """The term in a copy: fresh blank nodes, and the blueprint under its new IRI."""
    if isinstance(term, BNode):
        return fresh.setdefault(term, BNode())
    if isinstance(term, URIRef) and str(term).endswith("#blueprint"):
        return iri
    return term


def corpus(count: int, seed: int = 7) -> list[Graph]:
    """``count`` distinct blueprints: the examples under new IRIs, every tenth one made invalid."""
    rng = random.Random(seed)
    sources = [load_document(str(path)).graph for path in EXAMPLES]
    documents = []
    for index in range(count):
        source = sources[index % len(sources)]
        iri = URIRef(f"https://bench.example/blueprints/{index}#blueprint")
        graph = Graph()
        fresh: dict[Node, Node] = {}
        for s, p, o in source:
            graph.add((_renamed(s, iri, fresh), p, _renamed(o, iri, fresh)))
        if index % 10 == 9:
            margin = next(graph.subject_objects(SPORE.switchMargin))
            graph.set(
                (
                    margin[0],
                    SPORE.switchMargin,
                    type(margin[1])(str(rng.randint(2, 9)) + ".0", datatype=margin[1].datatype),
                )
            )
        documents.append(graph)
    return documents


def baseline_validate(graph: Graph) -> bool:
    conforms, _, _ = pyshacl.validate(
        graph, shacl_graph=load_shapes(), ont_graph=load_ontology(), inference="rdfs", advanced=True
    )
    return bool(conforms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="blueprints in the batch (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs for one blueprint")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()

    validator = default_validator()
    one_path = str(EXAMPLES[0])
    documents = corpus(args.count)
    # Both must reach the same verdicts before their times mean anything.
    ours = [r.conforms for r in validator.validate_many(documents)]
    union = Graph()
    for document in documents:
        for triple in document:
            union.add(triple)
    expected_invalid = sum(1 for i in range(args.count) if i % 10 == 9)
    assert ours.count(False) == expected_invalid, ours.count(False)
    assert baseline_validate(union) is False

    single_ours = measure(lambda: validator.validate(load_document(one_path).graph), repeat=args.repeat)
    single_base = measure(
        lambda: baseline_validate(Graph().parse(one_path, format="turtle")), repeat=args.repeat
    )
    batch_ours = measure(lambda: validator.validate_many(documents), repeat=1, warmup=0)
    batch_base = measure(lambda: baseline_validate(union), repeat=1, warmup=0)

    rows = [
        [
            "1 blueprint (parse + validate)",
            single_ours["median_s"] * 1e3,
            single_base["median_s"] * 1e3,
            single_base["median_s"] / single_ours["median_s"],
        ],
        [
            f"{args.count} blueprints",
            batch_ours["median_s"] * 1e3,
            batch_base["median_s"] * 1e3,
            batch_base["median_s"] / batch_ours["median_s"],
        ],
        [
            f"{args.count} blueprints, per blueprint",
            batch_ours["median_s"] * 1e3 / args.count,
            batch_base["median_s"] * 1e3 / args.count,
            batch_base["median_s"] / batch_ours["median_s"],
        ],
    ]
    print_table(["case", "spore ms", "pyshacl+rdfs ms", "speed-up"], rows)
    write_json(
        args.json,
        "validate",
        {
            "count": args.count,
            "single": {"spore": single_ours, "pyshacl_rdfs": single_base},
            "batch": {"spore": batch_ours, "pyshacl_rdfs": batch_base},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
