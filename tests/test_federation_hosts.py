"""Two real hosts on loopback exchanging signed Follow/Accept/Create/Join/Block, and every inbox rejection.

Host A serves nodes alice and bob; host B serves node carol and the learning group jazz. Requests an
attacker would send are built by hand with A's keys (fetchable from A, as a real peer's would be).
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest

from federation.config import GroupSpec, HostConfig, Limits, NodeSpec
from federation.host import RunningHost, bind_loopback, build_host, start_local_host
from federation.keys import ActorKey
from federation.processing import peers_graph
from federation.signatures import sign_cavage, sign_rfc9421
from federation.tls import self_signed_certificate
from federation.vocab import ActivityType
from knowledge.store import EmbeddedStore

pytestmark = pytest.mark.slow
AS = "https://www.w3.org/ns/activitystreams#"
AP_JSON = "application/activity+json"
SPORE = "https://w3id.org/spore/ns#"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hosts")
    a = start_local_host(root / "a", nodes=(NodeSpec("alice", summary="likes <b>jazz</b>"), NodeSpec("bob")))
    b = start_local_host(root / "b", nodes=(NodeSpec("carol"),), groups=(GroupSpec("jazz", "#jazz"),))
    yield a, b
    a.stop()
    b.stop()


def url(host: RunningHost, path: str) -> str:
    return host.runtime.config.base_url + path


def settle(*hosts: RunningHost) -> None:
    for _ in range(2):  # a reply (Accept) may trigger work on the first host again
        for host in hosts:
            host.settle()


def key_of(host: RunningHost, name: str) -> ActorKey:
    return host.runtime.actors.nodes[name].key


def post_signed(
    inbox: str,
    activity: dict | bytes,
    key: ActorKey,
    *,
    now: float | None = None,
    signer=sign_cavage,
    tamper: bytes | None = None,
) -> httpx.Response:
    body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
    headers = signer(
        method="POST",
        url=inbox,
        body=body,
        key=key,
        now=time.time() if now is None else now,
        content_type=AP_JSON,
    )
    return httpx.post(inbox, content=tamper if tamper is not None else body, headers=headers, timeout=10)


def activity_from(host: RunningHost, name: str, kind: str, obj, **extra) -> dict:
    actor = url(host, f"/nodes/{name}")
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/activities/{uuid.uuid4().hex}",
        "type": kind,
        "actor": actor,
        "object": obj,
        **extra,
    }


def ask(host: RunningHost, query: str) -> bool:
    store = host.runtime.store
    return bool(store.native.query(query)) if hasattr(store, "native") else False


# -- discovery -------------------------------------------------------------------------------------


def test_webfinger_nodeinfo_and_actor(hosts) -> None:
    a, _ = hosts
    domain = a.runtime.config.domain
    found = httpx.get(url(a, "/.well-known/webfinger"), params={"resource": f"acct:alice@{domain}"})
    assert found.status_code == 200 and found.headers["access-control-allow-origin"] == "*"
    self_link = next(link for link in found.json()["links"] if link["rel"] == "self")
    assert self_link == {"rel": "self", "type": AP_JSON, "href": url(a, "/nodes/alice")}
    assert httpx.get(url(a, "/.well-known/webfinger")).status_code == 400
    assert httpx.get(url(a, "/.well-known/webfinger"), params={"resource": "acct:nobody"}).status_code == 400
    assert (
        httpx.get(url(a, "/.well-known/webfinger"), params={"resource": f"acct:zed@{domain}"}).status_code
        == 404
    )

    links = httpx.get(url(a, "/.well-known/nodeinfo")).json()["links"]
    info = httpx.get(links[0]["href"]).json()
    assert (
        info["version"] == "2.1"
        and info["protocols"] == ["activitypub"]
        and info["usage"]["users"]["total"] == 2
    )
    assert "lrdd" in httpx.get(url(a, "/.well-known/host-meta")).text

    actor = httpx.get(url(a, "/nodes/alice"), headers={"accept": AP_JSON})
    assert actor.headers["content-type"].startswith(AP_JSON)
    document = actor.json()
    assert document["type"] == "Service" and document["inbox"] == url(a, "/nodes/alice/inbox")
    # Linked data (federation/linked_data): a browser gets HTML, a type nobody serves gets 406.
    assert httpx.get(url(a, "/nodes/alice"), headers={"accept": "text/html"}).status_code == 200
    assert httpx.get(url(a, "/nodes/alice"), headers={"accept": "image/png"}).status_code == 406
    assert httpx.get(url(a, "/nodes/nobody")).status_code == 404
    ld = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
    assert httpx.get(url(a, "/actor"), headers={"accept": ld}).json()["type"] == "Application"


def test_hashtag_links_lead_to_the_learning_group(hosts) -> None:
    _, b = hosts
    found = httpx.get(url(b, "/tags/JAZZ"))
    assert found.status_code == 302 and found.headers["location"] == url(b, "/groups/jazz")
    other = httpx.get(url(b, "/tags/ambient")).json()
    assert other["type"] == "Hashtag" and other["name"] == "#ambient"


# -- the social graph ------------------------------------------------------------------------------


def test_follow_accept_in_both_directions(hosts) -> None:
    a, b = hosts
    alice, carol = url(a, "/nodes/alice"), url(b, "/nodes/carol")
    a.call(a.runtime.follow("alice", carol))
    settle(a, b)
    b.call(b.runtime.follow("carol", alice))
    settle(b, a)
    assert httpx.get(url(b, "/nodes/carol/followers?page=1")).json()["orderedItems"] == [alice]
    assert httpx.get(url(a, "/nodes/alice/following?page=1")).json()["orderedItems"] == [carol]
    assert httpx.get(url(a, "/nodes/alice/followers")).json()["totalItems"] == 1
    outbox = httpx.get(url(a, "/nodes/alice/outbox?page=1")).json()["orderedItems"]
    assert [item["type"] for item in outbox][-1] == "Follow"
    # Every received activity is RDF in the receiving node's peers graph.
    graph = peers_graph(carol).value
    assert ask(
        b,
        f"ASK {{ GRAPH <{graph}> {{ ?f a <{AS}Follow> ; <{AS}actor> <{alice}> ; <{AS}object> <{carol}> }} }}",
    )


def test_create_reaches_followers_with_hashtag_and_spore_object(hosts) -> None:
    a, b = hosts
    alice, carol = url(a, "/nodes/alice"), url(b, "/nodes/carol")
    if b.runtime.state.count_related(carol, "follower") == 0:
        test_follow_accept_in_both_directions(hosts)
    update = {"type": "Evaluation", "name": "round 7 evaluation"}
    create_object, create_note = b.call(
        b.runtime.publish("carol", update, text="round 7: recall@20 0.21", hashtag="#jazz")
    )
    settle(b, a)
    graph = peers_graph(alice).value
    note_id = create_note["object"]["id"]
    assert ask(
        a,
        f"ASK {{ GRAPH <{graph}> {{ <{note_id}> a <{AS}Note> ; <{AS}tag> ?t ."
        f' ?t a <{AS}Hashtag> ; <{AS}name> "#jazz" }} }}',
    )
    assert ask(
        a,
        f"ASK {{ GRAPH <{graph}> {{ <{create_object['object']['id']}> a <{SPORE}Evaluation> }} }}",
    )
    served = httpx.get(note_id, headers={"accept": AP_JSON}).json()
    assert served["attributedTo"] == carol and "#<span>jazz</span>" in served["content"]


def test_join_accept_and_leave_a_learning_group(hosts) -> None:
    a, b = hosts
    jazz, bob = url(b, "/groups/jazz"), url(a, "/nodes/bob")
    a.call(a.runtime.join("bob", jazz))
    settle(a, b)
    assert bob in httpx.get(url(b, "/groups/jazz/followers?page=1")).json()["orderedItems"]
    assert a.runtime.state.relation_state(bob, jazz, "following") == "accepted"
    a.call(a.runtime.leave("bob", jazz))
    settle(a, b)
    assert httpx.get(url(b, "/groups/jazz/followers")).json()["totalItems"] == 0


def test_admission_policy_can_refuse(tmp_path: Path) -> None:
    refusing = start_local_host(
        tmp_path / "g", groups=(GroupSpec("closed", "#closed"),), admission=lambda group, actor: False
    )
    joiner = start_local_host(tmp_path / "j", nodes=(NodeSpec("dave"),))
    try:
        group = url(refusing, "/groups/closed")
        joiner.call(joiner.runtime.join("dave", group))
        settle(joiner, refusing)
        assert refusing.runtime.state.count_related(group, "member") == 0
        assert joiner.runtime.state.relation_state(url(joiner, "/nodes/dave"), group, "following") is None
    finally:
        refusing.stop()
        joiner.stop()


def test_block_cuts_the_relation_and_refuses_the_blocked(hosts) -> None:
    a, b = hosts
    bob, carol = url(a, "/nodes/bob"), url(b, "/nodes/carol")
    a.call(a.runtime.follow("bob", carol))
    settle(a, b)
    assert b.runtime.state.relation_state(carol, bob, "follower") == "accepted"
    b.call(b.runtime.block("carol", bob))
    settle(b, a)
    assert b.runtime.state.relation_state(carol, bob, "follower") is None
    assert a.runtime.state.relation_state(bob, carol, "following") is None  # A honoured the Block
    refused = post_signed(
        url(b, "/nodes/carol/inbox"), activity_from(a, "bob", "Like", carol), key_of(a, "bob")
    )
    assert refused.status_code == 403 and refused.json()["status"] == "blocked"


def test_group_announces_a_members_post_to_the_other_members(tmp_path: Path) -> None:
    group_host = start_local_host(tmp_path / "g", groups=(GroupSpec("folk", "#folk"),))
    members = start_local_host(tmp_path / "m", nodes=(NodeSpec("hana"), NodeSpec("ivan")))
    try:
        folk = url(group_host, "/groups/folk")
        for name in ("hana", "ivan"):
            members.call(members.runtime.join(name, folk))
        settle(members, group_host)
        _, note = members.call(
            members.runtime.publish(
                "hana", {"type": "Evaluation"}, text="round 1", hashtag="#folk", groups=[folk]
            )
        )
        settle(members, group_host, members)
        ivan_graph = peers_graph(url(members, "/nodes/ivan")).value
        assert ask(
            members,
            f"ASK {{ GRAPH <{ivan_graph}> {{ ?a a <{AS}Announce> ; <{AS}actor> <{folk}> ;"
            f" <{AS}object>/<{AS}object> <{note['object']['id']}> }} }}",
        )
        assert folk in note["cc"] and folk in note["object"]["cc"]
        invite = group_host.call(group_host.runtime.invite("folk", url(members, "/nodes/hana")))
        settle(group_host, members)
        hana_graph = peers_graph(url(members, "/nodes/hana")).value
        assert ask(
            members,
            f"ASK {{ GRAPH <{hana_graph}> {{ <{invite['id']}> a <{AS}Invite> ; <{AS}object> <{folk}> }} }}",
        )
    finally:
        group_host.stop()
        members.stop()


def test_undo_follow_and_actor_update(tmp_path: Path) -> None:
    first = start_local_host(tmp_path / "u1", nodes=(NodeSpec("jo"),))
    second = start_local_host(tmp_path / "u2", nodes=(NodeSpec("kim"),))
    try:
        jo, kim = url(first, "/nodes/jo"), url(second, "/nodes/kim")
        first.call(first.runtime.follow("jo", kim))
        settle(first, second)
        assert second.runtime.state.relation_state(kim, jo, "follower") == "accepted"
        assert second.runtime.keyring.cached(f"{jo}#main-key")
        first.call(first.runtime.unfollow("jo", kim))
        settle(first, second)
        assert second.runtime.state.relation_state(kim, jo, "follower") is None
        assert first.runtime.state.relation_state(jo, kim, "following") is None
        # An actor announcing an Update of itself makes peers forget its cached key (rotation).
        update = activity_from(first, "jo", "Update", {"id": jo, "type": "Service"})
        assert post_signed(url(second, "/inbox"), update, key_of(first, "jo")).status_code == 202
        settle(second)
        assert not second.runtime.keyring.cached(f"{jo}#main-key")
    finally:
        first.stop()
        second.stop()


# -- rejections ------------------------------------------------------------------------------------


def test_unsigned_post_is_refused(hosts) -> None:
    a, b = hosts
    response = httpx.post(url(b, "/inbox"), json=activity_from(a, "alice", "Like", url(b, "/nodes/carol")))
    assert response.status_code == 401 and response.json()["signature"] == "missing"


@pytest.mark.parametrize("signer", [sign_cavage, sign_rfc9421], ids=["cavage", "rfc9421"])
def test_signed_post_is_accepted_in_both_schemes(hosts, signer) -> None:
    a, b = hosts
    response = post_signed(
        url(b, "/inbox"),
        activity_from(a, "alice", "Like", url(b, "/nodes/carol")),
        key_of(a, "alice"),
        signer=signer,
    )
    assert response.status_code == 202, response.text


def test_body_changed_after_signing_is_refused(hosts) -> None:
    a, b = hosts
    activity = activity_from(a, "alice", "Like", url(b, "/nodes/carol"))
    tampered = json.dumps({**activity, "type": "Announce"}).encode()
    response = post_signed(url(b, "/inbox"), activity, key_of(a, "alice"), tamper=tampered)
    assert response.status_code == 401 and response.json()["signature"] == "digest-mismatch"


@pytest.mark.parametrize(("offset", "reason"), [(-7200, "stale"), (7200, "future")])
def test_stale_or_future_date_is_refused(hosts, offset: float, reason: str) -> None:
    a, b = hosts
    activity = activity_from(a, "alice", "Like", url(b, "/nodes/carol"))
    response = post_signed(url(b, "/inbox"), activity, key_of(a, "alice"), now=time.time() + offset)
    assert response.status_code == 401 and response.json()["signature"] == reason


def test_key_of_another_actor_is_refused(hosts) -> None:
    a, b = hosts
    activity = activity_from(a, "alice", "Like", url(b, "/nodes/carol"))
    response = post_signed(url(b, "/inbox"), activity, key_of(a, "bob"))  # bob's valid key, alice's activity
    assert response.status_code == 401 and response.json()["status"] == "key-not-actors"
    foreign = {**activity, "actor": url(b, "/nodes/carol")}  # claims to be carol, on another origin
    response = post_signed(url(b, "/inbox"), foreign, key_of(a, "alice"))
    assert response.status_code == 401 and response.json()["status"] == "key-not-actors"


def test_objects_on_another_host_than_the_signer_are_refused(hosts) -> None:
    a, b = hosts
    alice = url(a, "/nodes/alice")
    forged = {"id": url(b, "/objects/forged"), "type": "Note", "attributedTo": alice, "content": "x"}
    response = post_signed(url(b, "/inbox"), activity_from(a, "alice", "Create", forged), key_of(a, "alice"))
    assert response.status_code == 403 and response.json()["status"] == "foreign-object"
    impersonating = {
        "id": f"{alice}/notes/1",
        "type": "Note",
        "attributedTo": url(b, "/nodes/carol"),
        "content": "x",
    }
    response = post_signed(
        url(b, "/inbox"), activity_from(a, "alice", "Create", impersonating), key_of(a, "alice")
    )
    assert response.status_code == 403


def test_replayed_activity_is_processed_once(hosts) -> None:
    a, b = hosts
    activity = activity_from(a, "alice", "Like", url(b, "/nodes/carol"))
    settle(b)
    before = b.runtime.processor.processed
    assert post_signed(url(b, "/inbox"), activity, key_of(a, "alice")).status_code == 202
    replay = post_signed(url(b, "/inbox"), activity, key_of(a, "alice"))
    assert replay.status_code == 202 and replay.json()["status"] == "duplicate"
    settle(b)
    assert b.runtime.processor.processed == before + 1


def test_oversized_and_deeply_nested_bodies(hosts) -> None:
    a, b = hosts
    limit = b.runtime.config.limits.max_body_bytes
    big = activity_from(
        a, "alice", "Create", {"id": url(a, "/nodes/alice/n/1"), "type": "Note", "content": "x" * limit}
    )
    assert post_signed(url(b, "/inbox"), big, key_of(a, "alice")).status_code == 413
    deep: dict = {"type": "Note"}
    for _ in range(200):
        deep = {"type": "Note", "inReplyTo": deep}
    nested = activity_from(a, "alice", "Like", deep)
    response = post_signed(url(b, "/inbox"), nested, key_of(a, "alice"))
    assert response.status_code == 400 and response.json()["status"] == "too-deep"
    very_deep = b"[" * 100_000 + b"]" * 100_000
    assert post_signed(url(b, "/inbox"), very_deep, key_of(a, "alice")).status_code in (400, 413)


def test_received_html_is_sanitised_before_storage(hosts) -> None:
    a, b = hosts
    alice, carol = url(a, "/nodes/alice"), url(b, "/nodes/carol")
    note = {
        "id": f"{alice}/notes/{uuid.uuid4().hex}",
        "type": "Note",
        "attributedTo": alice,
        "content": '<p>hi<script>alert(1)</script><img src=x onerror="alert(2)"></p>',
    }
    assert (
        post_signed(
            url(b, "/inbox"), activity_from(a, "alice", "Create", note, to=[carol]), key_of(a, "alice")
        ).status_code
        == 202
    )
    settle(b)
    rows = list(
        b.runtime.store.native.query(f"SELECT ?c WHERE {{ GRAPH ?g {{ <{note['id']}> <{AS}content> ?c }} }}")
    )
    assert rows and all("script" not in row["c"].value and "onerror" not in row["c"].value for row in rows)


def test_rate_limit_per_remote_host(tmp_path: Path, hosts) -> None:
    a, _ = hosts
    strict = start_local_host(
        tmp_path / "strict", nodes=(NodeSpec("erin"),), limits=Limits(rate_per_second=0.01, rate_burst=3)
    )
    try:
        statuses = [
            post_signed(
                url(strict, "/inbox"),
                activity_from(a, "alice", "Like", url(strict, "/nodes/erin")),
                key_of(a, "alice"),
            ).status_code
            for _ in range(5)
        ]
        assert statuses[:3] == [202, 202, 202] and statuses[3:] == [429, 429]
    finally:
        strict.stop()


def test_https_host_serves_its_actor(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path / "tls")
    secure = start_local_host(tmp_path / "s", nodes=(NodeSpec("frank"),), tls=(cert, key))
    try:
        base = secure.runtime.config.base_url
        assert base.startswith("https://localhost:")
        document = httpx.get(
            f"{base}/nodes/frank", verify=ssl.create_default_context(cafile=str(cert))
        ).json()
        assert document["id"] == f"{base}/nodes/frank"
    finally:
        secure.stop()


def test_key_fetches_go_through_the_ssrf_guard(tmp_path: Path, hosts) -> None:
    """A host that does not allow loopback refuses to fetch a loopback signer's key (and says so)."""
    a, _ = hosts
    sock = bind_loopback()
    config = HostConfig(
        base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        data_dir=tmp_path / "guarded",
        nodes=(NodeSpec("lena"),),
    )
    guarded = RunningHost(build_host(config, store=EmbeddedStore()), sock).start()
    try:
        activity = activity_from(a, "alice", "Like", url(guarded, "/nodes/lena"))
        response = post_signed(url(guarded, "/inbox"), activity, key_of(a, "alice"))
        assert response.status_code == 401 and response.json()["status"] == "key-unavailable"
        assert "loopback" in response.json()["detail"]
    finally:
        guarded.stop()


