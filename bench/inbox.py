"""Inbox benchmark: signed activities into one host's shared inbox at a fixed offered rate, with wrk.

Two host processes run on loopback: a *sender* host whose node actors own the signing keys (the
receiver fetches each sender key once, as from any real peer) and the *receiver* host, with
``--nodes`` node actors, whose shared inbox is measured. Every activity is signed (draft-cavage,
distinct ids) before timing starts and written out as raw HTTP requests; ``wrk`` (C, event-driven)
replays them through ``bench/inbox.lua``, each connection paced so that the offered rate is
``--rate`` per second, and reports latency percentiles. The load generator costs far less CPU than
the host (its CPU per request is reported beside the host's), so it cannot be the bottleneck that
bounded the earlier Python client.

Rows, all from the same receiver process in the same run:

* signed POST to ``/inbox``: verified, checked for replay, queued, stored as RDF (the rate counts
  activities *stored*, waited for after wrk stops);
* the same requests POSTed to ``/_bench/floor``, which reads the body and answers 202: the HTTP
  floor of this process for the same bytes;
* unsigned GET of an actor document (the floor the issue names);
* with ``--unpaced``, each POST row again as fast as wrk can go: the capacity ceiling.

Needs ``wrk`` (``.ci/install-wrk.sh``).

    python bench/inbox.py                         # 600/s offered for 10 s, ~1 minute in all
    python bench/inbox.py --rate 800 --duration 10 --unpaced --json inbox.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, print_table, write_json  # noqa: E402

AP_JSON = "application/activity+json"
LUA = Path(__file__).with_suffix(".lua")


# -- the host processes -------------------------------------------------------------------------------


def serve(data_dir: Path, nodes: int, ready_file: Path) -> None:
    """Child process: one host with ``nodes`` node actors plus two bench-only routes."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response

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
        processor = runtime.processor
        return JSONResponse({"processed": processor.processed, "queued": processor.queue.qsize()})

    async def floor(request: Request) -> Response:
        await request.body()
        return Response(b'{"status": "accepted"}', status_code=202, media_type="application/json")

    app.add_route("/_bench/floor", floor, methods=["POST"])
    app.router.routes.insert(0, app.router.routes.pop())  # matched first, like the inbox routes

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


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used: on a shared machine, CPU per request is the stable measure."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# -- pre-signed requests --------------------------------------------------------------------------------


