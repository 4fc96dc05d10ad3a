"""Benchmark: federated quality on Last.fm-2k (``--quality``), and the SPORE simulator at scale.

``--quality``: centralized LightGCN (the ceiling), each node alone (silo), FedAvg of the artist
table, and SPORE (shared co-listening graph + compressed co-training + local fine-tuning), with
listeners split across ``--nodes`` (default 8) nodes IID and non-IID (one taste community per
node), all on one 70/10/20 split (settings chosen on validation); see bench/fungiverse_quality.py
and docs/spore-protocol.md section 11.

    python bench/fungiverse.py --quality [--nodes 8] [--rounds 40] [--data DIR] [--json PATH]

Without ``--quality``, the simulator at scale:

Builds N LightGCN nodes on the seeded synthetic music graph (listeners dealt to nodes, groups of 8,
synchronous rounds), runs the simulator, and reports wall seconds per round of all nodes, memory per
node and bytes sent per node per round. The baseline, measured in the same run on the same learners,
is each node's local training alone (one silo round: the compute the protocol cannot avoid), measured
between protocol rounds while the simulator is paused, so that both see the same machine load; the
ratio is the protocol's overhead: messaging, validation, hashing, compression, merging.

    python bench/fungiverse.py [--nodes 1000] [--rounds 3] [--learner lightgcn|linear]
                               [--row-fraction 0.05] [--json PATH]

"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from agents.protocol.learning import resolve_rule
from agents.recsys_scenario import recsys_fungiverse
from agents.scenarios import linear_fungiverse
from agents.simulator import Simulator
from knowledge.music import SynthParams
from models.compression import full_copy_bytes

from common import ROOT, print_table, write_json


def _rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _silo_round(simulator: Simulator, actors: list[str], seed: int) -> float:
    """Wall seconds of one round of local training at every node, without the protocol."""
    started = time.perf_counter()
    for actor in actors:
        node = simulator.nodes[actor]
        node.ctx.learner.train(node.state.weights, seed=seed)
    return time.perf_counter() - started


def _round_times(
    simulator: Simulator, actors: list[str], rounds: int, tick: float
) -> tuple[list[float], list[float]]:
    """Wall seconds between the moments when every node has merged one more round, and beside each,
    one baseline round measured while the simulator is paused (so both see the same machine load).

    The first round is left out of both: it includes joining and first-time allocations.
    """
    protocol: list[float] = []
    silo: list[float] = []
    started, done = time.perf_counter(), 0
    limit = simulator.now + 1000.0 * rounds
    while done < rounds and simulator.now < limit:
        simulator.run(simulator.now + tick)
        reached = min(simulator.state(actor).rounds_done for actor in actors)
        if reached > done:
            protocol.append((time.perf_counter() - started) / (reached - done))
            done = reached
            silo.append(_silo_round(simulator, actors, seed=done))
            started = time.perf_counter()
    if done < rounds:
        raise RuntimeError(f"only {done} of {rounds} rounds completed")
    return protocol[1:], silo[1:]


def run(
    nodes: int, rounds: int, learner: str, seed: int, tick: float, row_fraction: float | None
) -> dict[str, Any]:
    torch.set_num_threads(1)  # thousands of tiny graphs: thread start-up costs more than it gains
    before = _rss_mb()
    built = time.perf_counter()
    options: dict[str, Any] = {
        "seed": seed,
        "max_rounds": rounds + 1,
        "evaluate": False,
        "rule_for": resolve_rule,
        "row_fraction": row_fraction,
        "quantize": row_fraction is not None,
    }
    if learner == "lightgcn":
        params = SynthParams(listeners=3 * nodes, artists=1500, seed=seed)
        world: Any = recsys_fungiverse(nodes, params=params, **options)
    else:
        world = linear_fungiverse(nodes, **options)
    build_s = time.perf_counter() - built
    simulator, actors = world.simulator, world.actors
    times, silo = _round_times(simulator, actors, rounds + 1, tick)
    after = _rss_mb()

    model_bytes = statistics.mean(
        sum(t.numel() * t.element_size() for t in simulator.state(a).weights.values()) for a in actors
    )
    merged_rounds = sum(simulator.state(a).rounds_done for a in actors)
    shapes = dict(simulator.state(actors[0]).blueprint.shared_shapes)
    update_bytes = simulator.stats.get("update-bytes", 0) / max(1, simulator.stats.get("updates", 1))
    return {
        "nodes": nodes,
        "learner": learner,
        "rounds_measured": rounds,
        "build_s": build_s,
        "round_median_s": statistics.median(times),
        "round_samples_s": times,
        "silo_round_median_s": statistics.median(silo),
        "silo_samples_s": silo,
        "overhead_ratio": statistics.median(times) / statistics.median(silo),
        "rss_growth_mb": after - before,
        "memory_per_node_kb": (after - before) * 1024 / nodes,
        "model_kb_per_node": model_bytes / 1024,
        "row_fraction": row_fraction,
        "update_bytes_per_node_round": simulator.stats.get("update-bytes", 0) / max(1, merged_rounds),
        "update_bytes_per_message": update_bytes,
        "full_copy_bytes": full_copy_bytes(shapes),
        "update_share_of_full_copy": update_bytes / full_copy_bytes(shapes),
        "messages": simulator.stats.get("sent", 0),
        "virtual_seconds": simulator.now,
    }


def quality(args: argparse.Namespace) -> int:
    """The Last.fm-2k comparison; prints one table per split and the targets."""
    from fungiverse_quality import Settings, default_data_dir, run_quality, subsample, targets
    from recsys import load_tensors

    data_dir = Path(args.data) if args.data else default_data_dir(ROOT)
    if not (data_dir / "lastfm-2k" / "user_artists.dat").is_file():
        print(f"fungiverse: no Last.fm-2k under {data_dir} (set SPORE_DATA_DIR or --data)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    tensors, load_s = load_tensors(data_dir)
    if args.listeners:
        tensors = subsample(tensors, args.listeners, args.seed)
    settings = Settings(
        nodes=args.nodes or 8,
        seed=args.seed,
        central_epochs=args.central_epochs,
        silo_epochs=args.silo_epochs,
        rounds=args.rounds or 40,
        every=args.every,
        row_fraction=args.row_fraction or 0.02,
        fine_tune_epochs=args.fine_tune_epochs,
        noise=args.noise,
    )
    print(f"{tensors.describe()} (loaded in {load_s:.1f} s); {settings.nodes} nodes", flush=True)
    results = run_quality(tensors, settings)
    central = results["centralized"]
    for split in ("iid", "non-iid"):
        print(f"\n{split}: listeners dealt to {settings.nodes} nodes; Recall/NDCG@20 over all listeners")
        rows = [_quality_row(central)] + [_quality_row(m) for m in results[split]]
        print_table(
            [
                "method",
                "Recall@20",
                "NDCG@20",
                "to 95 %",
                "s to 95 %",
                "s total",
                "bytes/node/round",
                "one update / fp32 copy",
            ],
            rows,
        )
    print()
    print_table(
        ["target", "measured", "required", "met"],
        [
            [name, measured, required, "yes" if met else "NO"]
            for name, measured, required, met in targets(results)
        ],
    )
    for split in ("iid", "non-iid"):
        spore = next(m for m in results[split] if m["method"] == "SPORE")
        betas = sorted(set(spore["chosen_beta"].values()))
        weights = sorted(set(spore["chosen_blend_weight"].values()))
        print(
            f"{split}: co-listening statistics sent to {spore['statistics_messages']} peers in all, "
            f"at most {spore['statistics_bytes_per_node_once']} bytes from one node "
            f"({spore['statistics_bytes_per_node_once'] / spore['full_copy_bytes']:.2f} full copies); "
            f"{spore['bytes_per_node_round_with_statistics']:.0f} bytes/node/round with them; "
            f"chosen on validation: beta {betas}, blend weight {weights}; "
            f"{spore['payloads_checked']} payloads privacy-checked"
        )
    write_json(args.json_path, "fungiverse-quality", results)
    return 0


def _quality_row(method: dict[str, Any]) -> list[object]:
    share = method.get("update_share_of_full_copy")
    return [
        method["method"],
        method["recall"],
        method["ndcg"],
        f"{method['to_95_steps']} {method['unit']}",
        method["to_95_seconds"],
        method["total_seconds"],
        method["bytes_per_node_round"],
        "" if share is None else f"{100 * share:.2f} %",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", action="store_true", help="the Last.fm-2k quality comparison")
    parser.add_argument("--data", help="data directory (default $SPORE_DATA_DIR or ../shared/data)")
    parser.add_argument("--listeners", type=int, help="quality: a seeded subsample of listeners")
    parser.add_argument("--central-epochs", type=int, default=150, help="quality: centralized epochs")
    parser.add_argument("--silo-epochs", type=int, default=100, help="quality: epochs of each silo")
    parser.add_argument("--every", type=int, default=10, help="quality: evaluate every N epochs/rounds")
    parser.add_argument("--fine-tune-epochs", type=int, default=3, help="quality: after the last merge")
    parser.add_argument("--noise", type=float, default=0.005, help="quality: sigma on the statistics")
    parser.add_argument("--nodes", type=int, help="simulated nodes (default 1000; --quality: 8)")
    parser.add_argument(
        "--rounds", type=int, help="measured rounds after a warm-up round (default 3; --quality: 40)"
    )
    parser.add_argument("--learner", choices=("lightgcn", "linear"), default="lightgcn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tick", type=float, default=0.25, help="virtual seconds between progress checks")
    parser.add_argument(
        "--row-fraction",
        type=float,
        help="send this fraction of rows, int8, error feedback (default: all, fp32; --quality: 0.02)",
    )
    parser.add_argument("--json", dest="json_path", help="write results and environment to this file")
    args = parser.parse_args(argv)
    if args.quality:
        return quality(args)
    args.nodes = 1000 if args.nodes is None else args.nodes
    args.rounds = 3 if args.rounds is None else args.rounds
    if args.nodes < 1 or args.rounds < 1:
        parser.error("--nodes and --rounds must be positive")
    if args.row_fraction is not None and not 0 < args.row_fraction <= 1:
        parser.error("--row-fraction must lie in (0, 1]")
    result = run(args.nodes, args.rounds, args.learner, args.seed, args.tick, args.row_fraction)
    print(
        f"{args.nodes} {args.learner} nodes in groups of 8, sync rounds; built in {result['build_s']:.1f} s"
    )
    print_table(
        ["what", "seconds per round (median)", "memory per node KB", "update bytes per node per round"],
        [
            [
                "SPORE round in the simulator",
                result["round_median_s"],
                result["memory_per_node_kb"],
                result["update_bytes_per_node_round"],
            ],
            ["baseline: local training only", result["silo_round_median_s"], result["model_kb_per_node"], 0],
        ],
    )
    print(f"protocol overhead: {result['overhead_ratio']:.2f}x the bare training")
    share = result["update_share_of_full_copy"]
    print(
        f"one update: {result['update_bytes_per_message']:.0f} bytes, {100 * share:.2f} % of a full fp32 copy"
    )
    write_json(args.json_path, "fungiverse-scale", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
