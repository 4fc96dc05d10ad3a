"""The protocol driving LightGCN on the synthetic music graph, with the privacy check on every payload."""

from __future__ import annotations

import json

import pytest

from agents.protocol.learning import shared_part
from agents.protocol.wire import WireCodec, WirePayload
from agents.recsys_scenario import deal_listeners, recsys_fungiverse, synthetic_tensors
from knowledge.music import SynthParams
from models.compression import full_copy_bytes
from models.privacy import PrivacyViolation, check_outgoing

SMALL = SynthParams(listeners=48, artists=150, seed=3)


def test_listeners_are_dealt_to_exactly_one_node_with_local_ids() -> None:
    tensors = synthetic_tensors(SMALL)
    dealt = deal_listeners(tensors, 4, seed=1)
    owners = [int(listener) for node in dealt for listener in node.listeners]
    assert sorted(owners) == list(range(tensors.num_listeners))
    for node in dealt:
        count = int(node.listeners.numel())
        assert int(node.train_edges[0].max()) < count and int(node.held_out[0].max()) < count
    assert (
        sum(node.train_edges.shape[1] + node.held_out.shape[1] for node in dealt) == tensors.num_interactions
    )


@pytest.mark.slow
def test_lightgcn_nodes_co_train_and_never_send_private_data() -> None:
    payloads: list[tuple[str, WirePayload]] = []
    world = recsys_fungiverse(
        4,
        params=SMALL,
        group_size=4,
        embedding_dim=8,
        max_rounds=2,
        statistics_noise=0.01,  # co-listening statistics leave the node too, and are checked below
        simulator_options={"codec": WireCodec(), "tap": lambda s, r, p: payloads.append((s, p))},
    )
    world.simulator.run(30.0)
    states = [world.simulator.state(actor) for actor in world.actors]
    assert all(state.rounds_done == 2 for state in states)
    assert len({state.last_round.merged_sha256 for state in states}) == 1  # type: ignore[union-attr]
    assert all(dict(state.last_round.metrics)["recall@20"] >= 0 for state in states)  # type: ignore[union-attr]
    # Listener tables differ in size per node and stay home; artist tables are the shared model.
    assert set(shared_part(states[0].weights)) == {"artist_embedding.weight"}
    listener_iris = {
        actor: [world.tensors.listeners[int(i)] for i in node.listeners]
        for actor, node in zip(world.actors, world.data, strict=True)
    }
    kinds = set()
    for sender, payload in payloads:
        activity = json.loads(payload.activity)
        kinds.add(activity["type"])
        described = activity.get("object")
        if isinstance(described, dict) and "spore:CoListeningStatistics" in described["type"]:
            kinds.add("statistics")
        check_outgoing(payload.activity, listener_iris[sender])
        for _, artifact in payload.artifacts:
            check_outgoing(artifact, listener_iris[sender])
    assert {"Join", "Accept", "Create", "statistics"} <= kinds
    # The check is not vacuous: the same payload with one listener IRI in it is refused.
    sender, payload = payloads[-1]
    doctored = payload.activity.replace(
        b'"type"', f'"summary":"{listener_iris[sender][0]}","type"'.encode(), 1
    )
    with pytest.raises(PrivacyViolation):
        check_outgoing(doctored, listener_iris[sender])


@pytest.mark.slow
def test_compressed_lightgcn_updates_are_small_agreed_and_private() -> None:
    payloads: list[tuple[str, WirePayload]] = []
    # A catalogue large enough that the artifact's fixed header (about 400 bytes) is not the story.
    world = recsys_fungiverse(
        4,
        params=SynthParams(listeners=48, artists=1000, seed=3),
        group_size=4,
        embedding_dim=16,
        max_rounds=3,
        row_fraction=0.05,
        quantize=True,
        simulator_options={"codec": WireCodec(), "tap": lambda s, r, p: payloads.append((s, p))},
    )
    world.simulator.run(30.0)
    states = [world.simulator.state(actor) for actor in world.actors]
    assert all(state.rounds_done == 3 for state in states)
    assert len({state.last_round.merged_sha256 for state in states}) == 1  # type: ignore[union-attr]
    full_copy = full_copy_bytes({name: shape for name, shape in states[0].blueprint.shared_shapes})
    updates = [(s, p) for s, p in payloads if json.loads(p.activity)["type"] == "Create"]
    assert updates
    listener_iris = {
        actor: [world.tensors.listeners[int(i)] for i in node.listeners]
        for actor, node in zip(world.actors, world.data, strict=True)
    }
    for sender, payload in updates:
        assert json.loads(payload.activity)["object"]["spore:format"] == "spore-delta/1"
        (_, artifact), *_ = payload.artifacts
        assert len(artifact) <= 0.05 * full_copy
        check_outgoing(artifact, listener_iris[sender])
    assert all(state.residual for state in states)  # what was not sent waits for the next round
