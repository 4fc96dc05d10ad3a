"""Byzantine attackers in the simulator, and defederation against them (agents/byzantine.py)."""

from __future__ import annotations

import pytest
import torch

from agents.byzantine import (
    MIXED_RATES,
    Behaviour,
    ByzantineLearner,
    byzantine_fungiverse,
    run_byzantine_experiment,
)
from agents.protocol.defence import LedgerDefence
from agents.protocol.learning import TrainResult, Weights
from agents.recsys_scenario import synthetic_tensors
from knowledge.music import SynthParams
from reasoning.defederation import DefederationPolicy


class StepLearner:
    """Adds one to every shared weight and claims a loss: a change that is easy to check by hand."""

    def initial_weights(self, seed: int) -> dict[str, torch.Tensor]:
        return {"artist_weight": torch.zeros(3), "listener_bias": torch.zeros(1)}

    def train(self, weights: Weights, *, seed: int) -> TrainResult:
        new = {"artist_weight": weights["artist_weight"] + 1, "listener_bias": weights["listener_bias"] + 5}
        return TrainResult(new, 4, {"loss": 0.5})

    def evaluate(self, weights: Weights) -> dict[str, float]:
        return {"recall@20": 0.1}


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [(Behaviour.SIGN_FLIP, [-2.0, -2.0, -2.0]), (Behaviour.SCALED, [6.0, 6.0, 6.0])],
)
def test_attacks_corrupt_the_shared_change_and_keep_private_weights_honest(behaviour, expected) -> None:
    base = {"artist_weight": torch.full((3,), 2.0), "listener_bias": torch.zeros(1)}
    result = ByzantineLearner(StepLearner(), behaviour, factor=4.0).train(base, seed=0)
    # sign flip: 2 - 4 * 1 = -2; scaled: 2 + 4 * 1 = 6
    assert result.weights["artist_weight"].tolist() == expected
    assert result.weights["listener_bias"].tolist() == [5.0] and result.samples == 4


def test_random_and_inflated_claim_attacks() -> None:
    base = {"artist_weight": torch.tensor([1.0, -1.0, 3.0]), "listener_bias": torch.zeros(1)}
    noisy = ByzantineLearner(StepLearner(), Behaviour.RANDOM).train(base, seed=1)
    assert not torch.equal(noisy.weights["artist_weight"], base["artist_weight"] + 1)
    boast = ByzantineLearner(StepLearner(), Behaviour.INFLATED_CLAIM, claimed_recall=0.9).train(base, seed=1)
    assert boast.weights["artist_weight"].tolist() == [2.0, 0.0, 4.0]  # the update itself is honest
    assert boast.metrics == {"loss": 0.5, "recall@20": 0.9}


TINY = SynthParams(listeners=80, artists=200, seed=3)


def run(*, attackers: int, liar: bool, behaviours=tuple(Behaviour), rounds: int = 5):
    tensors = synthetic_tensors(TINY)
    fungiverse = byzantine_fungiverse(
        tensors,
        nodes=8,
        group_size=8,
        attackers=attackers,
        behaviours=behaviours,
        liar=liar,
        defence=LedgerDefence(DefederationPolicy()),
        rounds=rounds,
        seed=3,
        embedding_dim=8,
        num_layers=1,
    )
    sim = fungiverse.simulator
    sim.run_until(lambda s: all(s.state(a).rounds_done >= rounds for a in fungiverse.honest), limit=60.0)
    return fungiverse


def test_attackers_are_blocked_by_every_honest_member_and_no_honest_node_is() -> None:
    torch.set_num_threads(1)
    fungiverse = run(
        attackers=3, liar=False, behaviours=(Behaviour.SIGN_FLIP, Behaviour.SCALED, Behaviour.RANDOM)
    )
    sim = fungiverse.simulator
    attackers = set(fungiverse.attackers)
    for actor in fungiverse.honest:
        state = sim.state(actor)
        assert state.blocked == attackers, actor
        assert state.rounds_done >= 5
    owner = sim.state(fungiverse.groups[0][0])
    assert owner.owned and next(iter(owner.owned.values())).members.isdisjoint(attackers)


def test_a_false_accuser_gets_no_honest_node_blocked_and_a_boaster_is_caught_by_the_cross_check() -> None:
    torch.set_num_threads(1)
    fungiverse = run(attackers=1, liar=True, behaviours=(Behaviour.INFLATED_CLAIM,))
    sim = fungiverse.simulator
    (boaster,) = fungiverse.attackers
    assert fungiverse.liar is not None
    for actor in fungiverse.honest:
        assert sim.state(actor).blocked == {boaster}, actor
        assert sim.state(actor).counters.get("received:flag", 0) >= 1


