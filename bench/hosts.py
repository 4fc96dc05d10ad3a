"""Scale of hosts: how many fungus nodes one host process serves, and how many this machine runs.

Every layout is a real fungiverse on loopback: ``spore serve`` processes (started as ``spore demo``
starts them, :class:`agents.demo.Fungiverse`), nodes written from the example blueprints, trained on
the synthetic graph, federating over signed HTTP. For each layout the script waits until every node
in a group has finished ``--rounds`` rounds and reports:

* memory: resident set size of every host process from ``/proc/PID/status`` (``VmRSS`` now,
  ``VmHWM`` peak), in total and per node;
* round time: the median wall time between consecutive rounds of the slowest node;
* startup: seconds until every host answers ``/healthz``.

Baseline in the same run: the same small set of nodes once as one node per process and once all in
one process, which is what "nodes per host" buys in memory. Groups have ``--group-size`` members
(:func:`agents.demo.group_of`: each group spans two hosts, founders spread over the hosts). Then
one host with more and more nodes (marginal memory per node), then the large federation (default
4 hosts x 50 nodes = 200).

    nice -n 10 python bench/hosts.py                        # everything, ~15-25 min on 2 cores
    python bench/hosts.py --quick                           # small layouts only, a few minutes
    python bench/hosts.py --hosts 4 --nodes-per-host 50 --rounds 2 --json hosts.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, print_table, write_json  # noqa: E402

sys.path.insert(0, str(ROOT))
from agents import demo, watch  # noqa: E402


@dataclass
class LayoutResult:
    layout: str
    processes: int
    nodes: int
    startup_s: float
    round_s: float | None  # median wall time per round of the slowest node
    rounds_reached: int
    groups: int
    grouped: int  # nodes in a group (the rest are still joining, or left one)
    rss_mb: float  # all host processes now
    peak_rss_mb: float  # sum of each host's peak
    rss_per_node_mb: float
    max_process_rss_mb: float
    recall_at_20: float | None
    activities: int
    timed_out: bool


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, read from /proc (0 when it is gone)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = float(rest.split()[0]) / 1024  # kB
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def free_port_range(count: int, start: int = 30000) -> int:
    base = start
    while base + count < 65000:
        if all(demo.port_free(base + offset) for offset in range(count)):
            return base
        base += count + 7
    raise RuntimeError(f"no {count} consecutive free ports")


def run_layout(
    label: str,
    *,
    hosts: int,
    nodes: int,
    rounds: int,
    round_seconds: float,
    timeout: float,
    workdir: Path,
    deal_for: int | None = None,
    group_size: int = 4,
) -> LayoutResult:
    """Start ``nodes`` nodes on ``hosts`` processes, wait ``rounds`` rounds, measure, stop.

    ``deal_for``: the host count the blueprints' groups are dealt for (default ``hosts``); the two
    baseline layouts share it so that they run the very same blueprints and groups.
    """
    state = workdir / label.replace(" ", "-").replace("/", "-")
    derived = demo.derive_blueprints(
        demo.example_choices(), nodes, hosts=deal_for or hosts, group_size=group_size
    )
    plan = demo.plan_demo(
        state,
        [name for name, _ in derived],
        hosts=hosts,
        port=free_port_range(hosts),
        music=None,
        round_seconds=round_seconds,
    )
    demo.write_blueprints(state, derived)
    started = time.monotonic()
    reached: dict[int, float] = {}
    summary = watch.summarise([])
    timed_out = False
    with demo.Fungiverse(plan) as fungiverse:
        fungiverse.wait_ready(timeout=timeout)
        startup = time.monotonic() - started
        deadline = time.monotonic() + timeout
        while True:
            fungiverse.check_alive()
            summary = watch.summarise(watch.fetch_all(plan.urls, timeout=30))
            reached.setdefault(summary.round, time.monotonic())
            if summary.reachable == hosts and summary.round >= rounds:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.5)
        memory = [rss_mb(process.pid) for process in fungiverse.processes]
    moments = [reached[r] for r in sorted(reached) if r >= 1]
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:], strict=False)]
    total = sum(now for now, _ in memory)
    return LayoutResult(
        layout=label,
        processes=hosts,
        nodes=nodes,
        startup_s=startup,
        round_s=statistics.median(gaps) if gaps else None,
        rounds_reached=summary.round,
        groups=summary.groups,
        grouped=summary.grouped,
        rss_mb=total,
        peak_rss_mb=sum(peak for _, peak in memory),
        rss_per_node_mb=total / nodes,
        max_process_rss_mb=max(now for now, _ in memory),
        recall_at_20=summary.recall_at_20,
        activities=summary.activities,
        timed_out=timed_out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=4, help="hosts of the large federation")
    parser.add_argument("--nodes-per-host", type=int, default=50)
    parser.add_argument("--baseline-nodes", type=int, default=6, help="nodes of the per-process comparison")
    parser.add_argument("--scale", default="10,25,50", help="node counts on one host (comma-separated)")
    parser.add_argument("--group-size", type=int, default=4, help="members per learning group")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="per layout, seconds")
    parser.add_argument("--quick", action="store_true", help="baseline and a 10-node host only")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    # (label, processes, nodes, host count the groups are dealt for)
    layouts: list[tuple[str, int, int, int]] = [
        (f"{args.baseline_nodes} x 1 node/process", args.baseline_nodes, args.baseline_nodes, 1),
        (f"1 x {args.baseline_nodes} nodes/process", 1, args.baseline_nodes, 1),
    ]
    scale = [10] if args.quick else [int(n) for n in args.scale.split(",") if n.strip()]
    layouts += [(f"1 host x {n}", 1, n, 1) for n in scale if n != args.baseline_nodes]
    if not args.quick:
        total = args.hosts * args.nodes_per_host
        layouts.append((f"{args.hosts} hosts x {args.nodes_per_host}", args.hosts, total, args.hosts))

    results: list[LayoutResult] = []
    with tempfile.TemporaryDirectory(prefix="spore-bench-hosts-") as tmp:
        for label, hosts, nodes, deal_for in layouts:
            print(f"... {label}: {nodes} nodes on {hosts} process(es)", file=sys.stderr, flush=True)
            results.append(
                run_layout(
                    label,
                    hosts=hosts,
                    nodes=nodes,
                    rounds=args.rounds,
                    round_seconds=args.round_seconds,
                    timeout=args.timeout,
                    workdir=Path(tmp),
                    deal_for=deal_for,
                    group_size=args.group_size,
                )
            )

    headers = ["layout", "procs", "nodes", "startup s", "round s", "rounds", "groups", "in a group"]
    headers += ["RSS MiB", "MiB/node"]
    headers += ["max proc MiB", "Recall@20", "note"]
    print_table(
        headers,
        [
            [
                r.layout,
                r.processes,
                r.nodes,
                round(r.startup_s, 1),
                "-" if r.round_s is None else round(r.round_s, 2),
                r.rounds_reached,
                r.groups,
                r.grouped,
                round(r.rss_mb),
                round(r.rss_per_node_mb, 1),
                round(r.max_process_rss_mb),
                "-" if r.recall_at_20 is None else round(r.recall_at_20, 4),
                "TIMED OUT" if r.timed_out else "",
            ]
            for r in results
        ],
    )
    one_per_process, shared = results[0], results[1]
    print(
        f"\nmemory per node: {one_per_process.rss_per_node_mb:.0f} MiB with one node per process,"
        f" {shared.rss_per_node_mb:.1f} MiB with {shared.nodes} in one process"
        f" ({one_per_process.rss_per_node_mb / shared.rss_per_node_mb:.1f}x less)"
    )
    single = sorted((r for r in results if r.processes == 1), key=lambda r: r.nodes)
    if len(single) >= 2 and single[-1].nodes > single[0].nodes:
        slope = (single[-1].rss_mb - single[0].rss_mb) / (single[-1].nodes - single[0].nodes)
        print(
            f"marginal memory per node on one host: {slope:.1f} MiB ({single[0].nodes} -> {single[-1].nodes})"
        )
    settings = {"rounds": args.rounds, "round_seconds": args.round_seconds, "group_size": args.group_size}
    write_json(args.json, "hosts", {"layouts": [asdict(r) for r in results], **settings})


if __name__ == "__main__":
    main()
