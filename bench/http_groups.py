"""Groups over HTTP against the simulator: the same nodes, seeds and rounds, in one run.

    python bench/http_groups.py [--nodes 8] [--hosts 2] [--rounds 5] [--data [DIR]] [--json PATH]

N LightGCN nodes (one learning group, synchronous rounds, weighted mean) co-train on the seeded
synthetic graph, or on Last.fm-2k with ``--data`` (default ``$SPORE_DATA_DIR`` or ../shared/data).
The simulator runs them first (virtual time, in this process); then ``--hosts`` host processes on
loopback run the same nodes over signed ActivityPub, started together at one wall-clock instant.
The table gives, for both, Recall@20 and NDCG@20 averaged over nodes after the last round, wall
seconds per round and bytes sent per node per round, and the ratio of HTTP to simulator quality
(issue 5's target: within 2 %). Each host process is this script with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.node import FungusNode, founded_group, node_state  # noqa: E402
from agents.protocol.context import NodeContext  # noqa: E402
from agents.protocol.learning import resolve_rule, shared_part  # noqa: E402
from agents.protocol.messages import shapes_of  # noqa: E402
from agents.protocol.recommender import LightGCNLearner  # noqa: E402
from agents.protocol.state import NodeState  # noqa: E402
from agents.recsys_scenario import LIGHTGCN, deal_listeners, synthetic_tensors  # noqa: E402
from agents.scenarios import WEIGHTED_MEAN, actor_iri, add_grouped_node  # noqa: E402
from agents.simulator import Simulator  # noqa: E402
from knowledge.music import SynthParams  # noqa: E402

from common import ROOT, environment, print_table, write_json  # noqa: E402

HASHTAG = "#fungi0"  # add_grouped_node's hashtag for group 0
ROUND_TIMEOUT = 120.0  # a synchronous round waits for every member; this only bounds a failure
# Virtual in the simulator, wall-clock over HTTP: long enough that every Join is answered before the
# owner publishes round 0 (a member admitted mid-gather would miss that round's updates).
TRAIN_SECONDS = 3.0


@dataclass(frozen=True)
class Settings:
    nodes: int
    hosts: int
    rounds: int
    seed: int
    data: str | None  # Last.fm directory, or None for the synthetic graph
    embedding_dim: int = 32
    layers: int = 2


def learners(settings: Settings) -> tuple[list[LightGCNLearner], str]:
    """The nodes' learners over their dealt listeners: identical in every process for one seed."""
    if settings.data is not None:
        from recsys import load_tensors

        tensors, _ = load_tensors(Path(settings.data))
        label = "Last.fm-2k"
    else:
        tensors = synthetic_tensors(SynthParams(seed=settings.seed))
        label = "synthetic"
    dealt = deal_listeners(tensors, settings.nodes, seed=settings.seed)
    made = [
        LightGCNLearner(
            mine.train_edges,
            mine.held_out,
            num_listeners=int(mine.listeners.numel()),
            num_artists=tensors.num_artists,
            embedding_dim=settings.embedding_dim,
            num_layers=settings.layers,
        )
        for mine in dealt
    ]
    return made, f"{label}, {tensors.num_listeners} listeners, {tensors.num_artists} artists"


def context(learner: LightGCNLearner, settings: Settings) -> NodeContext:
    return NodeContext(
        learner=learner,
        rule_for=resolve_rule,
        train_seconds=TRAIN_SECONDS,
        max_rounds=settings.rounds,
        announce_interval=10 * TRAIN_SECONDS,
    )


def initial_weights(learner: LightGCNLearner, settings: Settings, index: int) -> dict[str, torch.Tensor]:
    return learner.initial_weights(settings.seed * 1_000_003 + index)


def summary(states: list[NodeState]) -> dict[str, Any]:
    metrics = [dict(state.last_round.metrics) for state in states if state.last_round is not None]
    return {
        "recall@20": sum(m.get("recall@20", 0.0) for m in metrics) / max(1, len(metrics)),
        "ndcg@20": sum(m.get("ndcg@20", 0.0) for m in metrics) / max(1, len(metrics)),
        "rounds_done": [state.rounds_done for state in states],
        "members": [len(state.membership.members) if state.membership else 0 for state in states],
        "merged_sha256": [state.last_round.merged_sha256 if state.last_round else None for state in states],
    }


# -- the simulator ---------------------------------------------------------------------------------


