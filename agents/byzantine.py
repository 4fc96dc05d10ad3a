"""Byzantine peers for the simulator, and the experiment that measures defederation against them.

An attacker is an ordinary node whose learner is wrapped by :class:`ByzantineLearner`: it trains
honestly and then publishes something else, through the unmodified protocol core, exactly as a
compromised node would (the classic attacks of the Byzantine-robust learning literature, e.g. Fang
et al., USENIX Security 2020, and Baruch et al., NeurIPS 2019):

* ``sign-flip``: the change since the round's base, negated and amplified (``base - k·Δ``);
* ``scaled``: the change multiplied (``base + k·Δ``), a boosted update;
* ``random``: Gaussian noise as large as the weights themselves instead of the change;
* ``inflated-claim``: an honest update that claims a recall it does not have.

A *false accuser* (:func:`schedule_false_accusations`) behaves honestly in every round but sends
Flags against honest members of its group. :func:`run_byzantine_experiment` runs a LightGCN
fungiverse with and without attackers and reports honest nodes' Recall@20, when each attacker was
blocked and whether any honest node was (``bench/evolution.py --experiment byzantine``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from torch import Tensor

from agents.protocol.context import NodeContext
from agents.protocol.defence import LedgerDefence
from agents.protocol.learning import Learner, TrainResult, Weights, is_shared
from agents.protocol.messages import Flag
from agents.protocol.recommender import LightGCNLearner
from agents.recsys_scenario import LIGHTGCN, NON_IID, NodeData, deal_listeners, synthetic_tensors
from agents.scenarios import actor_iri, add_grouped_node
from agents.simulator import Simulator
from knowledge.music import SynthParams
from models.data import MusicTensors
from reasoning.defederation import DefederationPolicy

__all__ = [
    "Behaviour",
    "ByzantineLearner",
    "ByzantineRun",
    "byzantine_fungiverse",
    "run_byzantine_experiment",
    "schedule_false_accusations",
]

WEIGHTED_MEAN = "https://w3id.org/spore/ns#WeightedMean"
RECALL = "recall@20"


MIXED_RATES = (0.0025, 0.005, 0.01, 0.02, 0.04)
"""Learning rates of the mixed runs: 16x from the slowest to the fastest around the default 0.01,
as far apart as blueprints in one group get (the six-host demo ran 0.001 to 0.005)."""
MIXED_CLEAN = "attack-free, mixed learning rates"


class Behaviour(StrEnum):
    SIGN_FLIP = "sign-flip"
    SCALED = "scaled"
    RANDOM = "random"
    INFLATED_CLAIM = "inflated-claim"


@dataclass(frozen=True, eq=False)
class ByzantineLearner:
    """Wraps an honest learner and corrupts what it publishes; evaluation stays honest (the
    experiment measures attackers' own quality with it, and nobody else ever calls it)."""

    inner: Learner
    behaviour: Behaviour
    factor: float = 4.0
    claimed_recall: float = 0.9

    def initial_weights(self, seed: int) -> dict[str, Tensor]:
        return self.inner.initial_weights(seed)

    def train(self, weights: Weights, *, seed: int) -> TrainResult:
        result = self.inner.train(weights, seed=seed)
        new = dict(result.weights)
        generator = torch.Generator().manual_seed(seed)
        for name, trained in result.weights.items():
            if not is_shared(name):
                continue
            before = weights[name]
            change = trained - before
            if self.behaviour is Behaviour.SIGN_FLIP:
                new[name] = before - self.factor * change
            elif self.behaviour is Behaviour.SCALED:
                new[name] = before + self.factor * change
            elif self.behaviour is Behaviour.RANDOM:
                spread = float(before.std()) or 1.0
                new[name] = torch.randn(before.shape, generator=generator, dtype=before.dtype) * spread
        metrics = dict(result.metrics)
        if self.behaviour is Behaviour.INFLATED_CLAIM:
            metrics[RECALL] = self.claimed_recall
        return TrainResult(new, result.samples, metrics)

    def evaluate(self, weights: Weights) -> dict[str, float]:
        return self.inner.evaluate(weights)


def schedule_false_accusations(
    simulator: Simulator,
    liar: str,
    victims: Sequence[str],
    audience: Sequence[str],
    *,
    rounds: int,
    period: float,
    start: float = 0.5,
) -> None:
    """The liar accuses one honest victim per round (in turn) before everyone in ``audience``, with
    made-up evidence; the network authenticates the liar as the sender, as a signature would."""
    to = tuple(sorted(set(audience) - {liar}))
    for index in range(rounds):
        victim = victims[index % len(victims)]
        flag = Flag(
            id=f"{liar}/activities/false-flag-{index}",
            actor=liar,
            to=tuple(a for a in to if a != victim) or to,
            accused=victim,
            offence="outlier-update",
            round=index,
            evidence=(f"{victim}/artifacts/{index:064x}",),
            explanation=f"{victim} sent an outlier update in round {index}",
        )
        for recipient in flag.to:
            simulator.inject(liar, recipient, flag, at=start + index * period)


@dataclass
class ByzantineRun:
    """One simulated fungiverse with its attackers, liar and honest nodes."""

    simulator: Simulator
    actors: list[str]
    groups: list[list[str]]
    attackers: dict[str, Behaviour]
    liar: str | None
    honest: list[str] = field(default_factory=list)


def _attackers(groups: list[list[str]], count: int, behaviours: Sequence[Behaviour]) -> dict[str, Behaviour]:
    """``count`` attackers dealt round-robin over the groups, never an owner (index 0 of a group)."""
    chosen: dict[str, Behaviour] = {}
    slot = 1
    while len(chosen) < count:
        for group in groups:
            if len(chosen) < count and slot < len(group):
                chosen[group[slot]] = behaviours[len(chosen) % len(behaviours)]
        slot += 1
        if slot > max(len(g) for g in groups):
            raise ValueError("more attackers than non-owner members")
    return chosen


def byzantine_fungiverse(
    tensors: MusicTensors,
    *,
    nodes: int = 20,
    group_size: int = 10,
    attackers: int = 0,
    behaviours: Sequence[Behaviour] = tuple(Behaviour),
    liar: bool = False,
    defence: LedgerDefence | None = None,
    rounds: int = 20,
    seed: int = 0,
    embedding_dim: int = 32,
    num_layers: int = 2,
    local_epochs: int = 1,
    aggregation_rule: str = WEIGHTED_MEAN,
    data: list[NodeData] | None = None,
    learning_rates: Sequence[float] = (),
) -> ByzantineRun:
    """LightGCN nodes in groups of ``group_size`` (the first of each owns it), some of them attackers.

    ``learning_rates``: node ``i`` trains at ``learning_rates[i % len]`` and declares that step in its
    updates (as a served node declares its blueprint's); empty, every node trains at the learner's
    default and declares the same step.
    """
    data = data or deal_listeners(tensors, nodes, seed=seed)
    actors = [actor_iri(i) for i in range(nodes)]
    groups = [actors[i : i + group_size] for i in range(0, nodes, group_size)]
    chosen = _attackers(groups, attackers, behaviours)
    honest_pool = [a for g in groups for a in g[1:] if a not in chosen]
    liar_actor = honest_pool[-1] if liar else None
    simulator = Simulator(seed=seed)
    for index, actor in enumerate(actors):
        mine = data[index]
        rate = learning_rates[index % len(learning_rates)] if learning_rates else None
        honest_learner = LightGCNLearner(
            mine.train_edges,
            mine.held_out,
            num_listeners=int(mine.listeners.numel()),
            num_artists=tensors.num_artists,
            embedding_dim=embedding_dim,
            num_layers=num_layers,
            local_epochs=local_epochs,
            **({} if rate is None else {"learning_rate": rate}),
        )
        learner: Learner = honest_learner
        if actor in chosen:
            learner = ByzantineLearner(learner, chosen[actor])
        add_grouped_node(
            simulator,
            index=index,
            actor=actor,
            weights=learner.initial_weights(seed),  # one seed: the group starts from one model
            architecture=LIGHTGCN,
            group_size=group_size,
            seed=seed,
            context=NodeContext(
                learner=learner,
                max_rounds=rounds,
                announce_interval=50.0,
                defence=None if actor in chosen else defence,
                training_step=honest_learner.learning_rate * local_epochs if learning_rates else 1.0,
            ),
            aggregation_rule=aggregation_rule,
            round_timeout=5.0,
        )
    if liar_actor is not None:
        group = next(g for g in groups if liar_actor in g)
        victims = [a for a in group if a != liar_actor and a not in chosen]
        schedule_false_accusations(simulator, liar_actor, victims, group, rounds=rounds, period=1.2)
    honest = [a for a in actors if a not in chosen and a != liar_actor]
    return ByzantineRun(simulator, actors, groups, chosen, liar_actor, honest)


def _observe(run: ByzantineRun, limit: float, rounds: int) -> dict[str, Any]:
    """Run to the end, one virtual second at a time, noting recall per round and when blocks land."""
    sim = run.simulator
    blocked_round: dict[str, int] = {}
    wrongly: set[tuple[str, str]] = set()
    by_round: dict[int, dict[str, float]] = {}

    def group_of(actor: str) -> list[str]:
        return next(g for g in run.groups if actor in g)

    while sim.now < limit:
        sim.run(sim.now + 1.0)
        states = {a: sim.state(a) for a in run.actors}
        for actor in run.honest:
            record = states[actor].last_round
            if record is not None and RECALL in dict(record.metrics):
                by_round.setdefault(record.round, {})[actor] = dict(record.metrics)[RECALL]
            for other in states[actor].blocked:
                if other in run.honest:
                    wrongly.add((actor, other))
        for attacker in run.attackers:
            if attacker in blocked_round:
                continue
            judges = [a for a in group_of(attacker) if a in run.honest]
            if judges and all(attacker in states[j].blocked for j in judges):
                blocked_round[attacker] = max(states[j].rounds_done for j in judges)
        if all(states[a].rounds_done >= rounds for a in run.honest):
            break
    records = {a: sim.state(a).last_round for a in run.honest}
    recalls = {
        a: dict(r.metrics)[RECALL] for a, r in records.items() if r is not None and RECALL in dict(r.metrics)
    }
    return {
        "honest_recall": sum(recalls.values()) / max(1, len(recalls)),
        "recall_by_node": recalls,
        "recall_by_round": [sum(v.values()) / len(v) for _, v in sorted(by_round.items())],
        "recall_rounds": sorted(by_round),
        "honest_nodes": len(run.honest),
        "attackers": {a: str(b) for a, b in run.attackers.items()},
        "blocked_round": blocked_round,
        "blocked": len(blocked_round),
        "blocked_within_20": sum(1 for r in blocked_round.values() if r <= 20),
        "honest_wrongly_blocked": sorted({other for _, other in wrongly}),
        "wrong_block_pairs": len(wrongly),
        "liar": run.liar,
        "liar_blocked_by": sorted(
            a for a in run.honest if run.liar is not None and run.liar in sim.state(a).blocked
        ),
        "rounds_done": min(sim.state(a).rounds_done for a in run.honest),
        "virtual_seconds": sim.now,
    }


def run_byzantine_experiment(
    *,
    nodes: int = 20,
    group_size: int = 10,
    rounds: int = 20,
    fractions: Sequence[float] = (0.2, 0.3),
    seed: int = 0,
    tensors: MusicTensors | None = None,
    data: list[NodeData] | None = None,
    split: str = NON_IID,
    policy: DefederationPolicy | None = None,
    statistic: str = "median-distance",
    undefended: bool = True,
    liar: bool = True,
    mixed_rates: Sequence[float] = MIXED_RATES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Honest nodes' Recall@20, blocks and wrong blocks under 0 %, each of ``fractions`` and a false
    accuser; with ``undefended`` also the largest fraction without defederation (the attack's cost).

    ``tensors``: the corpus (Last.fm-2k from the caller; default: the seeded synthetic corpus);
    ``data``: its deal to nodes, by default ``split`` (non-IID: one taste community per node).
    With ``mixed_rates``, the nodes also run at those learning rates (node ``i`` at rate ``i mod n``,
    declared in their updates), attack-free and with the largest fraction and the false accuser;
    those runs are compared with the attack-free run at the same rates.
    """
    torch.set_num_threads(1)
    dealt = "given" if data is not None else split
    tensors = tensors or synthetic_tensors(SynthParams(seed=seed))
    data = data or deal_listeners(tensors, nodes, seed=seed, split=split)
    defence = LedgerDefence(policy or DefederationPolicy(), statistic=statistic)
    top = max(fractions, default=0.0)
    plans: list[tuple[str, float, bool, bool, tuple[float, ...]]] = [("attack-free", 0.0, True, False, ())]
    plans += [(f"{round(100 * f)}% byzantine", f, True, False, ()) for f in fractions]
    if undefended and fractions:
        plans.append((f"{round(100 * top)}% byzantine, no defence", top, False, False, ()))
    if liar:
        plans.append((f"{round(100 * top)}% byzantine and a false accuser", top, True, True, ()))
    rates = tuple(mixed_rates)
    if rates:
        plans.append((MIXED_CLEAN, 0.0, True, False, rates))
        plans.append(
            (f"{round(100 * top)}% byzantine, false accuser, mixed learning rates", top, True, liar, rates)
        )
    runs: dict[str, Any] = {}
    for name, fraction, defended, with_liar, learning_rates in plans:
        started = time.perf_counter()
        run = byzantine_fungiverse(
            tensors,
            nodes=nodes,
            group_size=group_size,
            attackers=round(fraction * nodes),
            liar=with_liar,
            defence=defence if defended else None,
            rounds=rounds,
            seed=seed,
            data=data,
            learning_rates=learning_rates,
        )
        result = _observe(run, limit=rounds * 10.0, rounds=rounds)
        result |= {
            "fraction": fraction,
            "defended": defended,
            "learning_rates": list(learning_rates),
            "reference": MIXED_CLEAN if learning_rates else "attack-free",
            "wall_seconds": time.perf_counter() - started,
        }
        runs[name] = result
        if progress is not None:
            progress(f"{name}: recall {result['honest_recall']:.4f}, {result['blocked']} blocked")
    for result in runs.values():
        # Over the same nodes: the attack-free run's mean (at the same learning rates) over this
        # run's honest nodes.
        clean = runs[result["reference"]]["recall_by_node"]
        mine = result["recall_by_node"]
        baseline = sum(clean[a] for a in mine) / max(1, len(mine))
        result["attack_free_recall_same_nodes"] = baseline
        result["recall_vs_attack_free"] = result["honest_recall"] / baseline if baseline else float("nan")
    return {
        "nodes": nodes,
        "split": dealt,
        "group_size": group_size,
        "rounds": rounds,
        "seed": seed,
        "statistic": statistic,
        "runs": runs,
    }
