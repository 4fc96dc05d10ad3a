"""The inbox hot path's bookkeeping: ids written in batches, refused activities not taken for replays."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import pytest

from federation.config import HostConfig, Limits, NodeSpec
from federation.inbox import Verdict
from federation.keys import ActorKey
from federation.runtime import HostRuntime
from federation.signatures import SignedRequest, sign_cavage
from federation.state import FederationState
from federation.vocab import origin_of, same_origin
from knowledge.store import EmbeddedStore


def count_rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])


def test_sightings_are_checked_at_once_and_written_in_one_batch(tmp_path: Path) -> None:
    path = tmp_path / "federation.sqlite3"
    state = FederationState(path)
    assert state.first_sighting("https://a.example/1", 1.0)
    assert state.first_sighting("https://a.example/2", 1.0)
    assert not state.first_sighting("https://a.example/1", 2.0)  # a replay, before any write
    assert count_rows(path) == 0
    assert state.write_sightings() == 2
    assert count_rows(path) == 2
    assert not state.first_sighting("https://a.example/2", 3.0)  # a replay, from the table
    state.close()


def test_closing_writes_what_was_sighted_so_a_restart_still_refuses_replays(tmp_path: Path) -> None:
    path = tmp_path / "federation.sqlite3"
    state = FederationState(path)
    assert state.first_sighting("https://a.example/1", 1.0)
    state.close()
    again = FederationState(path)
    assert not again.first_sighting("https://a.example/1", 2.0)
    again.close()


def test_a_forgotten_sighting_is_new_again(tmp_path: Path) -> None:
    state = FederationState(tmp_path / "federation.sqlite3")
    assert state.first_sighting("https://a.example/1", 1.0)
    state.forget_sighting("https://a.example/1")
    assert state.first_sighting("https://a.example/1", 2.0)
    state.close()


def test_an_activity_refused_as_busy_is_accepted_when_retried(tmp_path: Path) -> None:
    """Queue full -> 503; the retry must be processed, not acknowledged as a duplicate and dropped."""
    config = HostConfig(
        base_url="http://receiver.test",
        data_dir=tmp_path,
        nodes=(NodeSpec("ada"), NodeSpec("bob")),
        limits=Limits(inbox_queue_size=1),
    )
    runtime = HostRuntime(config=config, store=EmbeddedStore(), clock=time.time, rng=random.Random(0))
    bob = runtime.actors.nodes["bob"]  # a local signer: its key resolves without HTTP
    key = ActorKey(bob.key.key_id, bob.key.private_key)

    def post(number: int) -> SignedRequest:
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{bob.id}/activities/{number}",
            "type": "Like",
            "actor": bob.id,
            "object": "http://receiver.test/nodes/ada",
        }
        body = json.dumps(activity).encode()
        url = "http://receiver.test/inbox"
        headers = sign_cavage(
            method="POST",
            url=url,
            body=body,
            key=key,
            now=time.time(),
            content_type="application/activity+json",
        )
        return SignedRequest("POST", url, headers, body)

    async def scenario() -> list[Verdict]:
        first = await runtime.pipeline.receive(post(1))
        busy = await runtime.pipeline.receive(post(2))  # the worker is not running: queue stays full
        runtime.processor.queue.get_nowait()
        runtime.processor.queue.task_done()
        retried = await runtime.pipeline.receive(post(2))
        return [first.verdict, busy.verdict, retried.verdict]

    try:
        assert asyncio.run(scenario()) == [Verdict.ACCEPTED, Verdict.BUSY, Verdict.ACCEPTED]
    finally:
        runtime.state.close()
        runtime.deliveries.close()


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ("https://a.example/notes/1", True),
        ("https://a.example", True),
        ("https://a.example?x=1", True),  # not the fast path: the full parse decides
        ("HTTPS://A.EXAMPLE/notes/1", True),
        ("https://a.examplex/notes/1", False),
        ("https://a.example.evil.test/notes/1", False),
        ("https://a.example@evil.test/notes/1", False),
        ("https://a.example:8443/notes/1", False),
        ("http://a.example/notes/1", False),
        ("not a url", False),
    ],
)
def test_same_origin_fast_path_agrees_with_the_full_parse(first: str, expected: bool) -> None:
    actor = "https://a.example/users/bob"
    full = origin_of(first) != "" and origin_of(first) == origin_of(actor)
    assert same_origin(first, actor) is expected is full
