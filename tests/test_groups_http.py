"""Two hosts that start apart each found a group for one hashtag; once they see each other, the
duplicate rule (agents/protocol/groups.py) leaves one group, over real HTTP between loopback hosts."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from agents.fungus_host import start_fungus_host
from agents.hosting import HostOptions
from agents.node import FungusNode, founded_group, node_state
from agents.protocol.context import NodeContext
from agents.protocol.groups import prefers
from agents.protocol.learning import shared_part
from agents.protocol.messages import shapes_of
from agents.recsys_scenario import LIGHTGCN, RecsysFungiverse, recsys_fungiverse
from knowledge.music import SynthParams

RULE = "https://w3id.org/spore/ns#WeightedMean"


def _node(world: RecsysFungiverse, index: int, base: str, *, founds: bool) -> FungusNode:
    actor = f"{base}/nodes/n{index}"
    learner = world.learner(world.actors[index])
    weights = learner.initial_weights(0)
    groups = (
        [
            founded_group(
                actor, "#jazz", shapes_of(shared_part(weights)), aggregation_rule=RULE, round_timeout=5.0
            )
        ]
        if founds
        else []
    )
    state = node_state(
        actor, seed=index, weights=weights, architecture=LIGHTGCN, seeks=("#jazz",), founds=groups
    )
    ctx = NodeContext(learner=learner, train_seconds=0.3, announce_interval=1.0)
    return FungusNode(f"n{index}", ctx, state)


@pytest.mark.slow
def test_hosts_that_started_apart_end_with_one_group_per_hashtag(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    world = recsys_fungiverse(
        4, params=SynthParams(listeners=32, artists=60, seed=5), group_size=4, embedding_dim=8
    )
    options = HostOptions(autostart=False, announce_from_status=False, poll_seconds=0.5)
    first, first_nodes = start_fungus_host(
        tmp_path / "a",
        lambda base: [_node(world, 0, base, founds=True), _node(world, 1, base, founds=False)],
        options=options,
    )
    second, second_nodes = start_fungus_host(
        tmp_path / "b",
        lambda base: [_node(world, 2, base, founds=True), _node(world, 3, base, founds=False)],
        options=options,
    )
    hosts = ((first, first_nodes), (second, second_nodes))
    nodes = {**first_nodes.nodes, **second_nodes.nodes}

    def groups() -> dict[str | None, set[str]]:
        found: dict[str | None, set[str]] = {}
        for node in nodes.values():
            membership = node.state.membership
            found.setdefault(membership.group.iri if membership else None, set()).add(node.name)
        return found

    def wait(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            time.sleep(0.2)
        return condition()

    try:
        epoch = time.monotonic() + 0.3
        for host, node_host in hosts:
            host.call(node_host.begin(epoch))
        # Apart: each host knows only itself, so each founder's group takes its own host's member.
        assert wait(lambda: len(groups()) == 2 and None not in groups(), 30), groups()
        owners = [
            f"{host.runtime.config.base_url}/nodes/n{i}" for (host, _), i in zip(hosts, (0, 2), strict=True)
        ]
        # Now they see each other: the group every node prefers survives, the other is dissolved.
        for index, (host, node_host) in enumerate(hosts):
            node_host.options = dataclasses.replace(
                options, peers=(hosts[1 - index][0].runtime.config.base_url,)
            )
            host.call(node_host.poll_peers())
        assert wait(lambda: len(groups()) == 1 and None not in groups(), 60), groups()
        [(survivor, members)] = groups().items()
        assert members == {"n0", "n1", "n2", "n3"}
        infos = {iri: owned.info for node in nodes.values() for iri, owned in node.state.owned.items()}
        assert set(infos) == {survivor}  # one owner left, the other's group is gone
        loser = next(f"{owner}/groups/jazz" for owner in owners if f"{owner}/groups/jazz" != survivor)
        state = nodes[next(iter(nodes))].state
        winner = infos[survivor]
        assert prefers(
            state, winner, dataclasses.replace(winner, iri=loser, owner=loser.rsplit("/groups/", 1)[0])
        )
    finally:
        second.stop()
        first.stop()
