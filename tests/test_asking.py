"""Asking a node from the Fediverse: parsing, matching, the reply, rate limits, a real round trip."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox
import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from rdflib import Graph, URIRef

from agents.asking import LatestSnapshot, SnapshotRecommender
from federation.actors import ActorKind, LocalActor
from federation.answering import AskingService, install_asking
from federation.config import HostConfig, NodeSpec
from federation.host import RunningHost, bind_loopback, start_local_host
from federation.keys import ActorKey, load_or_create_key
from federation.mentions import (
    Ranked,
    Resolved,
    note_text,
    parse_ask,
    reply_html,
    requested_names,
    resolve_names,
)
from federation.runtime import HostRuntime
from federation.signatures import sign_cavage
from knowledge.graphs import GraphKind, graph_iri
from knowledge.music.names import NameIndex
from knowledge.store import EmbeddedStore
from models.data import MusicTensors
from models.lightgcn import LightGCN
from models.snapshot import save_snapshot
from shapes.validation import Validator

BASE = "https://w3id.org/spore/data/test/"
NAMES = ("Radiohead", "Portishead", "Massive Attack", "Björk", "Florence and the Machine", "Tricky")
NODE = "http://spore.test/nodes/ada"


def catalogue() -> NameIndex:
    return NameIndex((f"{BASE}artist/{i}", name) for i, name in enumerate(NAMES))


def toy_tensors(artists: int = 12, listeners: int = 20) -> MusicTensors:
    generator = torch.Generator().manual_seed(0)
    rows, cols = [], []
    for listener in range(listeners):
        for artist in torch.randperm(artists, generator=generator)[:4].tolist():
            rows.append(listener)
            cols.append(artist)
    names = [*NAMES, *(f"Band {i}" for i in range(len(NAMES), artists))]
    return MusicTensors(
        listeners=tuple(f"{BASE}listener/{i}" for i in range(listeners)),
        artists=tuple(f"{BASE}artist/{i}" for i in range(artists)),
        tags=(f"{BASE}tag/0",),
        entities=(f"{BASE}entity/0",),
        relations=(f"{BASE}relation/0",),
        interactions=torch.tensor([rows, cols]),
        play_counts=torch.ones(len(rows)),
        artist_tags=torch.tensor([[0], [0]]),
        artist_entities=torch.tensor([[0], [0], [0]]),
        artist_names=tuple(names),
    )


# -- reading the ask ----------------------------------------------------------------------------------

MASTODON_CONTENT = (
    '<p><span class="h-card"><a href="http://spore.test/@ada" class="u-url mention">@<span>ada</span>'
    "</a></span> recommend Radiohead, Portishead &amp; more? <br>Massive Attack</p>"
)


def test_note_text_drops_html_and_keeps_line_breaks() -> None:
    assert note_text(MASTODON_CONTENT) == "@ada recommend Radiohead, Portishead & more? \nMassive Attack\n"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("@ada recommend Radiohead, Portishead", ["Radiohead", "Portishead"]),
        ("@ada@spore.test:8000 Recommend me something like Björk!", ["Björk"]),
        ("please recommend: “Tricky”; Massive Attack. #music https://x.test/a", ["Tricky", "Massive Attack"]),
        ("recommendations for Radiohead, and Portishead, radiohead", ["Radiohead", "Portishead"]),
        ("recommend Florence and the Machine / Tricky", ["Florence and the Machine", "Tricky"]),
    ],
)
def test_requested_names_follow_the_word_recommend(text: str, names: list[str]) -> None:
    assert requested_names(text) == (names, True)


def test_without_the_word_recommend_nothing_is_requested() -> None:
    assert requested_names("@ada hello, how are you") == ([], False)


def _actor(name: str) -> LocalActor:
    key = ActorKey(f"http://spore.test/nodes/{name}#main-key", None)  # type: ignore[arg-type]
    return LocalActor(ActorKind.NODE, name, f"http://spore.test/nodes/{name}", key)


def _note(content: str, tags: list[dict[str, str]], author: str = "http://mastodon.test/users/bob") -> dict:
    return {
        "id": f"{author}/statuses/1",
        "type": "Note",
        "attributedTo": author,
        "content": content,
        "tag": tags,
    }


def test_a_mention_asks_the_mentioned_node_only() -> None:
    ada, bea = _actor("ada"), _actor("bea")
    note = _note(MASTODON_CONTENT, [{"type": "Mention", "href": ada.id, "name": "@ada@spore.test"}])
    asks = parse_ask(note, "http://mastodon.test/users/bob", [ada, bea], {})
    assert [(a.node.name, a.names, a.by_mention) for a in asks] == [
        ("ada", ("Radiohead", "Portishead & more", "Massive Attack"), True)
    ]


def test_a_hashtag_asks_only_with_the_word_recommend_and_only_its_author() -> None:
    ada = _actor("ada")
    tag = [{"type": "Hashtag", "name": "#SporeAda", "href": "http://spore.test/tags/sporeada"}]
    hashtags = {"ada": "#sporeada"}
    bob = "http://mastodon.test/users/bob"
    assert parse_ask(_note("<p>#SporeAda recommend Tricky</p>", tag), bob, [ada], hashtags)[0].names == (
        "Tricky",
    )
    assert parse_ask(_note("<p>I love #SporeAda</p>", tag), bob, [ada], hashtags) == []
    # A Note attributed to someone else than the signer asks nothing on their behalf.
    forged = _note("<p>#SporeAda recommend Tricky</p>", tag, author="http://mastodon.test/users/eve")
    assert parse_ask(forged, bob, [ada], hashtags) == []


# -- matching names ---------------------------------------------------------------------------------


def test_names_match_tolerant_of_case_accents_and_typos() -> None:
    resolved = resolve_names(["RADIOHEAD", "bjork", "Portishaed", "Tricky and Massive Attack"], catalogue())
    assert [(m.name, m.corrected) for m in resolved.matched] == [
        ("Radiohead", False),
        ("Björk", False),
        ("Portishead", True),
        ("Tricky", False),
        ("Massive Attack", False),
    ]
    assert resolved.unknown == ()


def test_and_inside_an_artist_name_is_not_split() -> None:
    resolved = resolve_names(["florence and the machine"], catalogue())
    assert [m.name for m in resolved.matched] == ["Florence and the Machine"]


def test_unknown_names_get_suggestions() -> None:
    resolved = resolve_names(["Portis", "Zzzz Top"], catalogue())
    assert resolved.matched == ()
    assert resolved.unknown == (("Portis", ("Portishead",)), ("Zzzz Top", ()))


# -- the reply --------------------------------------------------------------------------------------


def test_an_askers_url_that_is_not_http_is_not_linked() -> None:
    from federation.mentions import asker_card

    card = asker_card(
        {"id": "https://m.test/users/eve", "preferredUsername": "eve", "url": "javascript:alert(1)"}
    )
    assert (card.url, card.handle) == ("https://m.test/users/eve", "@eve@m.test")


def test_reply_html_escapes_everything_and_says_what_it_did() -> None:
    from federation.mentions import Asker, Matched

    asker = Asker("http://m.test/users/bob", "@bob@m.test", "bob", "http://m.test/@bob")
    resolved = Resolved(
        (Matched("radiohed", f"{BASE}artist/0", "Radiohead", True),), (("<b>x</b>", ("Björk",)),)
    )
    ranked = [Ranked(1, f"{BASE}artist/9", "<script>alert(1)</script>", 0.9)]
    text = reply_html(asker, resolved, ranked, recommendation="http://r.test/rec")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'class="u-url mention">@<span>bob</span>' in text
    assert "I read “radiohed” as Radiohead" in text
    assert "“&lt;b&gt;x&lt;/b&gt;” is not in my catalogue; did you mean Björk?" in text
    assert '<a href="http://r.test/rec">http://r.test/rec</a>' in text


# -- the service, in process ------------------------------------------------------------------------

BOB = {
    "id": "http://mastodon.test/users/bob",
    "type": "Person",
    "preferredUsername": "bob",
    "inbox": "http://mastodon.test/users/bob/inbox",
    "endpoints": {"sharedInbox": "http://mastodon.test/inbox"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def recommender() -> SnapshotRecommender:
    torch.manual_seed(0)
    tensors = toy_tensors()
    from models.snapshot import Snapshot, snapshot_bytes

    model = LightGCN(tensors.num_listeners, tensors.num_artists, 8, 2)
    data = snapshot_bytes(model, tensors)
    import hashlib

    snapshot = Snapshot(hashlib.sha256(data).hexdigest(), len(data), model, {"architecture": "lightgcn"})
    return SnapshotRecommender.from_snapshot(snapshot, tensors, node=NODE)


@pytest.fixture
def runtime(tmp_path: Path) -> HostRuntime:
    config = HostConfig(base_url="http://spore.test", data_dir=tmp_path, nodes=(NodeSpec("ada"),))
    runtime = HostRuntime(config=config, store=EmbeddedStore(), clock=Clock(), rng=random.Random(0))
    yield runtime
    runtime.state.close()
    runtime.deliveries.close()


def ask(service: AskingService, text: str, number: int = 1) -> None:
    note = _note(f"<p>@ada {text}</p>", [{"type": "Mention", "href": "http://spore.test/nodes/ada"}])
    note["id"] = f"{BOB['id']}/statuses/{number}"
    create = {"id": f"{note['id']}/activity", "type": "Create", "actor": BOB["id"], "object": note}
    asyncio.run(service.on_create(create, BOB["id"], BOB))


def replies(runtime: HostRuntime) -> list[dict[str, Any]]:
    return [json.loads(delivery.body) for delivery in runtime.deliveries.due(limit=1000)]


def test_an_ask_gets_a_public_reply_and_a_valid_recommendation(
    runtime: HostRuntime, recommender: SnapshotRecommender
) -> None:
    service = install_asking(runtime, lambda name: recommender if name == "ada" else None, k=5)
    assert service.on_create in runtime.processor.create_listeners
    ask(service, "recommend radiohead, Portishaed, Zeppelin")
    [delivery] = runtime.deliveries.due()
    assert delivery.inbox == "http://mastodon.test/inbox"  # the shared inbox, as Mastodon prefers
    create = json.loads(delivery.body)
    note = create["object"]
    assert create["type"] == "Create" and create["actor"] == "http://spore.test/nodes/ada"
    assert note["inReplyTo"] == f"{BOB['id']}/statuses/1"
    assert note["to"] == ["https://www.w3.org/ns/activitystreams#Public", BOB["id"]]
    assert note["tag"] == [{"type": "Mention", "href": BOB["id"], "name": "@bob@mastodon.test"}]
    assert "@<span>bob</span>" in note["content"]
    assert "Because you like Radiohead, Portishead, you might enjoy:" in note["content"]
    assert "“Zeppelin” is not in my catalogue" in note["content"]
    assert note["content"].count("<br>") == 4  # five recommendations, one a line
    assert runtime.state.get_object(note["id"])["inReplyTo"] == note["inReplyTo"]  # served by GET
    recommendation = note["attachment"][0]["href"]
    assert recommendation.startswith("http://spore.test/nodes/ada/recommendations/")

    graph = Graph()
    models = graph_iri(ox.NamedNode(NODE), GraphKind.MODELS)
    for quad in runtime.store.native.quads_for_pattern(None, None, None, models):
        graph.parse(data=f"{quad.subject} {quad.predicate} {quad.object} .", format="nt")
    assert Validator().validate(graph).conforms
    seeds = set(graph.objects(predicate=URIRef("https://w3id.org/spore/ns#seedArtist")))
    assert {str(s) for s in seeds} == {f"{BASE}artist/0", f"{BASE}artist/1"}


def test_unknown_artists_only_get_suggestions_not_silence(
    runtime: HostRuntime, recommender: SnapshotRecommender
) -> None:
    service = install_asking(runtime, lambda name: recommender)
    ask(service, "recommend Portis")
    [create] = replies(runtime)
    assert "did you mean Portishead?" in create["object"]["content"]
    assert "attachment" not in create["object"]  # nothing was recommended, so no RDF to link
    assert len(runtime.store.native) == 0


def test_a_bare_mention_gets_usage_help_and_no_model_gets_an_apology(runtime: HostRuntime) -> None:
    service = install_asking(runtime, lambda name: None)
    ask(service, "hello there", number=1)
    ask(service, "recommend Tricky", number=2)
    first, second = (create["object"]["content"] for create in replies(runtime))
    assert "recommend Radiohead, Portishead" in first
    assert "no trained model yet" in second


def test_a_flood_is_rate_limited_with_one_polite_reply(
    runtime: HostRuntime, recommender: SnapshotRecommender
) -> None:
    service = install_asking(runtime, lambda name: recommender, asks_per_minute=3, burst=3)
    for number in range(10):
        ask(service, "recommend Tricky", number=number)
    contents = [create["object"]["content"] for create in replies(runtime)]
    assert len(contents) == 4  # three answers, then one "please wait", then silence
    assert "asked me several times" in contents[3]
    runtime.clock.now += 60  # type: ignore[attr-defined]  # three more tokens a minute later
    ask(service, "recommend Tricky", number=99)
    assert "you might enjoy" in replies(runtime)[-1]["object"]["content"]


def test_bots_are_never_answered(runtime: HostRuntime, recommender: SnapshotRecommender) -> None:
    service = install_asking(runtime, lambda name: recommender)
    note = _note("<p>@ada recommend Tricky</p>", [{"type": "Mention", "href": "http://spore.test/nodes/ada"}])
    bot = {**BOB, "type": "Service"}
    create = {"id": "http://mastodon.test/a/1", "type": "Create", "actor": BOB["id"], "object": note}
    asyncio.run(service.on_create(create, BOB["id"], bot))
    assert replies(runtime) == []


def test_latest_snapshot_follows_the_newest_file(tmp_path: Path) -> None:
    tensors = toy_tensors()
    latest = LatestSnapshot(tmp_path, tensors, node=NODE)
    assert latest() is None
    first = save_snapshot(LightGCN(tensors.num_listeners, tensors.num_artists, 8, 1), tensors, tmp_path)
    assert latest().snapshot == f"{NODE}/snapshots/{first.sha256}"
    time.sleep(0.01)
    second = save_snapshot(LightGCN(tensors.num_listeners, tensors.num_artists, 8, 1), tensors, tmp_path)
    assert latest().snapshot == f"{NODE}/snapshots/{second.sha256}"
    assert [r.name for r in latest().recommend([f"{BASE}artist/0"], 3)][0] != "Radiohead"


# -- a real round trip over HTTP ----------------------------------------------------------------------


def ask_over_http(node: str, key: ActorKey, number: int, text: str, *, name: str = "@ada") -> str:
    """Bob's signed Create(Note) mentioning ``node`` ("{name} recommend {text}"), POSTed to its inbox;
    the Note's id, which the reply must name in inReplyTo."""
    bob = key.key_id.removesuffix("#main-key")
    note_id = f"{bob}/statuses/{number}"
    activity = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": bob,
        "to": [node],
        "object": {
            "id": note_id,
            "type": "Note",
            "attributedTo": bob,
            "to": [node],
            "content": f'<p><a href="{node}" class="mention">{name}</a> recommend {text}</p>',
            "tag": [{"type": "Mention", "href": node, "name": name}],
        },
    }
    body = json.dumps(activity).encode()
    inbox = f"{node}/inbox"
    media = "application/activity+json"
    headers = sign_cavage(method="POST", url=inbox, body=body, key=key, now=time.time(), content_type=media)
    assert httpx.post(inbox, content=body, headers=headers).status_code == 202
    return note_id


