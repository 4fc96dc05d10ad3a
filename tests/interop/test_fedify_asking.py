"""A Fedify 2.3.6 account asks a SPORE node for recommendations, as a Mastodon user would.

Fedify sends ``Create(Note)`` mentioning the node ("@ada recommend ..."), signed as Fedify signs;
the node answers with a public reply that Fedify receives in its inbox, verifies and parses: a
``Note`` in reply to the ask, mentioning the asker, listing recommendations and suggestions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from interop_peers import FedifyPeer

from federation.answering import install_asking

pytestmark = [pytest.mark.interop, pytest.mark.slow]

BASE = "https://w3id.org/spore/data/test/"
NAMES = ("Radiohead", "Portishead", "Massive Attack", "Björk", "Tricky", "Goldfrapp", "Air", "Moby")


def asking_host(spore_hosts: Callable[..., Any], **options: Any) -> Any:
    """A host with one node, "ada", answering asks from a small LightGCN over eight artists."""
    from agents.asking import SnapshotRecommender
    from models.data import MusicTensors
    from models.lightgcn import LightGCN
    from models.snapshot import Snapshot

    generator = torch.Generator().manual_seed(0)
    rows = [listener for listener in range(16) for _ in range(3)]
    cols = [int(a) for _ in range(16) for a in torch.randperm(len(NAMES), generator=generator)[:3]]
    tensors = MusicTensors(
        listeners=tuple(f"{BASE}listener/{i}" for i in range(16)),
        artists=tuple(f"{BASE}artist/{i}" for i in range(len(NAMES))),
        tags=(f"{BASE}tag/0",),
        entities=(f"{BASE}entity/0",),
        relations=(f"{BASE}relation/0",),
        interactions=torch.tensor([rows, cols]),
        play_counts=torch.ones(len(rows)),
        artist_tags=torch.tensor([[0], [0]]),
        artist_entities=torch.tensor([[0], [0], [0]]),
        artist_names=NAMES,
    )
    torch.manual_seed(0)
    model = LightGCN(tensors.num_listeners, tensors.num_artists, 8, 2)
    snapshot = Snapshot("0" * 64, 0, model, {"architecture": "lightgcn"})
    host = spore_hosts("ada")
    node = f"{host.runtime.config.base_url}/nodes/ada"
    recommender = SnapshotRecommender.from_snapshot(snapshot, tensors, node=node)
    install_asking(host.runtime, lambda name: recommender, k=3, **options)
    return host


@pytest.fixture(scope="module")
def host(spore_hosts: Callable[..., Any]) -> Any:
    return asking_host(spore_hosts)


def ask(peer: FedifyPeer, host: Any, text: str) -> dict[str, Any]:
    node = f"{host.runtime.config.base_url}/nodes/ada"
    mention = f'<span class="h-card"><a href="{node}" class="u-url mention">@<span>ada</span></a></span>'
    content = f"<p>{mention} {text}</p>"
    sent = peer.send(
        "Create-Note",
        node,
        content=content,
        mentions=[{"href": node, "name": f"@ada@{host.runtime.config.domain}"}],
    )
    assert sent["ok"], (sent, peer.diagnostics())
    return sent


def reply_to(peer: FedifyPeer, note_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for activity in peer.received("Create"):
            if activity.get("parsed", {}).get("inReplyTo") == note_id:
                return activity
        return None

    from interop_peers import wait_until

    return wait_until(find, timeout=20, what=f"a reply to {note_id} at the Fedify peer")


def test_fedify_user_asks_and_receives_a_public_reply(host: Any, fedify_peer: FedifyPeer) -> None:
    sent = ask(fedify_peer, host, "recommend RADIOHEAD, bjork, Portis")
    note_id = sent["json"]["object"]["id"]

    reply = reply_to(fedify_peer, note_id)

    parsed = reply["parsed"]
    assert parsed["type"] == "Note"
    assert parsed["attributedTo"] == f"{host.runtime.config.base_url}/nodes/ada"
    assert "https://www.w3.org/ns/activitystreams#Public" in parsed["to"]
    assert fedify_peer.actor in parsed["to"]
    mentions = [tag for tag in parsed["tags"] if tag["type"] == "Mention"]
    assert [tag["href"] for tag in mentions] == [fedify_peer.actor]
    assert mentions[0]["name"].startswith("@peer@")
    assert "Because you like Radiohead, Björk, you might enjoy:" in parsed["content"]
    assert "did you mean Portishead?" in parsed["content"]
    assert f'href="{fedify_peer.actor}"' in parsed["content"]  # the @handle links the asker
    assert "/recommendations/" in parsed["content"]  # and the list's RDF is linked
    assert fedify_peer.log()["unverified"] == []  # Fedify verified our signature on the reply


def test_fedify_user_flooding_the_node_gets_one_polite_reply(
    spore_hosts: Callable[..., Any], fedify_peer: FedifyPeer
) -> None:
    flooded = asking_host(spore_hosts, asks_per_minute=1, burst=2)
    sent = [ask(fedify_peer, flooded, "recommend Tricky") for _ in range(5)]

    replies = [reply_to(fedify_peer, s["json"]["object"]["id"]) for s in sent[:3]]
    flooded.settle()

    contents = [r["parsed"]["content"] for r in replies]
    assert all("you might enjoy" in c for c in contents[:2])
    assert "asked me several times" in contents[2]
    answered = {r["parsed"]["inReplyTo"] for r in fedify_peer.received("Create")}
    assert not answered & {s["json"]["object"]["id"] for s in sent[3:]}  # then silence