def simulate(
    settings: Settings, made: list[LightGCNLearner]
) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]]]:
    """The run under the simulator, and every node's final shared weights."""
    simulator = Simulator(seed=settings.seed)
    for index, learner in enumerate(made):
        add_grouped_node(
            simulator,
            index=index,
            actor=actor_iri(index),
            weights=initial_weights(learner, settings, index),
            architecture=LIGHTGCN,
            group_size=settings.nodes,
            seed=settings.seed,
            context=context(learner, settings),
            aggregation_rule=WEIGHTED_MEAN,
            round_timeout=ROUND_TIMEOUT,
        )
    started = time.perf_counter()
    simulator.run_until(
        lambda sim: all(sim.state(a).rounds_done >= settings.rounds for a in sim.nodes),
        limit=settings.rounds * (TRAIN_SECONDS + ROUND_TIMEOUT) + 60,
    )
    wall = time.perf_counter() - started
    states = [simulator.state(actor_iri(i)) for i in range(settings.nodes)]
    result = summary(states)
    update_bytes = simulator.stats.get("update-bytes", 0)
    result |= {
        "seconds_per_round": wall / settings.rounds,
        "bytes_per_node_per_round": update_bytes / settings.nodes / settings.rounds,
    }
    return result, [shared_part(state.weights) for state in states]


# -- one host process --------------------------------------------------------------------------------