def presign(
    sender_dir: Path, sender_base: str, receiver_base: str, count: int, senders: int, nodes: int
) -> list[bytes]:
    """``count`` raw HTTP/1.1 POSTs of distinct Create(Note)s, signed as the sender's nodes sign."""
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
            "to": [f"{receiver_base}/nodes/n{index % nodes}"],
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
        lines = ["POST /inbox HTTP/1.1"] + [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return requests


def write_requests(requests: list[bytes], directory: Path, name: str) -> tuple[Path, Path]:
    data, offsets = directory / f"{name}.http", directory / f"{name}.offsets"
    position = 0
    with data.open("wb") as raw, offsets.open("w") as index:
        for request in requests:
            raw.write(request)
            index.write(f"{position} {len(request)}\n")
            position += len(request)
    return data, offsets


# -- running wrk ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkRun:
    result: dict[str, Any]
    wrk_cpu_s: float
    host_cpu_s: float
    elapsed_s: float


def run_wrk(
    url: str,
    *,
    requests: tuple[Path, Path] | None,
    host_pid: int,
    rate: float | None,
    duration: float,
    connections: int,
    threads: int,
    path: str = "",
) -> WrkRun:
    """One wrk run; ``rate`` None is unpaced. ``requests`` None sends plain GETs of ``url``."""
    env = {**os.environ, "SPORE_THREADS": str(threads), "SPORE_PATH": path}
    env["SPORE_STOP_WHEN_DONE"] = "1" if url.endswith("/inbox") else "0"
    env["SPORE_INTERVAL_MS"] = str(threads / rate * 1000 if rate else 0)
    if requests is not None:
        env["SPORE_REQUESTS"], env["SPORE_OFFSETS"] = str(requests[0]), str(requests[1])
    else:
        env["SPORE_REQUESTS"] = env["SPORE_OFFSETS"] = ""
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    command += ["-s", str(LUA), "--latency", url]
    host_before = cpu_seconds(host_pid)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wrk = psutil.Process(process.pid)
    wrk_cpu = 0.0
    while process.poll() is None:
        try:
            wrk_cpu = sum(wrk.cpu_times()[:2])
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    out, err = process.communicate()
    elapsed = time.perf_counter() - start
    line = next((line for line in out.splitlines() if line.startswith("SPORE_WRK ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip() or out.strip()}")
    return WrkRun(
        json.loads(line.removeprefix("SPORE_WRK ")), wrk_cpu, cpu_seconds(host_pid) - host_before, elapsed
    )


def profile(pid: int, output: str, duration: float) -> subprocess.Popen[bytes]:
    """Sample the receiver with py-spy (``pip install py-spy``) during the paced inbox run.

    Collapsed stacks (``--format raw``): one line per stack with its sample count, for a flame graph
    or a quick ``sort -k2 -n`` of the hot paths.
    """
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(duration)))]
    command += ["--format", "raw", "--rate", "250", "--nonblocking", "--output", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_idle(base: str, timeout: float = 60) -> int:
    """Wait until the receiver's processing queue is empty; how many activities it has processed."""
    deadline = time.perf_counter() + timeout
    with httpx.Client() as client:
        while time.perf_counter() < deadline:
            state = client.get(f"{base}/_bench/stored").json()
            if state["queued"] == 0:
                time.sleep(0.2)
                again = client.get(f"{base}/_bench/stored").json()
                if again == state:
                    return int(state["processed"])
            time.sleep(0.05)
    raise TimeoutError("receiver did not go idle")


def wait_processed(base: str, expected: int, timeout: float = 120) -> float:
    deadline = time.perf_counter() + timeout
    with httpx.Client() as client:
        while time.perf_counter() < deadline:
            if client.get(f"{base}/_bench/stored").json()["processed"] >= expected:
                return time.perf_counter()
            time.sleep(0.01)
    raise TimeoutError(f"receiver did not process {expected} activities")


def row(name: str, run: WrkRun, *, rate: float | None, completed_per_s: float) -> dict[str, Any]:
    latency = run.result["latency_us"]
    done = run.result["requests"]
    return {
        "measure": name,
        "offered_per_s": rate,
        "completed_per_s": completed_per_s,
        "requests": done,
        "statuses": run.result["statuses"],
        "errors": {k: run.result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "replays": run.result["replays"],
        "p50_ms": latency["50"] / 1000,
        "p99_ms": latency["99"] / 1000,
        "p99_9_ms": latency["99.9"] / 1000,
        "max_ms": latency["max"] / 1000,
        "host_cpu_ms_per_request": run.host_cpu_s / done * 1000 if done else math.nan,
        "wrk_cpu_ms_per_request": run.wrk_cpu_s / done * 1000 if done else math.nan,
    }


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    sender, sender_base = start_host(root / "sender", args.senders)
    receiver, receiver_base = start_host(root / "receiver", args.nodes)
    common = {"host_pid": receiver.pid, "connections": args.connections, "threads": args.threads}
    paced = [args.rate] + ([None] if args.unpaced else [])
    try:
        idle_rss = psutil.Process(receiver.pid).memory_info().rss / 2**20
        # Enough distinct activities for every inbox run (unpaced runs go faster than --rate).
        per_run = int(args.rate * args.duration * 1.1) + 100
        count = per_run * (1 + 2 * args.unpaced)
        warmup = 200
        signed = presign(
            root / "sender", sender_base, receiver_base, count + warmup, args.senders, args.nodes
        )
        files = [
            write_requests(signed[:warmup], root, "warmup"),
            write_requests(signed[warmup : warmup + per_run], root, "paced"),
            write_requests(signed[warmup + per_run :], root, "unpaced"),
        ]
        # Warm-up: the receiver fetches each sender's key once; the GET and floor paths warm too.
        first = run_wrk(f"{receiver_base}/inbox", requests=files[0], rate=None, duration=2, **common)
        print(f"warm-up: {first.result['statuses']}", file=sys.stderr)
        processed = wait_idle(receiver_base)
        run_wrk(f"{receiver_base}/nodes/n0", requests=None, rate=None, duration=1, **common)

        rows = []
        for rate in paced:
            label = f"{rate:g}/s offered" if rate else "unpaced"
            inbox_file = files[1] if rate else files[2]
            profiler = profile(receiver.pid, args.profile, args.duration) if args.profile and rate else None
            cpu_before, start = cpu_seconds(receiver.pid), time.perf_counter()
            inbox = run_wrk(
                f"{receiver_base}/inbox", requests=inbox_file, rate=rate, duration=args.duration, **common
            )
            if profiler is not None:
                profiler.wait(timeout=60)
            accepted = inbox.result["statuses"].get("202", 0) - inbox.result["replays"]
            processed += accepted
            stored_at = wait_processed(receiver_base, processed)
            inbox_row = row(
                f"signed POST /inbox, verified + stored ({label})",
                inbox,
                rate=rate,
                completed_per_s=accepted / (stored_at - start),
            )
            inbox_row["stored_after_wrk_s"] = stored_at - start - inbox.elapsed_s
            # Until the last activity is stored, not just answered: the store write runs behind the 202s.
            inbox_row["host_cpu_ms_per_request"] = (cpu_seconds(receiver.pid) - cpu_before) / accepted * 1000
            floor = run_wrk(
                f"{receiver_base}/_bench/floor",
                requests=inbox_file,
                rate=rate,
                duration=args.duration,
                path="/_bench/floor",
                **common,
            )
            get = run_wrk(
                f"{receiver_base}/nodes/n0", requests=None, rate=rate, duration=args.duration, **common
            )
            rows += [
                inbox_row,
                row(
                    f"same POSTs to an empty 202 endpoint ({label})",
                    floor,
                    rate=rate,
                    completed_per_s=floor.result["requests"] / (floor.result["duration_us"] / 1e6),
                ),
                row(
                    f"unsigned GET of an actor ({label})",
                    get,
                    rate=rate,
                    completed_per_s=get.result["requests"] / (get.result["duration_us"] / 1e6),
                ),
            ]
        busy_rss = psutil.Process(receiver.pid).memory_info().rss / 2**20
    finally:
        for process in (sender, receiver):
            process.terminate()
            process.wait(timeout=30)
    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "connections": args.connections,
        "threads": args.threads,
        "nodes": args.nodes,
        "rows": rows,
        "receiver_rss_mb": {"idle_with_actors": idle_rss, "after_load": busy_rss},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=600.0, help="offered requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--unpaced", action="store_true", help="also run each row as fast as wrk can")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (one is plenty here)")
    parser.add_argument("--nodes", type=int, default=100, help="node actors on the receiving host")
    parser.add_argument("--senders", type=int, default=10, help="distinct signing actors")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--profile", metavar="PATH", help="py-spy collapsed stacks of the paced inbox run")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.nodes, args.ready)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/inbox.py needs wrk: run .ci/install-wrk.sh")
    with tempfile.TemporaryDirectory(prefix="spore-bench-inbox-") as tmp:
        results = run(args, Path(tmp))
    print(f"{args.connections} connections, {args.duration:g} s per row, {args.nodes} node actors\n")
    print_table(
        ["measure", "per second", "p50 ms", "p99 ms", "host CPU ms each", "wrk CPU ms each", "statuses"],
        [
            [
                r["measure"],
                r["completed_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["host_cpu_ms_per_request"],
                r["wrk_cpu_ms_per_request"],
                r["statuses"],
            ]
            for r in results["rows"]
        ],
    )
    rss = results["receiver_rss_mb"]
    print(
        f"\nreceiver RSS: {rss['idle_with_actors']:.0f} MB idle with {args.nodes} actors, "
        f"{rss['after_load']:.0f} MB after load"
    )
    if any(r["replays"] for r in results["rows"] if "/inbox" in r["measure"]):
        print("note: an inbox run used every pre-signed activity and stopped before --duration")
    results["load_average"] = os.getloadavg()[0]
    print(f"load average: {results['load_average']:.2f} (a shared machine: compare CPU per request)")
    write_json(args.json, "inbox", results)


if __name__ == "__main__":
    main()
