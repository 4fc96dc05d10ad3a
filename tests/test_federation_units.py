"""Pure parts of federation: delivery policy and queue, key cache, WebFinger, keys, fan-out, Note shape."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from pathlib import Path

import pytest

from federation.actors import ActorDirectory
from federation.config import GroupSpec, HostConfig, NodeSpec
from federation.delivery import CircuitBreaker, DeliveryQueue, Outcome, backoff_delay, classify_status
from federation.inbox import InboxPipeline, Verdict
from federation.keyring import KeyRing, KeyUnavailable, key_from_document
from federation.keys import ActorKey, generate_rsa_key, load_or_create_key
from federation.outbox import Outbox, PrivateDataLeak, fan_out, note_for, refuse_private_graph
from federation.ratelimit import RateLimiter
from federation.signatures import SignedRequest, sign_cavage
from federation.state import FederationState, Recipient
from federation.vocab import with_as2_type
from federation.webfinger import LookupFailure, WebFingerError, lookup


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (202, Outcome.DELIVERED),
        (200, Outcome.DELIVERED),
        (404, Outcome.PERMANENT),
        (410, Outcome.PERMANENT),
        (400, Outcome.PERMANENT),
        (401, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)
def test_classify_status(status: int | None, outcome: str) -> None:
    assert classify_status(status) == outcome


def test_backoff_is_exponential_with_full_jitter() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # the ceiling of each jitter interval

    assert [backoff_delay(n, Top()) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert backoff_delay(30, Top()) == 6 * 3600.0  # capped
    rng = random.Random(7)
    assert all(0.0 <= backoff_delay(3, rng) <= 120.0 for _ in range(100))


def test_circuit_breaker_opens_and_closes() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=10.0)
    breaker.record("a.example", False, 0.0)
    assert not breaker.is_open("a.example", 0.0)
    breaker.record("a.example", False, 1.0)
    assert breaker.is_open("a.example", 5.0) and not breaker.is_open("b.example", 5.0)
    assert not breaker.is_open("a.example", 11.5)
    breaker.record("a.example", True, 12.0)
    assert not breaker.is_open("a.example", 12.0)


def test_queue_survives_restart_and_retries_with_backoff(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "deliveries.sqlite3"
    queue = DeliveryQueue(path, clock=lambda: now[0], rng=random.Random(1))
    assert queue.enqueue("https://b.example/inbox", "https://a.example/nodes/x", b"{}")
    queue.close()

    reopened = DeliveryQueue(path, clock=lambda: now[0], rng=random.Random(1))
    assert len(reopened) == 1
    statuses = iter([503, 202])
    attempts: list[str] = []

    async def send(delivery) -> int:
        attempts.append(delivery.inbox)
        return next(statuses)

    assert asyncio.run(reopened.run_once(send)) == 1
    assert len(reopened) == 1 and reopened.due() == []  # rescheduled into the future
    now[0] += 31.0  # first backoff is at most 30 s
    assert asyncio.run(reopened.run_once(send)) == 1
    assert len(reopened) == 0 and attempts == ["https://b.example/inbox"] * 2


def test_gone_inbox_is_dropped_for_good(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path / "q.sqlite3", clock=lambda: 0.0, rng=random.Random(1))
    queue.enqueue("https://b.example/inbox", "https://a.example/nodes/x", b"{}")

    async def send(delivery) -> int:
        return 410

    asyncio.run(queue.run_once(send))
    assert len(queue) == 0


def test_full_queue_refuses_with_one_clear_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    queue = DeliveryQueue(tmp_path / "q.sqlite3", clock=lambda: 0.0, rng=random.Random(1), capacity=2)
    assert queue.enqueue("https://b.example/inbox", "s", b"1") and queue.enqueue(
        "https://c.example/inbox", "s", b"2"
    )
    with caplog.at_level(logging.ERROR, logger="federation.delivery"):
        assert not queue.enqueue("https://d.example/inbox", "s", b"3")
    assert len(queue) == 2
    assert [r.message for r in caplog.records if "delivery queue full" in r.message] != []


def test_fan_out_uses_one_shared_inbox_per_host() -> None:
    recipients = [
        Recipient("https://m.example/users/1", "https://m.example/users/1/inbox", "https://m.example/inbox"),
        Recipient("https://m.example/users/2", "https://m.example/users/2/inbox", "https://m.example/inbox"),
        Recipient("https://solo.example/u", "https://solo.example/u/inbox", None),
    ]
    assert fan_out(recipients) == ["https://m.example/inbox", "https://solo.example/u/inbox"]


def test_keys_are_created_once_and_never_regenerated(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.pem"
    first = load_or_create_key(path)
    second = load_or_create_key(path)
    assert first.private_numbers() == second.private_numbers()
    assert first.key_size >= 2048
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _actor_document(actor_id: str, key: ActorKey) -> dict:
    return {
        "id": actor_id,
        "type": "Service",
        "inbox": f"{actor_id}/inbox",
        "publicKey": {"id": key.key_id, "owner": actor_id, "publicKeyPem": key.public_key_pem},
    }


def test_key_from_document_checks_owner_and_origin() -> None:
    actor = "https://a.example/nodes/x"
    key = ActorKey(f"{actor}#main-key", generate_rsa_key())
    assert key_from_document(key.key_id, _actor_document(actor, key)).owner == actor
    with pytest.raises(KeyUnavailable):
        key_from_document("https://a.example/nodes/x#other-key", _actor_document(actor, key))
    stolen = {"id": key.key_id, "owner": "https://victim.example/u", "publicKeyPem": key.public_key_pem}
    with pytest.raises(KeyUnavailable):
        key_from_document(key.key_id, stolen)


def test_keyring_fetches_once_caches_and_refetches_once_on_rotation() -> None:
    actor = "https://a.example/nodes/x"
    keys = [ActorKey(f"{actor}#main-key", generate_rsa_key()) for _ in range(2)]
    served = [keys[0]]
    now = [0.0]

    async def fetch(url: str) -> dict:
        await asyncio.sleep(0)
        return _actor_document(actor, served[0])

    async def scenario() -> None:
        ring = KeyRing(fetch, clock=lambda: now[0], min_refresh_seconds=60.0)
        first = await asyncio.gather(*(ring.get(keys[0].key_id) for _ in range(20)))
        assert ring.fetches == 1 and {k.public_key.public_numbers() for k in first} == {
            keys[0].private_key.public_key().public_numbers()
        }
        served[0] = keys[1]  # the peer rotates its key
        assert (await ring.get(keys[0].key_id, refresh=True)).public_key.public_numbers() == keys[
            0
        ].private_key.public_key().public_numbers()
        assert ring.fetches == 1  # a refetch within a minute of the last one is refused (no amplification)
        now[0] = 61.0
        rotated = await ring.get(keys[0].key_id, refresh=True)
        assert (
            ring.fetches == 2
            and rotated.public_key.public_numbers() == keys[1].private_key.public_key().public_numbers()
        )

    asyncio.run(scenario())


@pytest.fixture()
def directory(tmp_path: Path) -> ActorDirectory:
    config = HostConfig(
        base_url="https://spore.example",
        data_dir=tmp_path,
        nodes=(NodeSpec("alice"),),
        groups=(GroupSpec("jazz", "#jazz"),),
    )
    return ActorDirectory(config)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("acct:alice@spore.example", "https://spore.example/nodes/alice"),
        ("alice@spore.example", "https://spore.example/nodes/alice"),
        ("acct:jazz@spore.example", "https://spore.example/groups/jazz"),
        ("https://spore.example/nodes/alice", "https://spore.example/nodes/alice"),
        ("acct:spore.example@spore.example", "https://spore.example/actor"),
        (None, LookupFailure.MALFORMED),
        ("acct:alice", LookupFailure.MALFORMED),
        ("acct:@spore.example", LookupFailure.MALFORMED),
        ("acct:bob@spore.example", LookupFailure.UNKNOWN),
        ("acct:alice@other.example", LookupFailure.UNKNOWN),
    ],
)
def test_webfinger_lookup(directory: ActorDirectory, resource: str | None, expected: str) -> None:
    found = lookup(resource, directory, "spore.example")
    if isinstance(found, WebFingerError):
        assert found.failure == expected
    else:
        assert found.id == expected


def test_actor_document_shape(directory: ActorDirectory) -> None:
    document = directory.document(directory.nodes["alice"])
    assert document["type"] == "Service" and document["preferredUsername"] == "alice"
    assert document["endpoints"]["sharedInbox"] == "https://spore.example/inbox"
    assert document["publicKey"]["id"] == "https://spore.example/nodes/alice#main-key"
    assert document["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "https://w3id.org/spore/context.jsonld" in document["@context"]
    assert document["sparqlEndpoint"] == "https://spore.example/nodes/alice/sparql"
    group = directory.document(directory.groups["jazz"])
    assert group["type"] == "Group" and group["tag"][0] == {
        "type": "Hashtag",
        "name": "#jazz",
        "href": "https://spore.example/tags/jazz",
    }


def test_note_carries_hashtag_in_tag_and_content(directory: ActorDirectory) -> None:
    note = note_for(
        base_url="https://spore.example",
        actor=directory.nodes["alice"],
        note_id="https://spore.example/objects/1",
        text="Model round 3: recall@20 0.21 <better>",
        hashtag="#jazz",
        about="https://spore.example/objects/0",
        published="2026-01-01T00:00:00Z",
    )
    assert note["tag"] == [{"type": "Hashtag", "name": "#jazz", "href": "https://spore.example/tags/jazz"}]
    assert (
        'href="https://spore.example/tags/jazz" class="mention hashtag" rel="tag">#<span>jazz</span></a>'
        in note["content"]
    )
    assert "&lt;better&gt;" in note["content"]  # the text is escaped, not interpreted
    assert 'href="https://spore.example/objects/0"' in note["content"]
    assert note["to"] == ["https://www.w3.org/ns/activitystreams#Public"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Decision", ["Object", "Decision"]),
        (["Evaluation"], ["Object", "Evaluation"]),
        ("Note", ["Note"]),
        (["Document", "ModelSnapshot"], ["Document", "ModelSnapshot"]),
    ],
)
def test_published_objects_carry_an_as2_type(kind, expected) -> None:
    # Fedify refuses "Invalid type: https://w3id.org/spore/ns#Decision" when no AS2 type is present.
    assert with_as2_type(kind) == expected


def test_inbox_refetches_a_rotated_key_once_then_accepts() -> None:
    actor = "https://a.example/nodes/x"
    old, new = (ActorKey(f"{actor}#main-key", generate_rsa_key()) for _ in range(2))
    served = [old]
    now = [1_800_000_000.0]

    async def fetch(url: str) -> dict:
        return _actor_document(actor, served[0])

    accepted: list[dict] = []

    async def accept(activity: dict, key, owner) -> bool:
        accepted.append(activity)
        return True

    ring = KeyRing(fetch, clock=lambda: now[0], min_refresh_seconds=60.0)
    pipeline = InboxPipeline(
        keyring=ring,
        limiter=RateLimiter(rate=100, burst=100, clock=lambda: now[0]),
        clock=lambda: now[0],
        first_sighting=lambda activity_id, at: True,
        accept=accept,
        is_blocked=lambda local, remote: False,
        max_body_bytes=10_000,
        max_depth=10,
        window_seconds=3600,
    )

    def request(key: ActorKey, number: int) -> SignedRequest:
        body = json.dumps(
            {"id": f"{actor}/a/{number}", "type": "Like", "actor": actor, "object": "x"}
        ).encode()
        headers = sign_cavage(method="POST", url="https://b.example/inbox", body=body, key=key, now=now[0])
        return SignedRequest("POST", "https://b.example/inbox", headers, body)

    async def scenario() -> None:
        assert (await pipeline.receive(request(old, 1))).verdict is Verdict.ACCEPTED
        served[0] = new  # the peer rotates its key
        now[0] += 120
        assert (await pipeline.receive(request(new, 2))).verdict is Verdict.ACCEPTED
        assert ring.fetches == 2  # once at first sight, once after the failure: no more
        forged = await pipeline.receive(request(ActorKey(f"{actor}#main-key", generate_rsa_key()), 3))
        assert forged.verdict is Verdict.BAD_SIGNATURE and forged.status == 401
        assert ring.fetches == 2  # a refetch within a minute of the last one is not repeated

    asyncio.run(scenario())
    assert [activity["id"] for activity in accepted] == [f"{actor}/a/1", f"{actor}/a/2"]


def test_outgoing_payloads_naming_a_private_graph_are_refused() -> None:
    leak = {
        "id": "https://a.example/activities/1",
        "object": {"wasDerivedFrom": ["https://a.example/nodes/x/graphs/private"]},
    }
    with pytest.raises(PrivateDataLeak, match="private graph"):
        refuse_private_graph(leak)
    refuse_private_graph(
        {"id": "https://a.example/activities/2", "object": "https://a.example/nodes/x/graphs/models"}
    )


def test_outbox_sends_nothing_when_the_check_refuses(tmp_path: Path, directory: ActorDirectory) -> None:
    queue = DeliveryQueue(tmp_path / "q.sqlite3", clock=lambda: 0.0, rng=random.Random(1))
    state = FederationState(tmp_path / "f.sqlite3")
    outbox = Outbox(
        base_url="https://spore.example", actors=directory, state=state, deliveries=queue, clock=lambda: 0.0
    )
    alice = directory.nodes["alice"]
    private = "https://spore.example/nodes/alice/graphs/private"
    with pytest.raises(PrivateDataLeak):
        outbox.publish(
            alice, {"id": "https://spore.example/objects/r1", "source": private}, text="t", hashtag="#jazz"
        )
    assert len(queue) == 0 and state.count_outgoing(alice.id) == 0
    assert state.get_object("https://spore.example/objects/r1") is None  # nor served by GET


def test_seen_ids_are_idempotent_and_pruned(tmp_path: Path) -> None:
    state = FederationState(tmp_path / "f.sqlite3")
    assert state.first_sighting("https://a.example/a/1", 100.0)
    assert not state.first_sighting("https://a.example/a/1", 200.0)  # a replay
    assert state.first_sighting("https://a.example/a/2", 300.0)
    assert state.forget_seen_before(250.0) == 1
    assert state.first_sighting("https://a.example/a/1", 400.0)  # forgotten after the retention time
    assert not state.first_sighting("https://a.example/a/2", 400.0)