def person_server(private_key: Any, received: list[dict[str, Any]]) -> tuple[RunningHost, ActorKey]:
    """A minimal Fediverse account: a Person actor with a key, and an inbox that records what arrives."""
    sock = bind_loopback()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = FastAPI()
    actor_id = f"{origin}/users/bob"
    key = ActorKey(f"{actor_id}#main-key", private_key)

    @app.get("/users/bob")
    async def actor() -> JSONResponse:
        return JSONResponse(
            {
                "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                "id": actor_id,
                "type": "Person",
                "preferredUsername": "bob",
                "inbox": f"{actor_id}/inbox",
                "publicKey": {"id": key.key_id, "owner": actor_id, "publicKeyPem": key.public_key_pem},
            },
            media_type="application/activity+json",
        )

    @app.post("/users/bob/inbox")
    async def inbox(request: Request) -> Response:
        received.append({"headers": dict(request.headers), "body": json.loads(await request.body())})
        return Response(status_code=202)

    return RunningHost(app, sock).start(), key


@pytest.mark.slow
def test_a_person_asks_over_http_and_the_reply_arrives_signed(tmp_path: Path) -> None:
    tensors = toy_tensors()
    save_snapshot(LightGCN(tensors.num_listeners, tensors.num_artists, 8, 2), tensors, tmp_path / "snapshots")
    host = start_local_host(tmp_path / "host", nodes=(NodeSpec("ada"),))
    received: list[dict[str, Any]] = []
    try:
        node = host.runtime.actors.nodes["ada"].id
        latest = LatestSnapshot(tmp_path / "snapshots", tensors, node=node)
        install_asking(host.runtime, lambda name: latest())
        server, key = person_server(load_or_create_key(tmp_path / "bob.pem"), received)
        try:
            note_id = ask_over_http(node, key, 1, "RADIOHEAD, bjork")
            deadline = time.monotonic() + 20
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
            [reply] = received
            note = reply["body"]["object"]
            rdf_link = note["attachment"][1]["href"]
            turtle = httpx.get(rdf_link, headers={"accept": "text/turtle"})
            dereferenced = httpx.get(note["attachment"][0]["href"], headers={"accept": "text/turtle"})
        finally:
            server.stop()
    finally:
        host.stop()
    assert "signature" in reply["headers"]
    assert note["inReplyTo"] == note_id
    assert "Because you like Radiohead, Björk, you might enjoy:" in note["content"]
    # The recommendation's IRI dereferences, and the SPARQL link answers, with the stored
    # spore:Recommendation, items included.
    recommendation = URIRef(note["attachment"][0]["href"])
    assert f'<a href="{recommendation}">' in note["content"]
    for answer in (dereferenced, turtle):
        assert answer.status_code == 200
        rdf = Graph().parse(data=answer.text, format="turtle")
        assert (recommendation, None, None) in rdf
        assert Validator().validate(rdf).conforms
