"""Co-listening statistics as a protocol message: wire form, who accepts them, when they are re-sent,
and two loopback hosts that end with the same summed statistics (agents/protocol/statistics.py)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents.fungus_host import start_fungus_host
from agents.hosting import HostOptions
from agents.node import FungusNode, founded_group, node_state
from agents.protocol.context import NodeContext
from agents.protocol.core import Envelope, step
from agents.protocol.learning import shared_part
from agents.protocol.messages import (
    PUBLIC,
    AcceptStatistics,
    Announce,
    CoListeningStatistics,
    GroupInfo,
    MessageError,
    ShareStatistics,
    shapes_of,
)
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.statistics import group_statistics
from agents.protocol.wire import WireCodec, WirePayload, from_jsonld, to_activity
from agents.recsys_scenario import LIGHTGCN, RecsysFungiverse, recsys_fungiverse
from knowledge.music import SynthParams
from models.itemgraph import decode_statistics

SMALL = SynthParams(listeners=48, artists=150, seed=3)
A, B = "https://a.example/nodes/a", "https://b.example/nodes/b"
GROUP = f"{A}/groups/jazz"


def _world(rounds: int, **options: object) -> RecsysFungiverse:
    world = recsys_fungiverse(
        4, params=SMALL, group_size=4, embedding_dim=8, max_rounds=rounds, statistics_noise=0.01, **options
    )
    return world


def _share(data: bytes, actor: str = A, to: str = B) -> ShareStatistics:
    statistics = CoListeningStatistics(group=GROUP, data=data)
    return ShareStatistics(
        id=f"{actor}/activities/statistics-1", actor=actor, to=(to,), statistics=statistics
    )


def test_statistics_activity_round_trips_as_json_ld_with_its_artifact() -> None:
    message = _share(b"not decoded by the wire layer")
    activity, artifacts = to_activity(message)
    assert activity["type"] == "Create" and "spore:CoListeningStatistics" in activity["object"]["type"]
    assert activity["object"]["url"]["href"] == f"{A}/artifacts/{message.statistics.sha256}"
    assert from_jsonld(json.loads(json.dumps(activity)), artifacts) == message
    other = {message.statistics.sha256: b"other bytes"}
    with pytest.raises(MessageError, match="sha256"):
        from_jsonld(activity, other)
    with pytest.raises(MessageError, match="missing"):
        from_jsonld(activity, {})
    group = GroupInfo(GROUP, "#jazz", A, "https://w3id.org/spore/ns#WeightedMean", statistics_noise=0.01)
    announce, _ = to_activity(Announce(id=f"{A}/activities/announce-1", actor=A, to=(PUBLIC,), group=group))
    parsed = from_jsonld(announce, {})
    assert isinstance(parsed, Announce) and parsed.group.statistics_noise == 0.01
    with pytest.raises(MessageError, match="noise"):
        replace(group, statistics_noise=-1.0)
    ack = AcceptStatistics(
        id=f"{B}/activities/accept-statistics-2",
        actor=B,
        to=(A,),
        share=message.id,
        group=GROUP,
        sha256=message.statistics.sha256,
    )
    activity, artifacts = to_activity(ack)
    assert activity["type"] == "Accept" and not artifacts
    assert from_jsonld(json.loads(json.dumps(activity)), {}) == ack
    with pytest.raises(MessageError, match="sha256"):
        replace(ack, sha256="short")


def test_members_send_once_per_peer_and_sum_the_same_graph() -> None:
    payloads: list[tuple[str, WirePayload]] = []
    world = _world(
        3, simulator_options={"codec": WireCodec(), "tap": lambda s, r, p: payloads.append((s, p))}
    )
    world.simulator.run_until(lambda s: all(s.state(a).rounds_done >= 3 for a in world.actors), limit=100.0)
    states = [world.simulator.state(actor) for actor in world.actors]
    # Three rounds, but each node's statistics went to each of its three peers once.
    assert [state.counters.get("sent:statistics") for state in states] == [3, 3, 3, 3]
    assert [state.counters.get("received:statistics") for state in states] == [3, 3, 3, 3]
    assert [state.counters.get("received:statistics-ack") for state in states] == [3, 3, 3, 3]
    shared = [p for _, p in payloads if b"spore:CoListeningStatistics" in p.activity]
    assert len(shared) == 4 * 3
    digests = [sorted(s.statistics) for s in states]
    parts = [group_statistics(world.simulator.nodes[a].ctx, world.simulator.state(a)) for a in world.actors]
    assert len({tuple(p) for p in parts}) == 1 and len(parts[0]) == 4
    assert all(len(d) == 3 for d in digests)
    # The group's sum counts every node's listeners once.
    total = sum(decode_statistics(p, num_artists=world.tensors.num_artists).listeners for p in parts[0])
    assert total == world.tensors.num_listeners
    # Evaluation blends the graph in: the round's metrics are the blend's, not the model's alone.
    learner = world.learner(world.actors[0])
    recorded = dict(states[0].last_round.metrics)  # type: ignore[union-attr]
    blended = learner.evaluate_with_statistics(states[0].weights, parts[0])
    alone = learner.evaluate(states[0].weights)
    assert recorded == pytest.approx(blended)
    # The model's own metrics under the usual names (what peers can reproduce), the blend's beside.
    assert recorded["recall@20"] == pytest.approx(alone["recall@20"])
    assert recorded["blend-recall@20"] != pytest.approx(alone["recall@20"])


def test_changed_listens_are_sent_again_and_replace_the_old_statistics() -> None:
    world = _world(4)
    simulator, first = world.simulator, world.actors[1]
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 2 for a in world.actors), limit=100.0)
    old = simulator.state(world.actors[0]).statistics[first].sha256
    node = simulator.nodes[first]
    learner = node.ctx.learner
    assert isinstance(learner, LightGCNLearner)
    fewer = replace(learner, train_edges=learner.train_edges[:, ::2].contiguous())
    node.ctx = replace(node.ctx, learner=fewer)
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 4 for a in world.actors), limit=100.0)
    assert simulator.state(first).counters["sent:statistics"] == 6  # three peers, twice
    assert simulator.state(world.actors[2]).counters["sent:statistics"] == 3  # unchanged: once
    new = simulator.state(world.actors[0]).statistics[first].sha256
    payload = fewer.statistics_payload(0.01, seed=simulator.state(first).seed)
    assert payload is not None and new != old
    assert new == CoListeningStatistics(GROUP, payload).sha256


def test_a_restarted_member_gets_its_peers_statistics_again() -> None:
    world = _world(4)
    simulator, restarted = world.simulator, world.actors[2]
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 2 for a in world.actors), limit=100.0)
    node = simulator.nodes[restarted]
    node.state = replace(
        node.state, statistics={}, statistics_sent={}, statistics_acked={}
    )  # what a restart forgets
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 4 for a in world.actors), limit=100.0)
    assert sorted(simulator.state(restarted).statistics) == sorted(set(world.actors) - {restarted})
    others = [simulator.state(a).counters["sent:statistics"] for a in world.actors if a != restarted]
    assert others == [4, 4, 4]  # three peers once, and the restarted one again


def test_statistics_lost_on_the_way_are_sent_again_until_acknowledged() -> None:
    world = _world(6)
    simulator = world.simulator
    sender, receiver = world.actors[1], world.actors[2]
    simulator.set_link(sender, receiver, loss=1.0)  # everything from sender to receiver is lost
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 1 for a in world.actors), limit=100.0)
    assert sender not in simulator.state(receiver).statistics
    simulator.set_link(sender, receiver, loss=0.0)
    simulator.run_until(lambda s: all(s.state(a).rounds_done >= 5 for a in world.actors), limit=100.0)
    held = simulator.state(receiver).statistics[sender]
    assert held.sha256 == simulator.state(world.actors[0]).statistics[sender].sha256
    # Once to each of three peers, once more to the one that lost it; then acknowledged by all.
    assert simulator.state(sender).counters["sent:statistics"] == 4
    assert {peer for (_, peer), digest in simulator.state(sender).statistics_acked.items()} == set(
        world.actors
    ) - {sender}


def test_statistics_from_strangers_other_groups_or_malformed_are_dropped() -> None:
    world = _world(1)
    world.simulator.run_until(lambda s: all(s.state(a).rounds_done >= 1 for a in world.actors), limit=100.0)
    me, peer = world.actors[0], world.actors[1]
    ctx, state = world.simulator.nodes[me].ctx, world.simulator.state(me)
    assert state.membership is not None
    group = state.membership.group.iri
    good = state.statistics[peer]

    def deliver(sender: str, statistics: CoListeningStatistics) -> dict[str, int]:
        message = ShareStatistics(
            id=f"{sender}/activities/x-9", actor=sender, to=(me,), statistics=statistics
        )
        after, outbox = step(ctx, state, [Envelope(sender, message)], 0.0)
        assert not [m for m in outbox if isinstance(m, ShareStatistics)]
        acks = [m for m in outbox if isinstance(m, AcceptStatistics)]
        assert len(acks) == after.counters.get("received:statistics", 0) - state.counters.get(
            "received:statistics", 0
        )
        return {k: after.counters.get(k, 0) - state.counters.get(k, 0) for k in after.counters}

    stranger = "https://elsewhere.example/nodes/x"
    assert deliver(stranger, good)["dropped:not-a-member"] == 1
    assert deliver(peer, CoListeningStatistics(f"{group}-other", good.data))["dropped:not-my-group"] == 1
    assert deliver(peer, CoListeningStatistics(group, b"garbage"))["dropped:malformed-statistics"] == 1
    assert deliver(peer, good)["received:statistics"] == 1
    # A group that does not ask for statistics gets none, and ignores any it is sent.
    quiet = recsys_fungiverse(2, params=SMALL, group_size=2, embedding_dim=8, max_rounds=1)
    quiet.simulator.run_until(lambda s: all(s.state(a).rounds_done >= 1 for a in quiet.actors), limit=100.0)
    assert all("sent:statistics" not in quiet.simulator.state(a).counters for a in quiet.actors)


def _http_node(world: RecsysFungiverse, index: int, base: str, ctx: NodeContext) -> FungusNode:
    actor = f"{base}/nodes/node{index}"
    weights = world.learner(world.actors[index]).initial_weights(index)
    founds = (
        [
            founded_group(
                actor,
                "#jazz",
                shapes_of(shared_part(weights)),
                aggregation_rule="https://w3id.org/spore/ns#WeightedMean",
                round_timeout=20.0,
                statistics_noise=0.01,
            )
        ]
        if index == 0
        else []
    )
    state = node_state(
        actor, seed=index, weights=weights, architecture=LIGHTGCN, seeks=("#jazz",), founds=founds
    )
    return FungusNode(f"node{index}", ctx, state)


@pytest.mark.slow
def test_two_loopback_hosts_end_with_the_same_summed_statistics(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    world = recsys_fungiverse(2, params=SMALL, group_size=2, embedding_dim=8, max_rounds=2)
    contexts = [
        NodeContext(learner=world.learner(a), train_seconds=1.0, max_rounds=2, announce_interval=2.0)
        for a in world.actors
    ]
    options = HostOptions(autostart=False, announce_from_status=False, poll_seconds=60.0)
    first, first_nodes = start_fungus_host(
        tmp_path / "a", lambda base: [_http_node(world, 0, base, contexts[0])], options=options
    )
    second, second_nodes = start_fungus_host(
        tmp_path / "b",
        lambda base: [_http_node(world, 1, base, contexts[1])],
        options=replace(options, peers=(first.runtime.config.base_url,)),
    )
    try:
        first_nodes.options = replace(options, peers=(second.runtime.config.base_url,))
        first.call(first_nodes.poll_peers())
        second.call(second_nodes.poll_peers())
        epoch = time.monotonic() + 0.5
        first.call(first_nodes.begin(epoch))
        second.call(second_nodes.begin(epoch))
        nodes = {**first_nodes.nodes, **second_nodes.nodes}
        deadline = time.monotonic() + 90
        while not all(node.done for node in nodes.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        # In the order of the contexts (node0, node1), not of actor IRIs, whose ports are random.
        states = [node.state for node in sorted(nodes.values(), key=lambda node: node.name)]
        fetched = [host.transport.stats.get("artifacts-fetched", 0) for host in (first_nodes, second_nodes)]
    finally:
        second.stop()
        first.stop()
    assert all(state.rounds_done == 2 for state in states)
    parts = [group_statistics(ctx, state) for ctx, state in zip(contexts, states, strict=True)]
    assert len(parts[0]) == 2 and parts[0] == parts[1]  # each holds its own and the other's, the same sum
    assert all(state.counters.get("sent:statistics") == 1 for state in states)
    assert all(count >= 2 for count in fetched)  # statistics and updates crossed as artifacts by GET
    assert all("recall@20" in dict(state.last_round.metrics) for state in states)  # type: ignore[union-attr]
