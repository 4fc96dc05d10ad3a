"""Store benchmark: the embedded store against a live Oxigraph server, side by side in one run.

Measures bulk load, counting, a bound point lookup (the shape of most node queries), an aggregate
and a dump, each as the median of repeated runs after a discarded warm-up. The embedded point lookup
is also timed with pyoxigraph's own ``substitutions=``, the baseline for the BIND-clause bindings
the store uses (knowledge/store/bindings.py).

    python bench/store.py                 # 20,000 triples, about 20 seconds
    python bench/store.py --quads 5000 --json results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pyoxigraph
from pyoxigraph import NamedNode, RdfFormat, Variable

from knowledge.store import EmbeddedStore, KnowledgeStore, SparqlEndpointStore, Term

GRAPH = NamedNode("https://bench.example/graphs/catalogue")
LOOKUP = (
    "SELECT ?name ?next WHERE { GRAPH ?g { ?item <https://schema.org/name> ?name . "
    "?item <https://schema.org/isRelatedTo> ?next } }"
)
AGGREGATE = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"


def ntriples(quads: int) -> bytes:
    """``quads`` triples about ``quads // 2`` items: a name and a link to the next item."""
    items = quads // 2
    lines = []
    for i in range(items):
        item = f"<https://bench.example/item/{i}>"
        lines.append(f'{item} <https://schema.org/name> "item {i}" .')
        lines.append(
            f"{item} <https://schema.org/isRelatedTo> <https://bench.example/item/{(i + 1) % items}> ."
        )
    return ("\n".join(lines) + "\n").encode()


def median_ms(action: Callable[[], object], repeat: int) -> float:
    action()  # warm-up, discarded
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def paired_median_ms(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[float, float]:
    first(), second()  # warm-up, discarded
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for action, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            action()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def consume(result: object) -> object:
    return list(result) if isinstance(result, Iterable) else result


def measure(store: KnowledgeStore, data: bytes, repeat: int) -> dict[str, float]:
    item = {"item": NamedNode("https://bench.example/item/7")}
    start = time.perf_counter()
    store.load(data, format=RdfFormat.N_TRIPLES, graph=GRAPH)
    loaded = time.perf_counter() - start
    return {
        "bulk load (ms)": loaded * 1000,
        "count one graph (ms)": median_ms(lambda: store.count(GRAPH), repeat),
        "bound lookup (ms)": median_ms(lambda: consume(store.query(LOOKUP, bindings=item)), repeat * 5),
        "aggregate (ms)": median_ms(lambda: consume(store.query(AGGREGATE)), repeat),
        "dump N-Triples (ms)": median_ms(lambda: store.dump(format=RdfFormat.N_TRIPLES, graph=GRAPH), repeat),
    }


def start_server(location: Path) -> tuple[subprocess.Popen[bytes], str]:
    beside = Path(sys.executable).parent / "oxigraph"  # the oxigraph wheel installs it beside python
    binary = str(beside) if beside.exists() else shutil.which("oxigraph")
    if binary is None:
        sys.exit("bench/store.py: the oxigraph binary is missing (pip install oxigraph)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            httpx.get(f"{base}/query", params={"query": "ASK {}"}, timeout=1).raise_for_status()
            return process, base
        except httpx.HTTPError:
            time.sleep(0.05)
    process.terminate()
    sys.exit("bench/store.py: oxigraph serve did not start")


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quads", type=int, default=20_000, help="size of the loaded graph")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    data = ntriples(args.quads)

    columns: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        with EmbeddedStore(Path(scratch) / "embedded") as embedded:
            columns["embedded (disk)"] = measure(embedded, data, args.repeat)
            native = embedded.native
            substitution: dict[Variable, Term] = {Variable("item"): NamedNode("https://bench.example/item/7")}
            # SEP-0007 substitution only accepts projected variables, so the baseline projects ?item.
            baseline = LOOKUP.replace("SELECT ?name ?next", "SELECT ?item ?name ?next")
            # Interleaved, so that machine noise hits both alike.
            ours, theirs = paired_median_ms(
                lambda: consume(
                    embedded.query(LOOKUP, bindings={"item": NamedNode("https://bench.example/item/7")})
                ),
                lambda: consume(native.query(baseline, substitutions=substitution)),
                args.repeat * 20,
            )
            columns["embedded (disk)"]["bound lookup, paired: BIND (ms)"] = ours
            columns["embedded (disk)"]["bound lookup, paired: substitutions= baseline (ms)"] = theirs
        # One fresh server per column: a cleared RocksDB keeps tombstones that slow the next scans.
        for column, graph_store in (("server, Graph Store", True), ("server, SPARQL only", False)):
            process, base = start_server(Path(scratch) / column.replace(" ", "-").replace(",", ""))
            try:
                with SparqlEndpointStore(
                    f"{base}/query",
                    update_url=f"{base}/update",
                    graph_store_url=f"{base}/store" if graph_store else None,
                ) as remote:
                    columns[column] = measure(remote, data, args.repeat)
            finally:
                process.terminate()
                process.wait()

    rows = list(dict.fromkeys(name for column in columns.values() for name in column))
    names = list(columns)
    width = max(len(r) for r in rows)
    print(f"{args.quads} triples, median of {args.repeat} runs (lookups: {args.repeat * 5}), warm-up dropped")
    print(f"{'operation':<{width}}  " + "  ".join(f"{n:>20}" for n in names))
    for row in rows:
        cells = [columns[n].get(row) for n in names]
        print(f"{row:<{width}}  " + "  ".join(f"{c:>20.2f}" if c is not None else f"{'':>20}" for c in cells))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "store",
                    "quads": args.quads,
                    "repeat": args.repeat,
                    "results": columns,
                    "environment": {
                        "python": platform.python_version(),
                        "pyoxigraph": pyoxigraph.__version__,
                        "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine(),
                        "commit": commit(),
                    },
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