def test_delivery_double_knocks_a_peer_that_verifies_only_rfc9421(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    seen: list[str] = []

    async def inbox(request) -> Response:  # a peer that verifies RFC 9421 only
        scheme = "rfc9421" if "signature-input" in request.headers else "cavage"
        seen.append(scheme)
        return Response(status_code=202 if scheme == "rfc9421" else 401)

    strict = Starlette(routes=[Route("/inbox", inbox, methods=["POST"])])
    sock = bind_loopback()
    peer = RunningHost(strict, sock).start()
    sender = start_local_host(tmp_path / "s", nodes=(NodeSpec("mia"),))
    try:
        peer_inbox = f"http://127.0.0.1:{sock.getsockname()[1]}/inbox"
        mia = sender.runtime.actors.nodes["mia"]

        async def send(number: int) -> None:
            activity = sender.runtime.outbox.activity(mia, ActivityType.LIKE, f"{peer_inbox}/{number}")
            sender.runtime.outbox.send(mia, activity, [peer_inbox])

        sender.call(send(1))
        sender.settle()
        assert seen == ["cavage", "rfc9421"] and len(sender.runtime.deliveries) == 0
        sender.call(send(2))
        sender.settle()
        assert seen == ["cavage", "rfc9421", "rfc9421"]  # the host remembered what this peer verifies
    finally:
        sender.stop()
        peer.stop()


def test_restart_keeps_keys(tmp_path: Path) -> None:
    first = start_local_host(tmp_path / "r", nodes=(NodeSpec("gina"),))
    pem = first.runtime.actors.nodes["gina"].key.public_key_pem
    first.stop()
    second = start_local_host(tmp_path / "r", nodes=(NodeSpec("gina"),))
    try:
        assert httpx.get(url(second, "/nodes/gina")).json()["publicKey"]["publicKeyPem"] == pem
    finally:
        second.stop()


def test_store_graph_helper_is_a_named_node() -> None:
    assert isinstance(peers_graph("http://h/nodes/x"), ox.NamedNode)
