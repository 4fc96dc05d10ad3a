"""The node runtime over HTTP: roles, blueprints, checkpoints, the transport's pure parts, one live host."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import torch

from agents.fungus_host import start_fungus_host
from agents.hosting import HostOptions, sender_allowed
from agents.http_transport import (
    ArtifactStore,
    PeerDirectory,
    artifact_links,
    is_protocol_activity,
    outgoing_activity,
)
from agents.node import SEQUENCE_GAP, FungusNode, founded_group, load_checkpoint, node_state, save_checkpoint
from agents.node_setup import BlueprintError, assign_roles, read_blueprint
from agents.protocol.context import NodeContext
from agents.protocol.learners import LinearLearner
from agents.protocol.messages import Create, MessageError, ModelUpdate
from agents.protocol.state import Membership

ROOT = Path(__file__).resolve().parent.parent
LINEAR = "https://w3id.org/spore/ns#LinearModel"
RULE = "https://w3id.org/spore/ns#WeightedMean"


def linear_node(actor: str, name: str, *, found: bool) -> FungusNode:
    learner = LinearLearner(torch.randn(20, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(20))
    weights = learner.initial_weights(1)
    founds = (
        [founded_group(actor, "#jazz", (("artist_weight", (3,)),), aggregation_rule=RULE)] if found else []
    )
    state = node_state(actor, seed=1, weights=weights, architecture=LINEAR, seeks=("#jazz",), founds=founds)
    return FungusNode(name, NodeContext(learner=learner, train_seconds=0.2, max_rounds=2), state)


# -- roles and blueprints -------------------------------------------------------------------------


def test_roles_found_one_group_per_first_hashtag_and_deal_every_listener_once() -> None:
    known = {
        "http://b.test/nodes/x": ("#jazz", "#rock"),
        "http://a.test/nodes/y": ("#jazz",),
        "http://c.test/nodes/z": ("#rock",),
        "http://c.test/nodes/w": ("#folk", "#jazz"),
    }
    roles = assign_roles(known)
    founders = {role.founds: actor for actor, role in roles.items() if role.founds}
    assert founders == {
        "#jazz": "http://a.test/nodes/y",
        "#rock": "http://c.test/nodes/z",
        "#folk": "http://c.test/nodes/w",
    }
    shards = sorted(role.shard for role in roles.values())
    assert shards == [(0, 4), (1, 4), (2, 4), (3, 4)]
    # Every host computes the same roles from the same known nodes, whatever order it learnt them in.
    assert assign_roles(dict(reversed(known.items()))) == roles


def test_read_blueprint_takes_the_training_configuration() -> None:
    blueprint = read_blueprint(ROOT / "examples" / "blueprints" / "jazz_explorer.ttl")
    assert blueprint.name == "jazz_explorer"
    assert blueprint.hashtags == ("#bebop", "#jazz")
    assert blueprint.architecture.endswith("#LightGCN")
    assert (blueprint.embedding_dimension, blueprint.layers, blueprint.local_epochs) == (64, 3, 2)
    assert blueprint.aggregation_rule.endswith("#TrimmedMean")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not turtle", "not readable Turtle"),
        (
            "@prefix spore: <https://w3id.org/spore/ns#> . <#b> spore:seeksHashtag '#x' .",
            "expected one blueprint",
        ),
        (
            "@prefix spore: <https://w3id.org/spore/ns#> . <#b> spore:nodeName 'n' ;"
            " spore:seeksHashtag '#x' ; spore:trains [ spore:architecture spore:Transformer ] .",
            "no architecture",
        ),
        (
            "@prefix spore: <https://w3id.org/spore/ns#> . <#b> spore:nodeName 'n' ;"
            " spore:trains [ spore:architecture spore:LightGCN ] .",
            "seeks no hashtag",
        ),
    ],
)
def test_unusable_blueprints_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.ttl"
    path.write_text(text)
    with pytest.raises(BlueprintError, match=message) as raised:
        read_blueprint(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


# -- checkpoints ----------------------------------------------------------------------------------


def test_checkpoint_resumes_round_model_sequence_and_founded_group(tmp_path: Path) -> None:
    node = linear_node("http://a.test/nodes/n", "n", found=True)
    owned = next(iter(node.state.owned.values()))
    trained = {name: tensor + 1.0 for name, tensor in node.state.weights.items()}
    state = node.state.__class__(
        **{
            **node.state.__dict__,
            "weights": trained,
            "sequence": 17,
            "rounds_done": 4,
            "membership": Membership(group=owned.info, members=frozenset({node.actor}), round=4),
        }
    )
    save_checkpoint(state, tmp_path / "n")
    checkpoint = load_checkpoint(tmp_path / "n")
    assert checkpoint is not None
    assert (checkpoint.round, checkpoint.rounds_done, checkpoint.founded) == (4, 4, "#jazz")
    resumed = checkpoint.resume(linear_node(node.actor, "n", found=True).state)
    for name, tensor in trained.items():
        assert torch.equal(resumed.weights[name], tensor)
    assert resumed.sequence == 17 + SEQUENCE_GAP  # ids minted after the checkpoint are never reused
    assert next(iter(resumed.owned.values())).last_seen == {node.actor: 4}  # the group goes on at round 4
    assert load_checkpoint(tmp_path / "missing") is None


# -- the transport's pure parts -------------------------------------------------------------------


def update_message(actor: str) -> Create:
    update = ModelUpdate(
        group=f"{actor}/groups/jazz", round=0, parameters={"artist_weight": torch.ones(3)}, samples=2
    )
    return Create(
        id=f"{actor}/activities/update-1", actor=actor, to=("http://b.test/nodes/m",), update=update
    )


def test_outgoing_create_names_its_object_and_links_its_artifact_by_hash() -> None:
    message = update_message("http://a.test/nodes/n")
    activity, artifacts = outgoing_activity(message)
    assert activity["object"]["id"] == f"{message.id}/object"
    assert is_protocol_activity(activity)
    assert not is_protocol_activity({"@context": "https://www.w3.org/ns/activitystreams", "type": "Follow"})
    [(digest, url)] = artifact_links(activity)
    assert digest == message.update.sha256 and url == f"http://a.test/nodes/n/artifacts/{digest}"
    assert set(artifacts) == {digest}
    activity["object"]["spore:sha256"] = "not-a-digest"
    with pytest.raises(MessageError):
        artifact_links(activity)


def test_artifact_store_serves_only_the_owners_artifacts_and_stays_within_its_bytes() -> None:
    store = ArtifactStore(max_bytes=10)
    store.put("http://a/nodes/n", "1" * 64, b"123456")
    assert store.serve("http://a/nodes/other", "1" * 64) is None
    assert store.serve("http://a/nodes/n", "1" * 64) == b"123456"
    assert store.served == {"http://a/nodes/n": 6}
    store.put("http://a/nodes/n", "2" * 64, b"abcdef")  # 12 bytes held: the oldest goes
    assert store.get("1" * 64) is None and store.get("2" * 64) is not None


def test_public_activities_route_to_the_nodes_that_seek_their_hashtags() -> None:
    directory = PeerDirectory()
    directory.learn("http://a/nodes/1", seeks=("#jazz",))
    directory.learn("http://b/nodes/2", seeks=("#rock", "#jazz"))
    directory.learn("http://b/nodes/3", seeks=("#rock",))
    assert directory.followers(("#jazz",)) == ["http://a/nodes/1", "http://b/nodes/2"]
    assert directory.followers(()) == ["http://a/nodes/1", "http://b/nodes/2", "http://b/nodes/3"]


def test_an_allow_list_admits_only_its_hosts_and_this_one() -> None:
    own = "127.0.0.1:8001"
    assert sender_allowed("http://10.0.0.9:80/nodes/x", own, ())  # no list: everybody
    allowed = ("127.0.0.1:8002",)
    assert sender_allowed("http://127.0.0.1:8002/nodes/x", own, allowed)
    assert sender_allowed("http://127.0.0.1:8001/nodes/y", own, allowed)
    assert not sender_allowed("http://127.0.0.1:8003/nodes/z", own, allowed)
    assert not sender_allowed("not an iri", own, allowed)


# -- one live host --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_live_host_serves_status_and_artifacts_and_counts_undecodable_updates(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    host, nodes = start_fungus_host(
        tmp_path / "a", lambda base: [linear_node(f"{base}/nodes/owner", "owner", found=True)]
    )
    peer, peer_nodes = start_fungus_host(
        tmp_path / "b",
        lambda base: [linear_node(f"{base}/nodes/eve", "eve", found=False)],
        options=HostOptions(autostart=False),
    )
    try:
        base = host.runtime.config.base_url
        owner = f"{base}/nodes/owner"
        deadline = time.monotonic() + 20
        while not nodes.nodes[owner].done and time.monotonic() < deadline:
            time.sleep(0.1)
        status = httpx.get(f"{base}/status").json()
        [entry] = status["nodes"]
        assert entry["actor"] == owner and entry["group"]["hashtag"] == "#jazz"
        assert entry["round"] == 2 and entry["done"] and status["done"]
        assert entry["owns"][0]["announce"]["type"] == "Announce"
        assert httpx.get(f"{base}/nodes/owner/artifacts/{'0' * 64}").status_code == 404
        assert httpx.get(f"{base}/nodes/owner/artifacts/XYZ").status_code == 400

        # A peer's update whose artifact it does not serve reaches the node as garbage, and is counted.
        eve = f"{peer.runtime.config.base_url}/nodes/eve"
        message = update_message(eve)
        message = Create(id=message.id, actor=eve, to=(owner,), update=message.update)
        activity, _artifacts = outgoing_activity(message)

        async def send() -> None:
            peer.runtime.outbox.send(peer.runtime.actors.by_id(eve), activity, [f"{base}/inbox"])

        peer.call(send())
        deadline = time.monotonic() + 20
        while (
            nodes.nodes[owner].state.counters.get("dropped:malformed", 0) == 0 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert nodes.nodes[owner].state.counters.get("dropped:malformed") == 1
        assert nodes.transport.stats.get("malformed") == 1
        assert peer_nodes.nodes[eve].state.membership is None
    finally:
        peer.stop()
        host.stop()


class BrokenLearner(LinearLearner):
    def train(self, weights, *, seed):  # type: ignore[no-untyped-def]
        raise RuntimeError("out of memory")


@pytest.mark.slow
def test_a_failing_step_is_logged_and_counted_and_the_host_goes_on(tmp_path: Path) -> None:
    def make(base: str) -> list[FungusNode]:
        node = linear_node(f"{base}/nodes/owner", "owner", found=True)
        learner = BrokenLearner(node.ctx.learner.features, node.ctx.learner.targets)
        node.ctx = NodeContext(learner=learner, train_seconds=0.1, max_rounds=2)
        return [node]

    host, nodes = start_fungus_host(tmp_path / "a", make)
    try:
        deadline = time.monotonic() + 20
        while nodes.transport.stats.get("failed-steps", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert nodes.transport.stats["failed-steps"] >= 2  # retried, not spinning, not dead
        status = httpx.get(f"{host.runtime.config.base_url}/status").json()
        assert status["transport"]["failed-steps"] >= 2 and status["nodes"][0]["rounds_done"] == 0
    finally:
        host.stop()
