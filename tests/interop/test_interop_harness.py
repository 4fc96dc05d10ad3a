"""The peers themselves work: Fedify talks to Fedify, and pasture verifies a Fedify actor.

These pin down the harness before it judges our host: if one of them fails, the peer setup
is broken (install, Node, ports), not SPORE's federation code. Each check is the same one the
host tests make, with a second Fedify in the host's place.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from interop_peers import CAVAGE, RFC9421, FedifyPeer, Pasture, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def pair(fedify_factory: Callable[..., FedifyPeer]) -> tuple[FedifyPeer, FedifyPeer]:
    return fedify_factory("alice"), fedify_factory("bob")


def test_lookup_reads_the_actor_document(pair: tuple[FedifyPeer, FedifyPeer]) -> None:
    alice, bob = pair

    found = alice.lookup(bob.actor)

    assert found["ok"], found
    assert found["type"] == "Person"
    assert found["actor"]["preferredUsername"] == "bob"
    assert found["actor"]["publicKeyOwner"] == bob.actor


def test_follow_is_accepted_and_a_hashtag_survives(pair: tuple[FedifyPeer, FedifyPeer]) -> None:
    alice, bob = pair

    follow = alice.send("Follow", bob.actor)
    note = alice.send("Create-Note", bob.actor, hashtag="mycelium")

    assert follow["ok"] and note["ok"], (follow, note, bob.diagnostics())
    accept = alice.wait_received("Accept")
    assert accept["actor"] == bob.actor
    create = bob.wait_received("Create")
    assert create["parsed"]["hashtags"] == ["#mycelium"]
    assert create["parsed"]["tags"][0]["href"].endswith("/tags/mycelium")


@pytest.mark.parametrize("scheme", [RFC9421, CAVAGE])
def test_first_knock_scheme_is_chosen_per_send(pair: tuple[FedifyPeer, FedifyPeer], scheme: str) -> None:
    alice, bob = pair

    sent = alice.send("Block", bob.actor, scheme=scheme)

    assert sent["ok"], sent
    assert [(a["scheme"], a["status"]) for a in sent["attempts"]] == [(scheme, 202)]
    assert any(r["scheme"] == scheme and r["status"] == 202 for r in bob.log()["inbound"])


def test_a_wrong_key_is_refused_in_both_schemes(pair: tuple[FedifyPeer, FedifyPeer]) -> None:
    alice, bob = pair

    sent = alice.send("Block", bob.actor, wrongKey=True)

    assert not sent["ok"]
    assert sorted((a["scheme"], a["status"]) for a in sent["attempts"]) == [(CAVAGE, 401), (RFC9421, 401)]
    wait_until(lambda: any(u["id"] == sent["id"] for u in bob.log()["unverified"]), what="unverified Block")
    assert all(b["id"] != sent["id"] for b in bob.received("Block"))


def test_pasture_accepts_signed_and_refuses_unsigned_posts(
    pasture: Pasture, pair: tuple[FedifyPeer, FedifyPeer]
) -> None:
    # A plain peer: with --check-get-signatures, Fedify fetches the keys of claire and frank
    # unsigned to check their signed GETs, and they refuse it (the authorized-fetch deadlock).
    result, steps = pasture.verify(pair[0].actor)

    assert result["webfinger"] is True, steps
    assert {name: row["post_inbox"] for name, row in result.items() if name != "webfinger"} == {
        "alice": False,
        "dean": False,
        "bob": True,
        "claire": True,
        "emily": True,
        "frank": True,
    }, steps
