"""Inbox benchmark: signed activities into one host's shared inbox, beside the host's HTTP floor.

Two host processes run on loopback: a *sender* host whose node actors sign the activities (the
receiver fetches each sender key once, as from any real peer) and the *receiver* host with
``--nodes`` node actors whose shared inbox is measured. The load generator (this process) pre-signs
every request before timing starts, so signing cost is not measured; it then posts them with
``--concurrency`` connections and waits until the receiver has *stored* all of them (verification,
idempotency check, JSON-LD -> RDF, store write).

Baseline in the same run: unsigned GETs of one actor document from the same receiver, the HTTP floor
of this host process. Also reported: the receiver's resident memory with ``--nodes`` actors.

    python bench/inbox.py                      # 3,000 activities, 100 node actors, ~30 s
    python bench/inbox.py --activities 1000 --json inbox.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, print_table, write_json  # noqa: E402

AP_JSON = "application/activity+json"


# -- the host processes -------------------------------------------------------------------------------


def serve(data_dir: Path, nodes: int, ready_file: Path) -> None:
    """Child process: one host with ``nodes`` node actors and a bench-only ``/_bench/stored`` counter."""
    from fastapi.responses import JSONResponse

    from federation.config import HostConfig, Limits, NodeSpec
    from federation.host import RunningHost, bind_loopback, build_host
    from knowledge.store import EmbeddedStore

    data_dir.mkdir(parents=True, exist_ok=True)
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = HostConfig(
        base_url=base,
        data_dir=data_dir,
        nodes=tuple(NodeSpec(f"n{i}") for i in range(nodes)),
        allow_loopback=True,
        limits=Limits(rate_per_second=100_000, rate_burst=100_000, inbox_queue_size=100_000),
    )
    app = build_host(config, store=EmbeddedStore(data_dir / "store"))

    @app.get("/_bench/stored")
    async def stored() -> JSONResponse:
        runtime = app.state.runtime
        return JSONResponse({"processed": runtime.processor.processed, "quads": len(runtime.store.native)})

    host = RunningHost(app, sock).start()
    ready_file.write_text(base)
    try:
        while True:
            time.sleep(3600)
    finally:
        host.stop()


def start_host(data_dir: Path, nodes: int) -> tuple[subprocess.Popen[bytes], str]:
    ready = data_dir.with_suffix(".ready")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(data_dir), "--nodes", str(nodes), "--ready", str(ready)],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"host process for {data_dir} did not start")
        time.sleep(0.05)
    return process, ready.read_text()


def rss_mb(process: subprocess.Popen[bytes]) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU time the host process has used: on a shared machine, CPU per request is the stable measure."""
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


# -- the load generator ----------------------------------------------------------------------------


def presign(
    sender_dir: Path, sender_base: str, receiver_base: str, count: int, senders: int
) -> list[tuple[bytes, dict[str, str]]]:
    from federation.keys import ActorKey, load_or_create_key
    from federation.signatures import sign_cavage

    keys = [
        ActorKey(
            f"{sender_base}/nodes/n{i}#main-key", load_or_create_key(sender_dir / "keys" / f"node-n{i}.pem")
        )
        for i in range(senders)
    ]
    inbox = f"{receiver_base}/inbox"
    now = time.time()
    requests = []
    for index in range(count):
        key = keys[index % senders]
        actor = key.key_id.removesuffix("#main-key")
        note_id = f"{actor}/notes/{uuid.uuid4().hex}"
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{note_id}/activity",
            "type": "Create",
            "actor": actor,
            "to": [f"{receiver_base}/nodes/n{index % 100}"],
            "object": {
                "id": note_id,
                "type": "Note",
                "attributedTo": actor,
                "content": f"<p>model round {index}: recall@20 0.2{index % 10}</p>",
                "tag": [{"type": "Hashtag", "name": "#jazz", "href": f"{sender_base}/tags/jazz"}],
            },
        }
        body = json.dumps(activity).encode()
        headers = sign_cavage(method="POST", url=inbox, body=body, key=key, now=now, content_type=AP_JSON)
        headers.pop("host")
        requests.append((body, headers))
    return requests


