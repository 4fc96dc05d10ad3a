"""Whole simulated runs: reference merges, determinism, crashes, late joins, partitions, loss, privacy.

Runs use the least-squares learner (agents/protocol/learners.py) on a seeded catalogue, so each takes
milliseconds to a second of CPU; virtual time is independent of the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from agents.protocol import WeightedParameters, shared_part
from agents.protocol.learners import PRIVATE, SHARED
from agents.protocol.messages import PUBLIC, Create, Leave, ModelUpdate, Schedule
from agents.protocol.wire import WireCodec, WirePayload
from agents.scenarios import Fungiverse, linear_fungiverse


def weighted_mean(
    contributions: Sequence[WeightedParameters], *, reference: object = None
) -> dict[str, torch.Tensor]:
    """The reference rule of these tests (the merge engineer's rules are tested in models/)."""
    total = sum(c.weight for c in contributions)
    names = contributions[0].parameters
    return {n: sum(c.parameters[n] * (c.weight / total) for c in contributions) for n in names}  # type: ignore[misc]


def fungiverse(nodes: int = 4, **options: Any) -> Fungiverse:
    return linear_fungiverse(nodes, rule_for=lambda iri: weighted_mean, **options)


def shared(world: Fungiverse, actor: str) -> torch.Tensor:
    return world.simulator.state(actor).weights[SHARED]


def test_one_sync_round_merges_to_the_reference_weighted_mean() -> None:
    world = fungiverse(4, max_rounds=1)
    world.simulator.run(30.0)
    # Reference: every member trains from the owner's initial model (what the Accept carried) on
    # its own rows, then the trained shared weights are averaged with weights = rows per node.
    trained = []
    for actor in world.actors:
        node = world.simulator.nodes[actor]
        learner = node.ctx.learner
        begin = {SHARED: learner.initial_weights(0)[SHARED], PRIVATE: torch.zeros(1)}
        result = learner.train(begin, seed=0)
        trained.append(WeightedParameters({SHARED: result.weights[SHARED]}, float(result.samples)))
    reference = weighted_mean(trained)[SHARED]
    for actor in world.actors:
        state = world.simulator.state(actor)
        assert state.rounds_done == 1
        assert state.last_round is not None and len(state.last_round.contributors) == 4
        torch.testing.assert_close(state.weights[SHARED], reference)


def test_members_agree_and_learn_over_rounds() -> None:
    world = fungiverse(8, max_rounds=6)
    world.simulator.run(60.0)
    digests = {world.simulator.state(a).last_round.merged_sha256 for a in world.actors}  # type: ignore[union-attr]
    assert len(digests) == 1
    error_before = (world.true_weight - torch.zeros_like(world.true_weight)).norm()
    error_after = (shared(world, world.actors[3]) - world.true_weight).norm()
    assert error_after < 0.2 * error_before
    # Private parameters stay different: each node fits its own listeners' offset.
    biases = {round(float(world.simulator.state(a).weights[PRIVATE]), 4) for a in world.actors}
    assert len(biases) == 8


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    digests = []
    for seed in (3, 3, 4):
        world = fungiverse(6, seed=seed, max_rounds=3, simulator_options={"loss": 0.1, "record_trace": True})
        world.simulator.run(40.0)
        digests.append((world.simulator.trace_digest, len(world.simulator.trace)))
    assert digests[0] == digests[1]
    assert digests[0][0] != digests[2][0]


def test_crashed_node_comes_back_and_rejoins_the_group() -> None:
    world = fungiverse(4, max_rounds=None, round_timeout=3.0)
    sim, victim = world.simulator, world.actors[2]
    sim.crash(victim, at=3.5)
    sim.restart(victim, at=25.0)
    sim.run(24.0)
    owner = sim.state(world.actors[0])
    assert victim not in owner.owned[world.groups[0].iri].members  # evicted after 3 silent rounds
    assert owner.counters["evicted"] == 1
    survivors_rounds = owner.rounds_done
    sim.run(60.0)
    back = sim.state(victim)
    assert (
        back.membership is not None
        and victim in sim.state(world.actors[0]).owned[world.groups[0].iri].members
    )
    assert sim.state(world.actors[0]).rounds_done > survivors_rounds
    last = sim.state(world.actors[1]).last_round
    assert last is not None and victim in last.contributors
    assert sim.stats["lost-down"] > 0


def test_late_joiner_starts_from_the_group_model() -> None:
    world = fungiverse(4, max_rounds=20, round_timeout=3.0, announce_interval=4.0, boot_at={3: 8.0})
    sim, late = world.simulator, world.actors[3]
    sim.run(7.9)
    assert sim.state(world.actors[1]).rounds_done >= 3
    sim.run(60.0)
    state = sim.state(late)
    assert state.counters["joined"] == 1
    assert 0 < state.rounds_done < sim.state(world.actors[0]).rounds_done == 20
    assert state.last_round is not None and len(state.last_round.contributors) == 4
    assert state.last_round.merged_sha256 == sim.state(world.actors[0]).last_round.merged_sha256  # type: ignore[union-attr]


def test_partition_splits_rounds_and_healing_reunites_them() -> None:
    world = fungiverse(6, max_rounds=None, round_timeout=2.0)
    sim = world.simulator
    left, right = world.actors[:3], world.actors[3:]
    sim.partition([left, right], at=5.0, heal_at=11.0)
    sim.run(10.5)
    cut = sim.state(left[1]).last_round
    assert cut is not None and set(cut.contributors) <= set(left)
    assert sim.stats["partitioned"] > 0
    sim.run(40.0)
    healed = [
        sim.state(actor).last_round for actor in world.actors if sim.state(actor).membership is not None
    ]
    assert any(record is not None and len(record.contributors) == 6 for record in healed)
    assert (
        len(
            {
                record.merged_sha256
                for record in healed
                if record is not None and len(record.contributors) == 6
            }
        )
        >= 1
    )


def test_slow_peer_costs_one_timeout_and_its_stale_update_is_dropped() -> None:
    world = fungiverse(4, max_rounds=4, round_timeout=2.0)
    sim, slow = world.simulator, world.actors[3]
    sim.nodes[slow].ctx = replace(sim.nodes[slow].ctx, train_seconds=4.0)
    sim.run(60.0)
    fast = sim.state(world.actors[1])
    assert fast.rounds_done == 4
    assert fast.counters.get("dropped:stale", 0) + fast.counters.get("dropped:after-last-round", 0) > 0
    assert sim.state(slow).counters.get("jumped", 0) > 0


def test_lossy_links_still_finish_rounds() -> None:
    world = fungiverse(6, max_rounds=8, round_timeout=2.0, simulator_options={"loss": 0.2})
    world.simulator.run(120.0)
    assert world.simulator.stats["lost"] > 0
    owner = world.simulator.state(world.actors[0])
    assert owner.membership is not None and owner.membership.round == 8 and owner.rounds_done >= 7
    trained = [world.simulator.state(actor).rounds_done for actor in world.actors]
    assert sum(rounds > 0 for rounds in trained) >= 5, trained


def test_gossip_rounds_spread_the_model_without_waiting() -> None:
    world = fungiverse(
        12, group_size=12, max_rounds=15, schedule=Schedule.GOSSIP, fanout=2, round_timeout=0.5
    )
    world.simulator.run(60.0)
    weights = torch.stack([shared(world, actor) for actor in world.actors])
    assert all(world.simulator.state(a).membership.round == 15 for a in world.actors)  # type: ignore[union-attr]
    assert world.simulator.state(world.actors[0]).counters.get("evicted", 0) == 0
    assert float(weights.std(dim=0).max()) < 0.05
    assert float((weights.mean(dim=0) - world.true_weight).norm()) < 0.2 * float(world.true_weight.norm())


def test_garbage_on_the_wire_is_dropped_and_counted() -> None:
    world = fungiverse(3, max_rounds=2, simulator_options={"codec": WireCodec()})
    sim, target, stranger = world.simulator, world.actors[0], world.actors[1]
    sim.inject(stranger, target, None, at=0.5, error="not JSON")
    update = ModelUpdate(group=world.groups[0].iri, round=0, parameters={SHARED: torch.ones(8)}, samples=1)
    forged = Create(id=f"{world.actors[2]}/activities/x", actor=world.actors[2], to=(target,), update=update)
    sim.inject(stranger, target, forged, at=0.6)
    sim.run(30.0)
    counters = sim.state(target).counters
    assert counters["dropped:malformed"] == 1 and counters["dropped:forged"] == 1
    assert sim.state(target).rounds_done == 2


@pytest.mark.parametrize("schedule", [Schedule.SYNC, Schedule.GOSSIP])
def test_no_payload_leaving_a_node_carries_private_data(schedule: str) -> None:
    payloads: list[tuple[str, WirePayload]] = []
    world = linear_fungiverse(
        6,
        rule_for=lambda iri: weighted_mean,
        max_rounds=3,
        schedule=schedule,
        fanout=2,
        simulator_options={"codec": WireCodec(), "tap": lambda s, r, p: payloads.append((s, p))},
    )
    sim = world.simulator
    sim.run(40.0)
    assert sim.state(world.actors[0]).rounds_done == 3
    first_leave = None
    for actor in world.actors[1:2]:
        from agents.protocol.core import leave

        sim.nodes[actor].state, outbox = leave(sim.state(actor), sim.now)
        first_leave = outbox[0]
        sim.send(actor, first_leave)
    assert isinstance(first_leave, Leave)
    kinds = set()
    for sender, payload in payloads:
        activity = json.loads(payload.activity)
        kinds.add(activity["type"])
        text = payload.activity.decode()
        assert "listener" not in text.lower()  # no listener IRI, no per-listener parameter name
        for _, blob in payload.artifacts:
            tensors = load_safetensors(blob)
            assert set(tensors) == {SHARED}  # shared item-side rows only
            rows = sim.nodes[sender].ctx.learner.features  # type: ignore[attr-defined]
            assert all(t.numel() < rows.numel() for t in tensors.values())  # no interaction table
    assert {"Announce", "Join", "Accept", "Create", "Leave"} <= kinds
    assert all(
        PUBLIC not in json.loads(p.activity)["to"] or json.loads(p.activity)["type"] == "Announce"
        for _, p in payloads
    )
    assert all(set(shared_part(sim.state(a).weights)) == {SHARED} for a in world.actors)


def test_the_groups_rule_comes_from_models_merge_by_its_iri() -> None:
    from agents.protocol.learning import resolve_rule

    ours, theirs = fungiverse(4, max_rounds=2), linear_fungiverse(4, rule_for=resolve_rule, max_rounds=2)
    ours.simulator.run(30.0)
    theirs.simulator.run(30.0)
    for actor in ours.actors:
        torch.testing.assert_close(shared(theirs, actor), shared(ours, actor))


KRUM = "https://w3id.org/spore/ns#Krum"
MEDIAN = "https://w3id.org/spore/ns#CoordinateMedian"


@pytest.mark.parametrize("rule", ["VarianceCorrectedMean", "TrimmedMean", "CoordinateMedian", "Krum"])
def test_every_aggregation_rule_runs_a_group(rule: str) -> None:
    from agents.protocol.learning import resolve_rule

    world = linear_fungiverse(
        5, rule_for=resolve_rule, max_rounds=6, aggregation_rule=f"https://w3id.org/spore/ns#{rule}"
    )
    world.simulator.run(40.0)
    digests = {world.simulator.state(a).last_round.merged_sha256 for a in world.actors}  # type: ignore[union-attr]
    assert len(digests) == 1 and world.simulator.state(world.actors[0]).rounds_done == 6
    error = (shared(world, world.actors[0]) - world.true_weight).norm()
    assert error < 0.5 * world.true_weight.norm()


def test_krum_group_too_small_for_its_guarantee_merges_with_the_median() -> None:
    from agents.protocol.learning import resolve_rule

    # Three members cannot give Krum its 2f + 3 = 5 updates: rounds must go on, merged by the median.
    world = linear_fungiverse(3, rule_for=resolve_rule, max_rounds=4, aggregation_rule=KRUM)
    median = linear_fungiverse(3, rule_for=resolve_rule, max_rounds=4, aggregation_rule=MEDIAN)
    world.simulator.run(40.0)
    median.simulator.run(40.0)
    assert world.simulator.state(world.actors[0]).rounds_done == 4
    for actor in world.actors:
        torch.testing.assert_close(shared(world, actor), shared(median, actor))


def test_duplicate_deliveries_do_not_change_the_result() -> None:
    plain = fungiverse(4, max_rounds=4)
    retried = fungiverse(4, max_rounds=4, simulator_options={"duplicate": 0.5})
    plain.simulator.run(40.0)
    retried.simulator.run(40.0)
    assert retried.simulator.stats["duplicated"] > 0
    for actor in plain.actors:
        assert retried.simulator.state(actor).rounds_done == 4
        torch.testing.assert_close(shared(retried, actor), shared(plain, actor))


def test_steps_never_mutate_earlier_states() -> None:
    world = fungiverse(3, max_rounds=3)
    sim, watched = world.simulator, world.actors[1]
    snapshots = []
    for until in (0.5, 1.5, 2.5, 3.5):
        sim.run(until)
        state = sim.state(watched)
        frozen = {name: tensor.clone() for name, tensor in state.weights.items()}
        snapshots.append((state, frozen, dict(state.counters), state.membership))
    sim.run(40.0)
    for state, weights, counters, membership in snapshots:
        assert dict(state.counters) == counters and state.membership is membership
        for name, tensor in state.weights.items():
            assert torch.equal(tensor, weights[name])


def test_compressed_updates_with_error_feedback_still_converge() -> None:
    from agents.protocol.learning import resolve_rule

    full = linear_fungiverse(4, rule_for=resolve_rule, max_rounds=20)
    sparse = linear_fungiverse(4, rule_for=resolve_rule, max_rounds=20, row_fraction=0.25, quantize=True)
    full.simulator.run(80.0)
    sparse.simulator.run(80.0)
    digests = {sparse.simulator.state(a).last_round.merged_sha256 for a in sparse.actors}  # type: ignore[union-attr]
    assert len(digests) == 1  # members still agree: every one applies the same changes to the same base
    # One-value rows pay 8 bytes of index and scale for 1 byte of value; LightGCN's 32-value rows
    # are where compression pays (tests/test_protocol_recsys.py).
    assert sparse.simulator.stats["update-bytes"] < 0.6 * full.simulator.stats["update-bytes"]
    start = float(sparse.true_weight.norm())
    error_full = float((shared(full, full.actors[0]) - full.true_weight).norm())
    error_sparse = float((shared(sparse, sparse.actors[0]) - sparse.true_weight).norm())
    assert error_sparse < 0.2 * start and error_sparse < 3 * error_full + 0.05
