"""A SPORE host federating with Fedify 2.3.6, an ActivityPub implementation nobody here wrote.

Both directions and both HTTP signature schemes: Fedify signs its first knock with the scheme a
test picks (RFC 9421 or draft-cavage) and reports whether it had to fall back; our host signs with
draft-cavage by default (and RFC 9421 when asked), and Fedify, serving its actor to signed GETs
only, tells us whether it verified those. Every node below is used by one test, so the tests do
not depend on each other's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_peers import CAVAGE, RFC9421, FedifyPeer, wait_until
from pyoxigraph import NamedNode

from federation.client import SigningScheme
from federation.state import Relation

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NODES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda")
OUR_SCHEMES = {SigningScheme.CAVAGE: CAVAGE, SigningScheme.RFC9421: RFC9421}


@pytest.fixture(scope="module")
def host(spore_hosts: Callable[..., Any]) -> Any:
    return spore_hosts(*NODES)


def actor_of(host: Any, name: str) -> str:
    return f"{host.runtime.config.base_url}/nodes/{name}"


def relation(host: Any, name: str, remote: str, kind: str) -> str | None:
    return host.runtime.state.relation_state(actor_of(host, name), remote, kind)


def stored_as_rdf(host: Any, activity_id: str) -> bool:
    ask = "ASK { GRAPH ?g { ?id ?p ?o } }"
    return bool(host.runtime.store.query(ask, bindings={"id": NamedNode(activity_id)}))


@pytest.fixture
def our_scheme(host: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """Sign this test's outgoing requests with the parametrised scheme; return Fedify's name for it."""
    scheme: SigningScheme = request.param
    before = host.runtime.signing_scheme
    host.runtime.signing_scheme = scheme
    yield OUR_SCHEMES[scheme]
    host.runtime.signing_scheme = before


def attempts(sent: dict[str, Any]) -> list[tuple[str, int]]:
    return [(attempt["scheme"], attempt["status"]) for attempt in sent["attempts"]]


def follow_and_wait_for_accept(peer: FedifyPeer, actor: str, scheme: str | None = None) -> dict[str, Any]:
    sent = peer.send("Follow", actor, scheme=scheme)
    assert sent["ok"], (sent, peer.diagnostics())
    peer.wait_received("Accept", object_id=sent["id"])
    return sent


# -- discovery ----------------------------------------------------------------------------------------------


def test_fedify_reads_our_actor_by_url(host: Any, fedify_peer: FedifyPeer) -> None:
    actor = actor_of(host, "alpha")

    found = fedify_peer.lookup(actor)

    assert found["ok"], found
    assert (found["type"], found["id"]) == ("Service", actor)
    base = host.runtime.config.base_url
    assert found["actor"] == {
        "preferredUsername": "alpha",
        "name": "Fungus alpha",
        "inbox": f"{actor}/inbox",
        "outbox": f"{actor}/outbox",
        "followers": f"{actor}/followers",
        "following": f"{actor}/following",
        "sharedInbox": f"{base}/inbox",
        "publicKeyId": f"{actor}#main-key",
        "publicKeyOwner": actor,
        "publicKeyAlgorithm": "RSASSA-PKCS1-v1_5",
    }


def test_fedify_resolves_our_handle_over_https(
    spore_hosts: Callable[..., Any], tls_certificate: tuple[Path, Path], fedify_peer: FedifyPeer
) -> None:
    tls_host = spore_hosts("alpha", tls=tls_certificate)
    domain = tls_host.runtime.config.domain

    found = fedify_peer.lookup(f"@alpha@{domain}")

    assert found["ok"], (found, fedify_peer.diagnostics())
    assert found["id"] == f"https://{domain}/nodes/alpha"
    webfinger = [r for r in found["requests"] if "/.well-known/webfinger" in r["url"]]
    assert webfinger and webfinger[0]["status"] == 200 and webfinger[0]["url"].startswith("https://")


def test_fedify_reads_our_nodeinfo(host: Any, fedify_peer: FedifyPeer) -> None:
    answer = fedify_peer.control("POST", "nodeinfo", {"url": host.runtime.config.base_url})

    assert answer["ok"], answer
    assert answer["nodeinfo"]["software"]["name"] == "spore"
    assert "activitypub" in answer["nodeinfo"]["protocols"]


def test_we_read_fedify_actor_and_its_rsa_key(host: Any, fedify_peer: FedifyPeer) -> None:
    """Fedify publishes an RSA ``publicKey`` and Ed25519 ``assertionMethod``s; HTTP signatures use RSA."""
    document = host.call(host.runtime.fetch_signed(fedify_peer.actor))
    key = host.call(host.runtime.keyring.get(f"{fedify_peer.actor}#main-key"))

    assert (document["id"], document["type"]) == (fedify_peer.actor, "Person")
    assert document["inbox"] == f"{fedify_peer.actor}/inbox"
    assert document["endpoints"]["sharedInbox"] == f"{fedify_peer.origin}/inbox"
    assert key.owner == fedify_peer.actor
    assert key.public_key.key_size >= 2048


@pytest.mark.parametrize("our_scheme", list(OUR_SCHEMES), indirect=True)
def test_fedify_verifies_our_signed_get(host: Any, fedify_peer: FedifyPeer, our_scheme: str) -> None:
    fedify_peer.reset()

    document = host.call(host.runtime.fetch_signed(fedify_peer.actor))

    assert document["id"] == fedify_peer.actor
    gets = [r for r in fedify_peer.log()["inbound"] if r["method"] == "GET" and r["path"] == "/users/peer"]
    assert (gets[-1]["scheme"], gets[-1]["status"]) == (our_scheme, 200)


# -- follows, both ways -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "name"), [(RFC9421, "alpha"), (CAVAGE, "beta")])
def test_fedify_follows_us_and_we_accept(host: Any, fedify_peer: FedifyPeer, scheme: str, name: str) -> None:
    actor = actor_of(host, name)

    sent = fedify_peer.send("Follow", actor, scheme=scheme)

    assert sent["ok"], (sent, fedify_peer.diagnostics())
    assert attempts(sent) == [(scheme, 202)], "Fedify had to fall back to the other signature scheme"
    accept = fedify_peer.wait_received("Accept", object_id=sent["id"])
    assert accept["actor"] == actor
    assert relation(host, name, fedify_peer.actor, Relation.FOLLOWER) == "accepted"


@pytest.mark.parametrize(
    ("our_scheme", "name"),
    [(SigningScheme.CAVAGE, "gamma"), (SigningScheme.RFC9421, "delta")],
    indirect=["our_scheme"],
)
def test_we_follow_fedify_and_it_accepts(
    host: Any, fedify_peer: FedifyPeer, our_scheme: str, name: str
) -> None:
    fedify_peer.reset()

    follow = host.call(host.runtime.follow(name, fedify_peer.actor))
    host.settle()

    received = fedify_peer.wait_received("Follow")
    assert (received["id"], received["actor"]) == (follow["id"], actor_of(host, name))
    posts = [r for r in fedify_peer.log()["inbound"] if r.get("activity") == follow["id"]]
    assert [(r["scheme"], r["status"]) for r in posts] == [(our_scheme, 202)]
    wait_until(
        lambda: relation(host, name, fedify_peer.actor, Relation.FOLLOWING) == "accepted",
        what="Fedify's Accept to settle our Follow",
    )
    assert actor_of(host, name) in fedify_peer.log()["followers"]


def test_fedify_undoes_its_follow(host: Any, fedify_peer: FedifyPeer) -> None:
    follow = follow_and_wait_for_accept(fedify_peer, actor_of(host, "kappa"))

    undo = fedify_peer.send("Undo-Follow", actor_of(host, "kappa"), followId=follow["id"])
    host.settle()

    assert attempts(undo) == [(RFC9421, 202)]
    wait_until(lambda: relation(host, "kappa", fedify_peer.actor, Relation.FOLLOWER) is None, what="unfollow")


# -- publishing ---------------------------------------------------------------------------------------------


def test_fedify_parses_our_note_with_its_hashtag(host: Any, fedify_peer: FedifyPeer) -> None:
    follow_and_wait_for_accept(fedify_peer, actor_of(host, "epsilon"))
    fedify_peer.reset()
    recommendation = {"type": "Recommendation", "name": "Tracks for listeners of Nils Frahm"}

    text = "New recommendations are ready."
    publish = host.runtime.publish("epsilon", recommendation, text=text, hashtag="#fungiverse")
    create_object, create_note = host.call(publish)
    host.settle()

    def note_arrived() -> dict[str, Any] | None:
        creates = fedify_peer.received("Create")
        return next((c for c in creates if c.get("parsed", {}).get("type") == "Note"), None)

    create = wait_until(note_arrived, what="the Note at Fedify")
    parsed = create["parsed"]
    base = host.runtime.config.base_url
    assert parsed["hashtags"] == ["#fungiverse"]
    assert parsed["tags"] == [{"type": "Hashtag", "name": "#fungiverse", "href": f"{base}/tags/fungiverse"}]
    assert parsed["attributedTo"] == actor_of(host, "epsilon")
    assert 'rel="tag"' in parsed["content"] and f"{base}/tags/fungiverse" in parsed["content"]
    assert parsed["id"] == create_note["object"]["id"]
    assert create_object["object"]["id"] in parsed["content"], "the Note links to the machine-readable object"
    assert "https://www.w3.org/ns/activitystreams#Public" in parsed["to"]
    if os.environ.get("SPORE_INTEROP_NOTE_JSON"):  # how docs/federation.md's example was made
        Path(os.environ["SPORE_INTEROP_NOTE_JSON"]).write_text(json.dumps(parsed["json"], indent=2) + "\n")


def test_fedify_accepts_our_spore_object(host: Any, fedify_peer: FedifyPeer) -> None:
    """The machine-readable Create goes to the same followers as the Note; Fedify must not refuse it."""
    follow_and_wait_for_accept(fedify_peer, actor_of(host, "lambda"))
    fedify_peer.reset()
    decision = {"type": "Decision", "name": "Switch to the #ambient learning group"}

    create_object, _create_note = host.call(
        host.runtime.publish("lambda", decision, text="I decided something.", hashtag="#fungiverse")
    )
    host.settle()

    def both_posts() -> list[dict[str, Any]] | None:
        posts = [r for r in fedify_peer.log()["inbound"] if r["method"] == "POST"]
        return posts if len(posts) >= 2 else None

    refused = [(r["status"], r.get("detail")) for r in wait_until(both_posts, what="both Creates at Fedify")]
    assert all(status == 202 for status, _ in refused), f"Fedify refused our Create of a Decision: {refused}"
    create = next(c for c in fedify_peer.received("Create") if c["id"] == create_object["id"])
    assert create["parsed"]["id"] == create_object["object"]["id"]


# -- blocks -------------------------------------------------------------------------------------------------


def test_fedify_blocks_us(host: Any, fedify_peer: FedifyPeer) -> None:
    follow_and_wait_for_accept(fedify_peer, actor_of(host, "zeta"))

    block = fedify_peer.send("Block", actor_of(host, "zeta"), scheme=CAVAGE)
    host.settle()

    assert attempts(block) == [(CAVAGE, 202)]
    wait_until(lambda: relation(host, "zeta", fedify_peer.actor, Relation.FOLLOWER) is None, what="block")


def test_we_block_fedify(host: Any, fedify_peer: FedifyPeer) -> None:
    block = host.call(host.runtime.block("eta", fedify_peer.actor))
    host.settle()

    received = fedify_peer.wait_received("Block")
    assert (received["id"], received["object"]) == (block["id"], fedify_peer.actor)
    assert relation(host, "eta", fedify_peer.actor, Relation.BLOCKING) is not None


# -- what we refuse and what we keep ------------------------------------------------------------------------


def test_we_refuse_a_wrong_key_in_both_schemes(host: Any, fedify_peer: FedifyPeer) -> None:
    sent = fedify_peer.send("Follow", actor_of(host, "theta"), wrongKey=True)
    host.settle()

    assert not sent["ok"]
    assert attempts(sent) == [(RFC9421, 401), (CAVAGE, 401)]
    assert all("signature" in attempt["detail"] for attempt in sent["attempts"]), sent["attempts"]
    assert relation(host, "theta", fedify_peer.actor, Relation.FOLLOWER) is None
    assert not any(a["type"] == "Accept" and a["object"] == sent["id"] for a in fedify_peer.received())


def test_what_fedify_sends_is_stored_as_rdf(host: Any, fedify_peer: FedifyPeer) -> None:
    follow = follow_and_wait_for_accept(fedify_peer, actor_of(host, "iota"))
    note = fedify_peer.send("Create-Note", actor_of(host, "iota"), hashtag="mycology")
    host.settle()

    assert note["ok"], note
    assert stored_as_rdf(host, follow["id"]), "Fedify's Follow is not in the node's graphs"
    assert stored_as_rdf(host, note["id"]), "Fedify's Create(Note) is not in the node's graphs"