async def blast(
    client: httpx.AsyncClient, url: str, requests: list[tuple[bytes | None, dict[str, str]]], concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    """Send all requests with ``concurrency`` workers; latencies (s), status counts, elapsed (s)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)

    async def worker() -> None:
        for body, headers in queue:
            start = time.perf_counter()
            if body is None:
                response = await client.get(url, headers=headers)
            else:
                response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    sender, sender_base = start_host(root / "sender", args.senders)
    receiver, receiver_base = start_host(root / "receiver", args.nodes)
    try:
        idle_rss = rss_mb(receiver)
        warmup = args.activities // 10
        requests = presign(
            root / "sender", sender_base, receiver_base, args.activities + warmup, args.senders
        )
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            actor_url = f"{receiver_base}/nodes/n0"
            gets: list[tuple[bytes | None, dict[str, str]]] = [(None, {"accept": AP_JSON})] * args.activities
            await blast(client, actor_url, gets[:warmup], args.concurrency)  # warm-up, discarded
            cpu_before = cpu_seconds(receiver)
            floor_latency, floor_status, floor_elapsed = await blast(
                client, actor_url, gets, args.concurrency
            )
            floor_cpu = cpu_seconds(receiver) - cpu_before

            await blast(
                client, f"{receiver_base}/inbox", list(requests[:warmup]), args.concurrency
            )  # fetches keys once
            await wait_stored(client, receiver_base, warmup)
            cpu_before = cpu_seconds(receiver)
            start = time.perf_counter()
            inbox_latency, inbox_status, post_elapsed = await blast(
                client, f"{receiver_base}/inbox", list(requests[warmup:]), args.concurrency
            )
            stored_elapsed = await wait_stored(client, receiver_base, warmup + args.activities) - start
            inbox_cpu = cpu_seconds(receiver) - cpu_before
        busy_rss = rss_mb(receiver)
    finally:
        for process in (sender, receiver):
            process.terminate()
            process.wait(timeout=30)
    accepted = inbox_status.get(202, 0)
    return {
        "activities": args.activities,
        "concurrency": args.concurrency,
        "nodes": args.nodes,
        "inbox": {
            "accepted": accepted,
            "statuses": inbox_status,
            "accepted_per_s": accepted / post_elapsed,
            "stored_per_s": args.activities / stored_elapsed,
            "p50_ms": percentile(inbox_latency, 50) * 1000,
            "p99_ms": percentile(inbox_latency, 99) * 1000,
            "host_cpu_ms_per_activity": inbox_cpu / args.activities * 1000,
        },
        "actor_get_floor": {
            "statuses": floor_status,
            "requests_per_s": len(floor_latency) / floor_elapsed,
            "p50_ms": percentile(floor_latency, 50) * 1000,
            "p99_ms": percentile(floor_latency, 99) * 1000,
            "host_cpu_ms_per_request": floor_cpu / len(floor_latency) * 1000,
        },
        "receiver_rss_mb": {"idle_with_actors": idle_rss, "after_load": busy_rss},
    }


async def wait_stored(client: httpx.AsyncClient, base: str, expected: int, timeout: float = 300) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if (await client.get(f"{base}/_bench/stored")).json()["processed"] >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.005)
    raise TimeoutError(f"receiver did not store {expected} activities")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--activities", type=int, default=3000)
    parser.add_argument("--nodes", type=int, default=100, help="node actors on the receiving host")
    parser.add_argument("--senders", type=int, default=10, help="distinct signing actors")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.nodes, args.ready)
        return
    with tempfile.TemporaryDirectory(prefix="spore-bench-inbox-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    inbox, floor = results["inbox"], results["actor_get_floor"]
    print(f"{args.activities} activities, {args.concurrency} connections, {args.nodes} node actors\n")
    print_table(
        ["measure", "per second", "p50 ms", "p99 ms", "host CPU ms each", "per CPU-second"],
        [
            [
                "signed POST /inbox, verified + stored",
                inbox["stored_per_s"],
                inbox["p50_ms"],
                inbox["p99_ms"],
                inbox["host_cpu_ms_per_activity"],
                1000 / inbox["host_cpu_ms_per_activity"],
            ],
            [
                "unsigned GET actor (HTTP floor)",
                floor["requests_per_s"],
                floor["p50_ms"],
                floor["p99_ms"],
                floor["host_cpu_ms_per_request"],
                1000 / floor["host_cpu_ms_per_request"],
            ],
        ],
    )
    rss = results["receiver_rss_mb"]
    idle, loaded = rss["idle_with_actors"], rss["after_load"]
    print(f"\nreceiver RSS: {idle:.0f} MB idle with {args.nodes} actors, {loaded:.0f} MB after load")
    print(f"inbox statuses: {inbox['statuses']}; 202 answers/s {inbox['accepted_per_s']:.4g}")
    print(
        f"load average during the run: {os.getloadavg()[0]:.2f} (a shared machine: compare CPU per request)"
    )
    results["load_average"] = os.getloadavg()[0]
    write_json(args.json, "inbox", results)


if __name__ == "__main__":
    main()
