"""SPARQL endpoint overhead: the same queries through a host's /sparql over HTTP and on the store directly.

Issue 7's target: a query answered through ``/sparql`` within 1.5 x the time of the same query on the
store, for a 1M-triple graph. The baseline is the query over the same public dataset
(``NodeGraphs.query_public``) with its answer serialised to the same SPARQL JSON or Turtle, so the
ratio is what the endpoint adds: HTTP, protocol parsing, the worker thread and the size/deadline
checks. Both are measured in the same run, interleaved per query.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import httpx
import pyoxigraph as ox

from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.store import EmbeddedStore

from common import measure, print_table, write_json

EX = "https://music.example/"
NAME = ox.NamedNode("http://xmlns.com/foaf/0.1/name")
TAG = ox.NamedNode(EX + "tag")
PLAYS = ox.NamedNode(EX + "plays")
SIMILAR = ox.NamedNode(EX + "similar")

QUERIES = {
    "point lookup": f"SELECT ?p ?o WHERE {{ <{EX}artist/4242> ?p ?o }}",
    "1,000 rows": f"SELECT ?a ?name WHERE {{ ?a <{NAME.value}> ?name }} LIMIT 1000",
    "count by tag": f"SELECT ?tag (COUNT(*) AS ?n) WHERE {{ ?a <{TAG.value}> ?tag }} GROUP BY ?tag",
    "join + filter": (
        f"SELECT ?a ?b WHERE {{ ?a <{SIMILAR.value}> ?b . ?b <{PLAYS.value}> ?n FILTER(?n > 990) }} LIMIT 500"
    ),
    "construct 1,000": f"CONSTRUCT {{ ?a <{NAME.value}> ?n }} WHERE {{ ?a <{NAME.value}> ?n }} LIMIT 1000",
}


def fill(store: EmbeddedStore, graphs: NodeGraphs, triples: int, seed: int = 7) -> None:
    """About ``triples`` triples over the node's public graphs: artists with names, tags, play
    counts and similarity links; a private graph beside them that the queries must not see."""
    rng = random.Random(seed)
    catalogue, models = graphs.graph(GraphKind.CATALOGUE), graphs.graph(GraphKind.MODELS)
    artists = triples // 5
    batch: list[ox.Quad] = []
    for i in range(artists):
        artist = ox.NamedNode(f"{EX}artist/{i}")
        batch += [
            ox.Quad(artist, NAME, ox.Literal(f"Artist {i}"), catalogue),
            ox.Quad(artist, TAG, ox.NamedNode(f"{EX}tag/{rng.randrange(200)}"), catalogue),
            ox.Quad(artist, TAG, ox.NamedNode(f"{EX}tag/{rng.randrange(200)}"), catalogue),
            ox.Quad(artist, PLAYS, ox.Literal(rng.randrange(1000)), models),
            ox.Quad(artist, SIMILAR, ox.NamedNode(f"{EX}artist/{rng.randrange(artists)}"), models),
        ]
        if len(batch) >= 100_000:
            store.extend(batch)
            batch = []
    private = graphs.graph(GraphKind.PRIVATE)
    batch += [ox.Quad(ox.NamedNode(f"urn:listener:{i}"), PLAYS, ox.Literal(i), private) for i in range(1000)]
    store.extend(batch)


def direct(graphs: NodeGraphs, query: str) -> bytes:
    result = graphs.query_public(query)
    if isinstance(result, ox.QuerySolutions):
        return result.serialize(format=ox.QueryResultsFormat.JSON) or b""
    assert not isinstance(result, bool)
    return ox.serialize(result, format=ox.RdfFormat.TURTLE) or b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="size of the node's public graphs")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    store = EmbeddedStore()
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = HostConfig(base_url=base, data_dir=Path(tempfile.mkdtemp()), nodes=(NodeSpec("alice"),))
    host = RunningHost(build_host(config, store=store), sock).start()
    graphs = NodeGraphs(ox.NamedNode(f"{base}/nodes/alice"), store)
    print(f"loading about {args.triples:,} triples ...", flush=True)
    fill(store, graphs, args.triples)
    print(f"{len(store.native):,} quads in the store")

    rows, results = [], {}
    with httpx.Client(base_url=base, timeout=120) as client:

        def over_http(query: str) -> bytes:
            accept = "text/turtle" if query.startswith("CONSTRUCT") else "application/sparql-results+json"
            response = client.get("/nodes/alice/sparql", params={"query": query}, headers={"accept": accept})
            response.raise_for_status()
            return response.content

        try:
            for label, query in QUERIES.items():
                assert len(over_http(query)) == len(direct(graphs, query)), label  # same answer, same bytes
                store_time = measure(lambda q=query: direct(graphs, q), repeat=args.repeat)
                http_time = measure(lambda q=query: over_http(q), repeat=args.repeat)
                ratio = http_time["median_s"] / store_time["median_s"]
                added = (http_time["median_s"] - store_time["median_s"]) * 1000
                rows.append(
                    [label, store_time["median_s"] * 1000, http_time["median_s"] * 1000, added, ratio]
                )
                results[label] = {"store": store_time, "endpoint": http_time, "ratio": ratio}
        finally:
            host.stop()
    print_table(["query", "store ms", "/sparql ms", "added ms", "ratio"], rows)
    write_json(
        str(args.json) if args.json else None, "sparql", {"triples": len(store.native), "queries": results}
    )


if __name__ == "__main__":
    main()