def test_the_experiment_reports_recall_blocks_and_wrong_blocks() -> None:
    report = run_byzantine_experiment(
        nodes=8,
        group_size=8,
        rounds=4,
        fractions=(0.25,),
        tensors=synthetic_tensors(TINY),
        seed=3,
    )
    runs = report["runs"]
    assert set(runs) == {
        "attack-free",
        "25% byzantine",
        "25% byzantine, no defence",
        "25% byzantine and a false accuser",
        "attack-free, mixed learning rates",
        "25% byzantine, false accuser, mixed learning rates",
    }
    mixed = runs["25% byzantine, false accuser, mixed learning rates"]
    assert mixed["reference"] == "attack-free, mixed learning rates" and mixed["liar"] is not None
    assert mixed["learning_rates"] == list(MIXED_RATES) and runs["attack-free"]["learning_rates"] == []
    assert runs["25% byzantine"]["blocked"] == 2 and runs["25% byzantine, no defence"]["blocked"] == 0
    assert all(r["honest_wrongly_blocked"] == [] for r in runs.values())
    assert runs["attack-free"]["recall_vs_attack_free"] == pytest.approx(1.0)
    assert runs["attack-free, mixed learning rates"]["recall_vs_attack_free"] == pytest.approx(1.0)
    assert all(len(r["recall_by_round"]) == len(r["recall_rounds"]) > 0 for r in runs.values())


def test_the_byzantine_plots_are_written_next_to_the_json(tmp_path, monkeypatch) -> None:
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    sys.modules.pop("evolution", None)
    from evolution import plot_byzantine

    report = run_byzantine_experiment(
        nodes=8, group_size=8, rounds=3, fractions=(0.25,), tensors=synthetic_tensors(TINY), seed=3
    )
    written = plot_byzantine(report, tmp_path / "evolution")
    assert [Path(p).name for p in written] == [
        "evolution-byzantine-quality.png",
        "evolution-byzantine-blocked.png",
    ]
    assert all(Path(p).read_bytes().startswith(b"\x89PNG") for p in written)


def _with_a_fast_member(*, declares: bool):  # type: ignore[no-untyped-def]
    """Eight nodes, one of them a 4x-scaled attacker and one an honest member training at four times
    its peers' learning rate, which its updates declare (``declares``) or not."""
    from dataclasses import replace

    fungiverse = byzantine_fungiverse(
        synthetic_tensors(TINY),
        nodes=8,
        group_size=8,
        attackers=1,
        behaviours=(Behaviour.SCALED,),
        defence=LedgerDefence(DefederationPolicy()),
        rounds=6,
        seed=3,
        embedding_dim=8,
        num_layers=1,
    )
    sim = fungiverse.simulator
    fast = fungiverse.honest[-1]
    node = sim.nodes[fast]
    learner = node.ctx.learner
    step = node.ctx.training_step * 4 if declares else node.ctx.training_step
    node.ctx = replace(
        node.ctx, learner=replace(learner, learning_rate=learner.learning_rate * 4), training_step=step
    )
    sim.run_until(lambda s: all(s.state(a).rounds_done >= 6 for a in fungiverse.honest), limit=80.0)
    return fungiverse, fast


def test_an_honest_member_that_declares_its_faster_training_is_not_blocked_and_the_attacker_is() -> None:
    torch.set_num_threads(1)
    fungiverse, fast = _with_a_fast_member(declares=True)
    sim = fungiverse.simulator
    attacker = next(iter(fungiverse.attackers))
    others = [actor for actor in fungiverse.honest if actor != fast]
    assert all(fast not in sim.state(actor).blocked for actor in others)
    assert all(attacker in sim.state(actor).blocked for actor in fungiverse.honest)


def test_an_undeclared_faster_member_looks_like_a_scaling_attacker() -> None:
    torch.set_num_threads(1)
    fungiverse, fast = _with_a_fast_member(declares=False)
    sim = fungiverse.simulator
    others = [actor for actor in fungiverse.honest if actor != fast]
    assert any(fast in sim.state(actor).blocked for actor in others)


def test_mixed_learning_rates_are_trained_and_declared_node_by_node() -> None:
    torch.set_num_threads(1)
    fungiverse = byzantine_fungiverse(
        synthetic_tensors(TINY),
        nodes=8,
        group_size=8,
        attackers=2,
        behaviours=(Behaviour.SCALED, Behaviour.SIGN_FLIP),
        liar=True,
        defence=LedgerDefence(DefederationPolicy()),
        rounds=4,
        seed=3,
        embedding_dim=8,
        num_layers=1,
        learning_rates=(0.005, 0.04),
    )
    sim = fungiverse.simulator
    contexts = {actor: sim.nodes[actor].ctx for actor in fungiverse.actors}
    for index, actor in enumerate(fungiverse.actors):
        rate = (0.005, 0.04)[index % 2]
        learner = contexts[actor].learner
        inner = learner.inner if isinstance(learner, ByzantineLearner) else learner
        assert inner.learning_rate == rate  # type: ignore[attr-defined]
        assert contexts[actor].training_step == pytest.approx(rate)  # one local epoch
    sim.run_until(lambda s: all(s.state(a).rounds_done >= 4 for a in fungiverse.honest), limit=60.0)
    for actor in fungiverse.honest:  # an honest member eight times faster than another is no attacker
        assert sim.state(actor).blocked.isdisjoint(fungiverse.honest), actor
