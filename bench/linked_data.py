"""Linked data on real hosts: fungiverse fan-out against asking each peer in turn, and dereferencing
an IRI over HTTP against describing it on the store.

* **fan-out**: ``/nodes/n0/sparql?fungiverse=true`` (peer discovery, parallel requests, merge) on
  H hosts x N nodes, against the baseline a client without the option would run: the same query
  POSTed to every node's endpoint one after the other and the rows concatenated. Both go through the
  same hosts in the same run; the option is worth having if it is not slower while saying who answered.
* **a slow peer**: the same with one extra peer that takes ``--slow-seconds`` to answer; parallel
  fan-out pays it once, the sequential baseline adds it to everything else.
* **dereferencing**: ``GET {snapshot}`` as Turtle against :func:`describe` plus serialisation on
  the store, i.e. what HTTP, negotiation and the 404-handler dispatch add to a description.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import threading
from pathlib import Path

import httpx
import pyoxigraph as ox

from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from federation.linked_data.describe import describe, public_graphs
from federation.linked_data.negotiation import Representation
from federation.linked_data.serialise import serialise
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore

from common import measure, print_table, write_json

SPORE = "https://w3id.org/spore/ns#"
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
TOKEN = "bench-only-token"
ENDPOINT = "http://rdfs.org/ns/void#sparqlEndpoint"
QUERY = f"SELECT ?snapshot ?value WHERE {{ ?snapshot a <{SPORE}ModelSnapshot> ; <{SPORE}score> ?value }}"


def fill(store: EmbeddedStore, node: str, snapshots: int, peers: list[str]) -> str:
    """A node's public graphs: ``snapshots`` snapshots with a score and a group; its peers' endpoints."""
    models = graph_iri(ox.NamedNode(node), GraphKind.MODELS)
    quads = []
    for i in range(snapshots):
        snapshot = ox.NamedNode(f"{node}/snapshots/{i:064x}")
        quads += [
            ox.Quad(snapshot, RDF_TYPE, ox.NamedNode(SPORE + "ModelSnapshot"), models),
            ox.Quad(snapshot, ox.NamedNode(SPORE + "score"), ox.Literal(str(i / snapshots)), models),
            ox.Quad(
                snapshot,
                ox.NamedNode("http://www.w3.org/ns/prov#wasAttributedTo"),
                ox.NamedNode(node),
                models,
            ),
        ]
    peers_graph = graph_iri(ox.NamedNode(node), GraphKind.PEERS)
    quads += [
        ox.Quad(
            ox.NamedNode(p),
            ox.NamedNode("http://rdfs.org/ns/void#sparqlEndpoint"),
            ox.NamedNode(f"{p}/sparql"),
            peers_graph,
        )
        for p in peers
    ]
    store.extend(quads)
    return f"{node}/snapshots/{0:064x}"


class SlowEndpoint:
    """A SPARQL endpoint that answers an empty result after ``delay`` seconds (a far-away peer)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(self.delay)
            body = b'{"head":{"vars":["snapshot","value"]},"results":{"bindings":[]}}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/sparql-results+json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/nodes/slow/sparql"


CLIENT = httpx.Client(timeout=60, trust_env=False)
"""One client for both sides: building one per request costs more than a query (proxy settings)."""


def sequential(endpoints: list[str]) -> int:
    rows = 0
    for endpoint in endpoints:
        answer = CLIENT.post(
            endpoint, data={"query": QUERY}, headers={"accept": "application/sparql-results+json"}
        )
        rows += len(answer.json()["results"]["bindings"])
    return rows


def fanned(asking: str) -> int:
    answer = CLIENT.post(
        f"{asking}?fungiverse=true",
        data={"query": QUERY},
        headers={"accept": "application/sparql-results+json"},
    )
    return len(answer.json()["results"]["bindings"])


def learn(endpoint: str, update: str) -> None:
    """Write into a node's public graph through its endpoint (the host runs in another process)."""
    answer = CLIENT.post(endpoint, data={"update": update}, headers={"authorization": f"Bearer {TOKEN}"})
    answer.raise_for_status()


def serve_host(
    base_index: int,
    sock_fd: object,
    base: str,
    names: list[str],
    nodes: list[str],
    snapshots: int,
    root: str,
    ready: object,
    stop: object,
) -> None:
    """One host in its own process (as in a real fungiverse), serving until ``stop`` is set."""
    store = EmbeddedStore()
    for name in names:
        node = f"{base}/nodes/{name}"
        fill(store, node, snapshots, [n for n in nodes if n != node] if node == nodes[0] else [])
    config = HostConfig(
        base,
        Path(root) / f"h{base_index}",
        nodes=tuple(NodeSpec(n) for n in names),
        allow_loopback=True,
        sparql_update_token=TOKEN,
    )
    host = RunningHost(build_host(config, store=store), sock_fd).start()  # type: ignore[arg-type]
    ready.set()  # type: ignore[attr-defined]
    stop.wait()  # type: ignore[attr-defined]
    host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=4, help="nodes per host")
    parser.add_argument("--snapshots", type=int, default=200, help="snapshots per node")
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--distant", type=int, default=16, help="peers across a network")
    parser.add_argument("--distant-ms", type=float, default=50.0, help="their answer latency")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    context = multiprocessing.get_context("fork")
    sockets = [bind_loopback() for _ in range(args.hosts)]
    bases = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    names = [[f"n{h * args.nodes + i}" for i in range(args.nodes)] for h in range(args.hosts)]
    nodes = [f"{base}/nodes/{n}" for base, group in zip(bases, names, strict=True) for n in group]
    stop = context.Event()
    with tempfile.TemporaryDirectory() as root:
        processes = []
        for h, (sock, base) in enumerate(zip(sockets, bases, strict=True)):
            ready = context.Event()
            process = context.Process(
                target=serve_host,
                args=(h, sock, base, names[h], nodes, args.snapshots, root, ready, stop),
                daemon=True,
            )
            process.start()
            processes.append(process)
            if not ready.wait(120):
                raise SystemExit(f"host {base} did not start")
        try:
            run(args, bases, nodes)
        finally:
            stop.set()
            for process in processes:
                process.join(30)


