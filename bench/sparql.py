"""SPARQL endpoint overhead: the same queries through a host's /sparql over HTTP and on the store directly.

Issue 7's target: a query answered through ``/sparql`` within 1.5 x the time of the same query on the
store, for a 1M-triple graph. The host runs in a process of its own, as it would in a deployment (a
client in the host's process would fight its threads for the GIL); the baseline is the same query
over the same public dataset (``NodeGraphs.query_public``) on a store in this process holding the
same triples (the same seeded fill), its answer serialised to the same SPARQL JSON or Turtle, which
is checked byte for byte against the endpoint's. So the ratio is what the endpoint adds: HTTP,
protocol parsing, the worker thread and the size/deadline checks. Beside it, the Oxigraph server
(the same engine, in Rust, in memory) answers the same query over the same dataset through its own
``/query``, asked by the same HTTP client as ``/sparql``: what any HTTP endpoint of this store costs.
And a bare ASGI app under the host's uvicorn (httptools, uvloop), in a process of its own, answers
each query's expected bytes from memory: the loopback HTTP floor that no endpoint in Python goes under.
All three take turns query by query, so bursts of load on the shared machine fall on every column
alike; CPU time (this process plus the server's, read from /proc) is reported beside wall time
because a busy machine inflates wall time far more.
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pyoxigraph as ox
import uvicorn

from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.store import EmbeddedStore

from common import print_table, write_json

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


def answer_size(body: bytes, query: str) -> int:
    """Solutions or triples in an answer: the server may list the same answer in another order."""
    if query.startswith("CONSTRUCT"):
        return len(list(ox.parse(body, format=ox.RdfFormat.TURTLE)))
    return len(list(ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)))  # type: ignore[arg-type]


def accept_for(query: str) -> str:
    return "text/turtle" if query.startswith("CONSTRUCT") else "application/sparql-results+json"


@contextmanager
def http_client(kind: str, base: str, accept: Callable[[str], str]) -> Iterator[Callable[[str, str], bytes]]:
    """One keep-alive connection; ``get(path_and_query, query)`` returns the body of a 200.

    ``http.client`` is the standard library's client (what SPARQLWrapper uses, through urllib);
    ``httpx`` is the client SPORE itself uses, about 0.4 ms more per request in Python.
    """
    if kind == "httpx":
        with httpx.Client(base_url=base, timeout=120) as client:

            def get_httpx(target: str, query: str) -> bytes:
                response = client.get(target, headers={"accept": accept(query)})
                response.raise_for_status()
                return response.content

            yield get_httpx
        return
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)

    def get_stdlib(target: str, query: str) -> bytes:
        try:
            connection.request("GET", target, headers={"accept": accept(query)})
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the idle connection (uvicorn after 5 s): reconnect, as urllib3 does.
            connection.close()
            connection.request("GET", target, headers={"accept": accept(query)})
            response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{target[:80]}: {response.status} {body[:200]!r}")
        return body

    try:
        yield get_stdlib
    finally:
        connection.close()


@contextmanager
def oxigraph_server(store: EmbeddedStore) -> Iterator[tuple[str, int] | None]:
    """An in-memory ``oxigraph serve`` holding a copy of ``store``; ``None`` if the binary is missing."""
    beside = Path(sys.executable).parent / "oxigraph"
    binary = str(beside) if beside.exists() else shutil.which("oxigraph")
    if binary is None:
        print("no oxigraph binary (pip install oxigraph): its column is left out")
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/query", params={"query": "ASK {}"}, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        httpx.post(
            f"{base}/store",
            content=store.dump(format=ox.RdfFormat.N_QUADS),
            headers={"content-type": "application/n-quads"},
            timeout=600,
        ).raise_for_status()
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def serve_host(triples: int) -> None:
    """The host's own process (``--serve``): print the port, fill the store, serve until stdin closes."""
    store = EmbeddedStore()
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(base, flush=True)
    config = HostConfig(base_url=base, data_dir=Path(tempfile.mkdtemp()), nodes=(NodeSpec("alice"),))
    fill(store, NodeGraphs(ox.NamedNode(f"{base}/nodes/alice"), store), triples)
    with RunningHost(build_host(config, store=store), sock):
        print("ready", flush=True)
        sys.stdin.read()


