"""Authorized fetch: a host that serves its collections and objects only to signed GETs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from federation.authorized_fetch import ACTOR_FIELDS_UNSIGNED, restricted_actor
from federation.client import FetchError
from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host, start_local_host
from federation.state import Relation
from knowledge.store import EmbeddedStore

AP = {"accept": "application/activity+json"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHost, RunningHost]]:
    sock = bind_loopback()
    config = HostConfig(
        base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        data_dir=tmp_path_factory.mktemp("secure"),
        nodes=(NodeSpec("ada", summary="A node in secure mode."),),
        allow_loopback=True,
        authorized_fetch=True,
    )
    secure = RunningHost(build_host(config, store=EmbeddedStore()), sock).start()
    other = start_local_host(tmp_path_factory.mktemp("other"), nodes=(NodeSpec("bob"),))
    yield secure, other
    secure.stop()
    other.stop()


def url(host: RunningHost, path: str) -> str:
    return host.runtime.config.base_url + path


def test_unsigned_readers_see_only_the_key_view_of_an_actor(hosts: tuple[RunningHost, RunningHost]) -> None:
    secure, _ = hosts
    document = httpx.get(url(secure, "/nodes/ada"), headers=AP).json()
    assert set(document) <= ACTOR_FIELDS_UNSIGNED
    assert document["publicKey"]["id"] == url(secure, "/nodes/ada#main-key")
    assert "summary" not in document and "followers" not in document
    # The instance actor, which signs this host's own GETs, is always whole.
    assert "followers" in httpx.get(url(secure, "/actor"), headers=AP).json()


def test_unsigned_reads_of_collections_are_refused(hosts: tuple[RunningHost, RunningHost]) -> None:
    secure, _ = hosts
    for path in ("/nodes/ada/outbox", "/nodes/ada/followers", "/nodes/ada/following"):
        answer = httpx.get(url(secure, path), headers=AP)
        assert answer.status_code == 401, path
        assert answer.json()["status"] == "unsigned"
        assert answer.headers["www-authenticate"].startswith("Signature")


def test_signed_reads_get_everything_and_federation_still_works(
    hosts: tuple[RunningHost, RunningHost],
) -> None:
    secure, other = hosts
    document = other.call(other.runtime.fetch_signed(url(secure, "/nodes/ada")))
    assert document["summary"] == "A node in secure mode."
    outbox = other.call(other.runtime.fetch_signed(url(secure, "/nodes/ada/outbox")))
    assert outbox["type"] == "OrderedCollection"
    # Keys are fetched as before (unsigned key view, or signed): a Follow is accepted both ways.
    bob = url(other, "/nodes/bob")
    other.call(other.runtime.follow("bob", url(secure, "/nodes/ada")))
    ada = url(secure, "/nodes/ada")

    def settled() -> tuple[str | None, str | None]:
        for _ in range(20):  # the Accept crosses both hosts' queues; a few rounds of settling
            secure.settle()
            other.settle()
            states = (
                secure.runtime.state.relation_state(ada, bob, Relation.FOLLOWER),
                other.runtime.state.relation_state(bob, ada, Relation.FOLLOWING),
            )
            if states == ("accepted", "accepted"):
                break
            time.sleep(0.1)
        return states

    assert settled() == ("accepted", "accepted")


def test_a_blocked_server_cannot_read_even_when_signing(hosts: tuple[RunningHost, RunningHost]) -> None:
    secure, other = hosts
    secure.call(secure.runtime.block("ada", url(other, "/nodes/bob")))
    with pytest.raises(FetchError, match="403"):
        # Signed by the other host's instance actor: the block of bob keeps his whole server out.
        other.call(other.runtime.fetch_signed(url(secure, "/nodes/ada/outbox")))


def test_restricted_actor_keeps_only_the_fields_for_keys_and_delivery() -> None:
    document = {"id": "x", "type": "Service", "publicKey": {}, "summary": "s", "inbox": "i", "name": "n"}
    assert restricted_actor(document) == {"id": "x", "type": "Service", "publicKey": {}, "inbox": "i"}


def test_authorized_fetch_is_off_by_default(tmp_path: Path) -> None:
    host = start_local_host(tmp_path, nodes=(NodeSpec("cy"),))
    try:
        assert httpx.get(url(host, "/nodes/cy/outbox"), headers=AP).status_code == 200
        assert "followers" in httpx.get(url(host, "/nodes/cy"), headers=AP).json()
    finally:
        host.stop()