def run(args: argparse.Namespace, bases: list[str], nodes: list[str]) -> None:
    endpoints = [f"{n}/sparql" for n in nodes]
    asking = endpoints[0]
    expected = len(nodes) * args.snapshots
    assert fanned(asking) == sequential(endpoints) == expected, "fan-out and baseline disagree"
    results: dict[str, object] = {"hosts": args.hosts, "nodes": len(nodes), "rows": expected}
    rows = []
    fan = measure(lambda: fanned(asking), repeat=args.repeat)
    seq = measure(lambda: sequential(endpoints), repeat=args.repeat)
    rows.append(
        (
            "fan-out, all peers fast",
            f"{len(nodes)} endpoints",
            fan["median_s"] * 1000,
            seq["median_s"] * 1000,
            fan["median_s"] / seq["median_s"],
        )
    )
    results["fanout_ms"], results["sequential_ms"] = fan["median_s"] * 1000, seq["median_s"] * 1000

    slow = SlowEndpoint(args.slow_seconds)
    # The asking node learns of the slow peer as it would from any activity: a stated endpoint.
    peer, endpoint = slow.url.removesuffix("/sparql"), "http://rdfs.org/ns/void#sparqlEndpoint"
    claim = f"INSERT DATA {{ GRAPH <{nodes[0]}/graphs/peers> {{ <{peer}> <{endpoint}> <{slow.url}> }} }}"
    learn(asking, claim)
    fan_slow = measure(lambda: fanned(asking), repeat=max(3, args.repeat // 2))
    seq_slow = measure(lambda: sequential([*endpoints, slow.url]), repeat=max(3, args.repeat // 2))
    rows.append(
        (
            f"fan-out, one peer takes {args.slow_seconds:g} s",
            f"{len(nodes) + 1} endpoints",
            fan_slow["median_s"] * 1000,
            seq_slow["median_s"] * 1000,
            fan_slow["median_s"] / seq_slow["median_s"],
        )
    )
    results["slow_fanout_ms"], results["slow_sequential_ms"] = (
        fan_slow["median_s"] * 1000,
        seq_slow["median_s"] * 1000,
    )

    snapshot = f"{nodes[0]}/snapshots/{0:064x}"
    store = EmbeddedStore()
    fill(store, nodes[0], args.snapshots, [n for n in nodes if n != nodes[0]])
    graphs = public_graphs([nodes[0]])
    http = measure(
        lambda: CLIENT.get(snapshot, headers={"accept": "text/turtle"}).raise_for_status(),
        repeat=args.repeat * 20,
    )
    direct = measure(
        lambda: serialise(describe(store, snapshot, graphs), Representation.TURTLE), repeat=args.repeat * 20
    )
    rows.append(
        (
            "dereference a snapshot (Turtle)",
            "HTTP vs store",
            http["median_s"] * 1000,
            direct["median_s"] * 1000,
            http["median_s"] / direct["median_s"],
        )
    )
    results["dereference_http_ms"], results["describe_store_ms"] = (
        http["median_s"] * 1000,
        direct["median_s"] * 1000,
    )

    learn(asking, claim.replace("INSERT DATA", "DELETE DATA"))  # the slow peer leaves
    # Peers across a network: each answers after --distant-ms (loopback has no latency of its own).
    distant = [SlowEndpoint(args.distant_ms / 1000) for _ in range(args.distant)]
    for far in distant:
        peer = far.url.removesuffix("/sparql")
        learn(
            asking,
            f"INSERT DATA {{ GRAPH <{nodes[0]}/graphs/peers> {{ <{peer}> <{ENDPOINT}> <{far.url}> }} }}",
        )
    everyone = [*endpoints, *(far.url for far in distant)]
    fan_far = measure(lambda: fanned(asking), repeat=max(3, args.repeat // 2))
    seq_far = measure(lambda: sequential(everyone), repeat=max(3, args.repeat // 2))
    rows.append(
        (
            f"fan-out, + {args.distant} peers {args.distant_ms:g} ms away",
            f"{len(everyone)} endpoints",
            fan_far["median_s"] * 1000,
            seq_far["median_s"] * 1000,
            fan_far["median_s"] / seq_far["median_s"],
        )
    )
    results["distant_fanout_ms"], results["distant_sequential_ms"] = (
        fan_far["median_s"] * 1000,
        seq_far["median_s"] * 1000,
    )

    print_table(["what", "size", "SPORE ms (median)", "baseline ms (median)", "ratio"], rows)
    write_json(args.json, "linked_data", results)


if __name__ == "__main__":
    main()
