"""The same scenario under the simulator and over real HTTP gives the same groups and the same weights.

Four least-squares nodes seek one hashtag; node 0 founds the group, node 3 boots late and finds it at
the owner's re-announcement. Three synchronous rounds. The simulator runs on virtual time; two
loopback hosts (nodes 0-1 and 2-3) run the same contexts and seeds over signed ActivityPub on the
wall clock. The schedule leaves every event a wide margin (3 s of training; the late node boots
between two announcements and hears the one in the middle of round 1, which runs from about 3.2 s
to 6.2 s), so wall-clock jitter on a loaded machine cannot move an event into another round, and a
synchronous round merges exactly the members' updates whenever they arrive.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents.fungus_host import start_fungus_host
from agents.hosting import HostOptions
from agents.node import FungusNode, founded_group, node_state
from agents.protocol.learning import resolve_rule, shared_part
from agents.protocol.state import NodeState
from agents.scenarios import linear_fungiverse
from agents.simulator import Simulator

pytestmark = pytest.mark.slow

NODES = 4
ROUNDS = 3
LATE = 3
BOOT_LATE_AT = 3.0
TRAIN_SECONDS = 3.0
ANNOUNCE_EVERY = 4.5


def simulated() -> tuple[Simulator, list[str], dict[str, NodeState]]:
    """The scenario run to the end under the simulator, with every node's state before it started."""
    fungiverse = linear_fungiverse(
        NODES,
        rule_for=resolve_rule,
        seed=7,
        group_size=NODES,
        max_rounds=ROUNDS,
        train_seconds=TRAIN_SECONDS,
        round_timeout=10.0,
        announce_interval=ANNOUNCE_EVERY,
        boot_at={LATE: BOOT_LATE_AT},
    )
    initial = {actor: node.state for actor, node in fungiverse.simulator.nodes.items()}
    fungiverse.simulator.run(60.0)
    return fungiverse.simulator, fungiverse.actors, initial


def http_nodes(
    simulator: Simulator, initial: dict[str, NodeState], indices: range, base_url: str
) -> list[FungusNode]:
    """The simulated nodes ``indices`` re-created under this host's actor IRIs, same contexts and seeds."""
    nodes = []
    for index in indices:
        sim_actor = next(actor for actor in initial if index_of(actor) == index)
        sim, first = simulator.nodes[sim_actor], initial[sim_actor]
        actor = f"{base_url}/nodes/node{index}"
        founds = [
            founded_group(
                actor,
                owned.info.hashtag,
                owned.info.shared_shapes,
                aggregation_rule=owned.info.aggregation_rule,
                schedule=owned.info.schedule,
                round_timeout=owned.info.round_timeout,
                fanout=owned.info.fanout,
            )
            for owned in sim.state.owned.values()
        ]
        state = node_state(
            actor,
            seed=first.seed,
            weights=first.weights,
            architecture=first.blueprint.architecture,
            seeks=first.seeks,
            founds=founds,
        )
        nodes.append(
            FungusNode(f"node{index}", sim.ctx, state, boot_at=BOOT_LATE_AT if index == LATE else 0.0)
        )
    return nodes


def index_of(actor: str) -> int:
    return int(actor.rstrip("/").rsplit("node", 1)[1].split(".")[0])


def test_simulator_and_http_agree_on_groups_and_merged_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    simulator, sim_actors, initial = simulated()

    options = HostOptions(autostart=False, announce_from_status=False, poll_seconds=60.0)
    first, first_nodes = start_fungus_host(
        tmp_path / "a", lambda base: http_nodes(simulator, initial, range(0, 2), base), options=options
    )
    second, second_nodes = start_fungus_host(
        tmp_path / "b",
        lambda base: http_nodes(simulator, initial, range(2, 4), base),
        options=HostOptions(
            peers=(first.runtime.config.base_url,),
            autostart=False,
            announce_from_status=False,
            poll_seconds=60.0,
        ),
    )
    try:
        first_nodes.options = replace(options, peers=(second.runtime.config.base_url,))
        first.call(first_nodes.poll_peers())
        second.call(second_nodes.poll_peers())
        epoch = time.monotonic() + 0.5
        first.call(first_nodes.begin(epoch))
        second.call(second_nodes.begin(epoch))
        deadline = time.monotonic() + 60
        nodes = {**first_nodes.nodes, **second_nodes.nodes}
        while not all(node.done for node in nodes.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        over_http = {index_of(actor): node.state for actor, node in nodes.items()}
        fetched = [host.transport.stats.get("artifacts-fetched", 0) for host in (first_nodes, second_nodes)]
    finally:
        second.stop()
        first.stop()

    for actor in sim_actors:
        index = index_of(actor)
        expected, got = simulator.state(actor), over_http[index]
        assert expected.membership is not None and got.membership is not None, index
        assert {index_of(a) for a in got.membership.members} == {
            index_of(a) for a in expected.membership.members
        }
        assert got.membership.round == expected.membership.round == ROUNDS
        assert got.rounds_done == expected.rounds_done
        assert got.last_round is not None and expected.last_round is not None
        assert sorted(map(index_of, got.last_round.contributors)) == sorted(
            map(index_of, expected.last_round.contributors)
        )
        for name, tensor in shared_part(expected.weights).items():
            torch.testing.assert_close(got.weights[name], tensor, rtol=0, atol=1e-6)
    assert all(count > 0 for count in fetched)  # updates crossed hosts as artifacts fetched by GET
    # The late joiner trained with the group: all four contributed to the last round.
    assert len(simulator.state(sim_actors[0]).last_round.contributors) == NODES