def worker(settings: Settings, index: int, ports: list[int], directory: Path) -> int:
    """Serve this host's share of the nodes; wait for the start instant; report when they are done."""
    from agents.fungus_host import start_fungus_host
    from agents.hosting import HostOptions

    torch.set_num_threads(1)
    made, _label = learners(settings)
    per_host = settings.nodes // settings.hosts
    mine = range(index * per_host, settings.nodes if index == settings.hosts - 1 else (index + 1) * per_host)

    def make_nodes(base: str) -> list[FungusNode]:
        nodes = []
        for i in mine:
            actor = f"{base}/nodes/node{i}"
            weights = initial_weights(made[i], settings, i)
            founds = []
            if i == 0:
                shapes = shapes_of(shared_part(weights))
                founds.append(
                    founded_group(
                        actor, HASHTAG, shapes, aggregation_rule=WEIGHTED_MEAN, round_timeout=ROUND_TIMEOUT
                    )
                )
            state = node_state(
                actor,
                seed=settings.seed * 1_000_003 + i,
                weights=weights,
                architecture=LIGHTGCN,
                seeks=(HASHTAG,),
                founds=founds,
            )
            nodes.append(FungusNode(f"node{i}", context(made[i], settings), state))
        return nodes

    peers = tuple(f"http://127.0.0.1:{port}" for n, port in enumerate(ports) if n != index)
    options = HostOptions(peers=peers, autostart=False, announce_from_status=False, poll_seconds=3600)
    host, nodes = start_fungus_host(
        directory / f"host{index}", make_nodes, options=options, port=ports[index]
    )
    try:
        while len(nodes.peer_status) < len(peers):
            time.sleep(0.2)
            host.call(nodes.poll_peers())
        print(json.dumps({"event": "ready"}), flush=True)
        start_at = float(sys.stdin.readline().split()[1])  # "start <unix seconds>"
        host.call(nodes.begin(time.monotonic() + (start_at - time.time())))
        deadline = time.monotonic() + settings.rounds * (TRAIN_SECONDS + ROUND_TIMEOUT) + 120
        while not all(node.done for node in nodes.nodes.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = time.time()
        states = [node.state for node in nodes.nodes.values()]
        time.sleep(2 * TRAIN_SECONDS)  # peers may still fetch this host's last artifacts
        bytes_sent = [nodes.bytes_sent(actor) for actor in nodes.nodes]
        report = summary(states) | {"finished_at": finished, "bytes_sent": bytes_sent, "nodes": len(states)}
        report["recalls"] = [_metric(state, "recall@20") for state in states]
        report["ndcgs"] = [_metric(state, "ndcg@20") for state in states]
        for node in nodes.nodes.values():
            save_file(shared_part(node.state.weights), str(directory / f"final-{node.name}.safetensors"))
        print(json.dumps({"event": "result", **report}), flush=True)
    finally:
        host.stop()
    return 0


def _metric(state: NodeState, name: str) -> float:
    return dict(state.last_round.metrics).get(name, 0.0) if state.last_round is not None else 0.0


# -- the run -----------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Free loopback ports in increasing order, all with the same number of digits.

    A merge sums contributions in the order of their senders' actor IRIs. With ports ordered like
    the hosts and of one length, the HTTP nodes' IRIs sort like the simulator's (for up to ten
    nodes), so both sum in the same order: floating-point addition is not associative, and Adam
    turns a last-bit difference into a step of the learning rate, so another order would make the
    two runs drift apart for reasons that have nothing to do with the transport.
    """
    while True:
        probes = [socket.socket() for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        ports = sorted(int(probe.getsockname()[1]) for probe in probes)
        for probe in probes:
            probe.close()
        if len({len(str(port)) for port in ports}) == 1:
            return ports


def over_http(settings: Settings, simulated_weights: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    ports = free_ports(settings.hosts)
    arguments = [
        "--nodes",
        str(settings.nodes),
        "--hosts",
        str(settings.hosts),
        "--rounds",
        str(settings.rounds),
    ]
    arguments += ["--seed", str(settings.seed)] + (["--data", settings.data] if settings.data else [])
    with tempfile.TemporaryDirectory(prefix="spore-http-groups-") as directory:
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, *arguments, "--worker", str(index)]
                + ["--ports", ",".join(map(str, ports)), "--dir", directory],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            for index in range(settings.hosts)
        ]
        try:
            for process in workers:
                assert process.stdout is not None
                line = process.stdout.readline()
                if json.loads(line or "{}").get("event") != "ready":
                    raise RuntimeError(f"a host process did not start: {line!r}")
            start_at = time.time() + 1.0
            for process in workers:
                assert process.stdin is not None
                process.stdin.write(f"start {start_at}\n")
                process.stdin.flush()
            reports = []
            for process in workers:
                assert process.stdout is not None
                reports.append(json.loads(process.stdout.readline()))
                process.wait(timeout=60)
            difference = max(
                float(
                    (load_file(str(Path(directory) / f"final-node{i}.safetensors"))[name] - tensor)
                    .abs()
                    .max()
                )
                for i, weights in enumerate(simulated_weights)
                for name, tensor in weights.items()
            )
        finally:
            for process in workers:
                if process.poll() is None:
                    process.kill()
    recalls = [r for report in reports for r in report["recalls"]]
    ndcgs = [n for report in reports for n in report["ndcgs"]]
    sent = [b for report in reports for b in report["bytes_sent"]]
    return {
        "recall@20": sum(recalls) / len(recalls),
        "ndcg@20": sum(ndcgs) / len(ndcgs),
        "rounds_done": [r for report in reports for r in report["rounds_done"]],
        "members": [m for report in reports for m in report["members"]],
        "merged_sha256": [d for report in reports for d in report["merged_sha256"]],
        "seconds_per_round": (max(report["finished_at"] for report in reports) - start_at) / settings.rounds,
        "bytes_per_node_per_round": sum(sent) / len(sent) / settings.rounds,
        "max_weight_difference": difference,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", nargs="?", const="", default=None, help="Last.fm-2k (default data directory)"
    )
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = args.data
    if data == "":
        data = os.environ.get("SPORE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    if data is not None and not (Path(data) / "lastfm-2k" / "user_artists.dat").is_file():
        print(f"http_groups: no Last.fm-2k under {data} (set SPORE_DATA_DIR or --data DIR)", file=sys.stderr)
        return 2
    if args.nodes < args.hosts or args.hosts < 1 or args.rounds < 1:
        parser.error("need rounds >= 1 and at least one node per host")
    settings = Settings(nodes=args.nodes, hosts=args.hosts, rounds=args.rounds, seed=args.seed, data=data)
    if args.worker is not None:
        return worker(settings, args.worker, [int(p) for p in args.ports.split(",")], Path(args.dir))

    torch.set_num_threads(1)
    made, label = learners(settings)
    print(f"{settings.nodes} LightGCN nodes, one group, {settings.rounds} sync rounds on {label}", flush=True)
    simulated, final_weights = simulate(settings, made)
    http = over_http(settings, final_weights)
    ratio = http["recall@20"] / simulated["recall@20"] if simulated["recall@20"] else float("nan")
    rows = [
        [
            name,
            f"{result['recall@20']:.4f}",
            f"{result['ndcg@20']:.4f}",
            min(result["rounds_done"]),
            f"{result['seconds_per_round']:.2f}",
            f"{result['bytes_per_node_per_round']:,.0f}",
        ]
        for name, result in (("simulator", simulated), (f"HTTP, {settings.hosts} hosts", http))
    ]
    print_table(["run", "Recall@20", "NDCG@20", "rounds", "wall s/round", "bytes/node/round"], rows)
    verdict = "met" if abs(ratio - 1) <= 0.02 else "NOT met"
    print(f"HTTP / simulator Recall@20: {ratio:.4f} (target: within 2 %, {verdict})")
    print(
        f"largest difference of a final shared weight, HTTP vs simulator: {http['max_weight_difference']:.2e}"
    )
    results = {
        "environment": environment(),
        "settings": settings.__dict__,
        "simulator": simulated,
        "http": http,
        "recall_ratio": ratio,
    }
    write_json(args.json_path, "http-groups", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