def serve_bytes(folder: Path) -> None:
    """The bare server's process (``--serve-bytes``): ``GET /N`` answers the bytes of ``folder/N``.

    The host's uvicorn settings with no FastAPI, no router, no query and no thread hop: what HTTP on
    loopback costs any Python endpoint answering the same bytes to the same client.
    """
    bodies = {f"/{path.stem}".encode(): (path.read_bytes(), path.suffix) for path in folder.iterdir()}
    media = {".json": b"application/sparql-results+json", ".ttl": b"text/turtle"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, suffix = bodies[scope["raw_path"]]
        headers = [(b"content-type", media[suffix]), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    sock = bind_loopback()
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    server.run(sockets=[sock])


@contextmanager
def bare_process(bodies: Sequence[tuple[bytes, str]]) -> Iterator[tuple[str, int]]:
    """A bare uvicorn app serving ``bodies`` (bytes, query) as ``/0``, ``/1`` …; (its URL, its pid)."""
    with tempfile.TemporaryDirectory() as folder:
        for index, (body, query) in enumerate(bodies):
            suffix = ".ttl" if query.startswith("CONSTRUCT") else ".json"
            (Path(folder) / f"{index}{suffix}").write_bytes(body)
        command = [sys.executable, __file__, "--serve-bytes", folder]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdin is not None
        try:
            base = process.stdout.readline().strip()
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/0", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.05)
            yield base, process.pid
        finally:
            process.stdin.close()
            process.wait(timeout=30)


@contextmanager
def host_process(triples: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A SPORE host serving node alice in another process; (its base URL, the process)."""
    command = [sys.executable, __file__, "--serve", "--triples", str(triples)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip(), process
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def process_cpu(pid: int | None) -> float:
    """CPU seconds of every thread of process ``pid`` (nanoseconds in /proc/PID/task/*/schedstat)."""
    if pid is None:
        return 0.0
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between listing and reading
    return total / 1e9


Run = tuple[Callable[[], object], int | None]  # what to time, and the server process it asks (if any)


def measure_interleaved(runs: dict[str, Run], *, repeat: int) -> dict[str, dict[str, float]]:
    """Time each of ``runs`` ``repeat`` times, taking turns (one warm-up each, dropped), so that the
    shared machine's load falls on every column alike rather than on whichever ran during a burst."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, float] = dict.fromkeys(runs, 0.0)
    for run, _ in runs.values():
        run()
    for turn in range(repeat):
        names = list(runs)
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            run, server = runs[name]
            server_cpu, start_cpu = process_cpu(server), time.process_time()
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - start_cpu + process_cpu(server) - server_cpu
    return {
        name: {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "cpu_s": cpu[name] / repeat,  # client and server together
        }
        for name, times in samples.items()
    }


def dataset_params(graphs: Sequence[ox.NamedNode]) -> list[tuple[str, str]]:
    """The public dataset as protocol parameters, as ``query_public`` and ``/nodes/alice/sparql`` use it."""
    return [("default-graph-uri", g.value) for g in graphs] + [("named-graph-uri", g.value) for g in graphs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="size of the node's public graphs")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    parser.add_argument(
        "--client",
        choices=("http.client", "httpx"),
        default="http.client",
        help="the client of both HTTP columns",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bytes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_host(args.triples)
        return
    if args.serve_bytes:
        serve_bytes(args.serve_bytes)
        return

    rows, results = [], {}
    with host_process(args.triples) as (base, host):
        store = EmbeddedStore()
        graphs = NodeGraphs(ox.NamedNode(f"{base}/nodes/alice"), store)
        print(f"loading about {args.triples:,} triples here and in the host process ...", flush=True)
        fill(store, graphs, args.triples)
        assert host.stdout is not None and host.stdout.readline().strip() == "ready", "the host did not start"
        print(f"{len(store.native):,} quads in each store; client: {args.client}, keep-alive", flush=True)
        answers = {label: direct(graphs, query) for label, query in QUERIES.items()}
        with (
            oxigraph_server(store) as server,
            bare_process([(answers[label], query) for label, query in QUERIES.items()]) as bare,
            http_client(args.client, base, accept_for) as ask_host,
            http_client(args.client, server[0] if server else base, accept_for) as ask_server,
            http_client(args.client, bare[0], accept_for) as ask_bare,
        ):
            dataset = dataset_params(graphs.public_graphs)
            for index, (label, query) in enumerate(QUERIES.items()):
                endpoint_target = "/nodes/alice/sparql?" + urlencode({"query": query})
                expected = answers[label]
                assert ask_host(endpoint_target, query) == expected, label  # same answer, same bytes
                assert ask_bare(f"/{index}", query) == expected, label
                runs: dict[str, Run] = {
                    "store": (lambda q=query: direct(graphs, q), None),
                    "endpoint": (lambda t=endpoint_target, q=query: ask_host(t, q), host.pid),
                    "bare_http": (lambda t=f"/{index}", q=query: ask_bare(t, q), bare[1]),
                }
                if server is not None:
                    server_target = "/query?" + urlencode([("query", query), *dataset])
                    # Same engine and version, loaded in another order: the same rows, maybe reordered.
                    answer = ask_server(server_target, query)
                    assert answer_size(answer, query) == answer_size(expected, query), label
                    runs["oxigraph_server"] = (lambda t=server_target, q=query: ask_server(t, q), server[1])
                record = measure_interleaved(runs, repeat=args.repeat)
                results[label] = record
                rows.append(table_row(label, record))
    print_table(
        [
            "query",
            "store ms",
            "/sparql ms",
            "ratio",
            "bare HTTP ms",
            "Oxigraph server ms",
            "/sparql ÷ server",
            "store CPU ms",
            "/sparql CPU ms",
            "CPU ratio",
        ],
        rows,
    )
    write_json(
        str(args.json) if args.json else None,
        "sparql",
        {"triples": len(store.native), "client": args.client, "queries": results},
    )


def table_row(label: str, record: dict[str, dict[str, float]]) -> list[object]:
    store, endpoint = record["store"], record["endpoint"]
    server = record.get("oxigraph_server")
    row: list[object] = [label, store["median_s"] * 1000, endpoint["median_s"] * 1000]
    row += [endpoint["median_s"] / store["median_s"], record["bare_http"]["median_s"] * 1000]
    if server is None:
        row += ["n/a", "n/a"]
    else:
        row += [server["median_s"] * 1000, endpoint["median_s"] / server["median_s"]]
    row += [store["cpu_s"] * 1000, endpoint["cpu_s"] * 1000, endpoint["cpu_s"] / store["cpu_s"]]
    return row


if __name__ == "__main__":
    main()
