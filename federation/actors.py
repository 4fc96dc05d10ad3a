"""The host's local actors (nodes, groups, the instance actor) and their JSON-LD documents.

URL layout, all under the configured base URL (documented in docs/federation.md):
``/nodes/{name}`` (+ ``/inbox``, ``/outbox``, ``/followers``, ``/following``), ``/groups/{name}`` (same),
``/actor`` the instance actor, ``/inbox`` the shared inbox, ``/objects/{id}`` published objects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.config import GroupSpec, HostConfig, NodeSpec
from federation.jsonld import ACTOR_CONTEXT, AS2_CONTEXT_URL
from federation.keyring import RemoteKey
from federation.keys import ActorKey, load_or_create_key
from federation.vocab import ActorType

__all__ = ["LocalActor", "ActorKind", "ActorDirectory", "collection", "collection_page"]


class ActorKind(enum.StrEnum):
    NODE = "nodes"
    GROUP = "groups"
    INSTANCE = "instance"


@dataclass(frozen=True)
class LocalActor:
    kind: ActorKind
    name: str
    id: str
    key: ActorKey
    node: NodeSpec | None = None
    group: GroupSpec | None = None

    @property
    def inbox(self) -> str:
        return f"{self.id}/inbox"

    @property
    def outbox(self) -> str:
        return f"{self.id}/outbox"

    @property
    def followers(self) -> str:
        return f"{self.id}/followers"

    @property
    def following(self) -> str:
        return f"{self.id}/following"


class ActorDirectory:
    """All local actors of a host, their keys loaded (or created once) from ``data_dir/keys``."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        key_dir = Path(config.data_dir) / "keys"
        base = config.base_url
        self.instance = self._make(
            ActorKind.INSTANCE, config.domain, f"{base}/actor", key_dir / "instance.pem"
        )
        self.nodes = {
            spec.name: self._make(
                ActorKind.NODE,
                spec.name,
                f"{base}/nodes/{spec.name}",
                key_dir / f"node-{spec.name}.pem",
                node=spec,
            )
            for spec in config.nodes
        }
        self.groups = {
            spec.name: self._make(
                ActorKind.GROUP,
                spec.name,
                f"{base}/groups/{spec.name}",
                key_dir / f"group-{spec.name}.pem",
                group=spec,
            )
            for spec in config.groups
        }
        self._by_id = {
            actor.id: actor for actor in [self.instance, *self.nodes.values(), *self.groups.values()]
        }
        self._by_key = {actor.key.key_id: actor for actor in self._by_id.values()}

    @staticmethod
    def _make(kind: ActorKind, name: str, actor_id: str, key_path: Path, **spec: Any) -> LocalActor:
        key = ActorKey(f"{actor_id}#main-key", load_or_create_key(key_path))
        return LocalActor(kind=kind, name=name, id=actor_id, key=key, **spec)

    def add_node(self, spec: NodeSpec) -> LocalActor:
        """Serve one more node actor from now on (a node spawned on a running host): key, id, lookups."""
        if spec.name in self.nodes or spec.name in self.groups:
            raise ValueError(f"{spec.name!r} is already an actor of {self.config.base_url}")
        base, key_dir = self.config.base_url, Path(self.config.data_dir) / "keys"
        actor = self._make(
            ActorKind.NODE,
            spec.name,
            f"{base}/nodes/{spec.name}",
            key_dir / f"node-{spec.name}.pem",
            node=spec,
        )
        self.nodes[spec.name] = actor
        self._by_id[actor.id] = actor
        self._by_key[actor.key.key_id] = actor
        return actor

    def by_id(self, actor_id: str) -> LocalActor | None:
        return self._by_id.get(actor_id)

    def all(self) -> list[LocalActor]:
        return list(self._by_id.values())

    def local_key(self, key_id: str) -> RemoteKey | None:
        """Resolve a key of this host without HTTP (nodes on one host federate through the same path)."""
        actor = self._by_key.get(key_id)
        if actor is None:
            return None
        return RemoteKey(key_id, actor.id, actor.key.private_key.public_key(), None)

    def document(self, actor: LocalActor) -> dict[str, Any]:
        base = self.config.base_url
        if actor.kind is ActorKind.INSTANCE:
            kind, username, name, summary = (
                ActorType.APPLICATION,
                actor.name,
                actor.name,
                "The host of these fungus nodes.",
            )
        elif actor.kind is ActorKind.NODE and actor.node is not None:
            kind, username = ActorType.SERVICE, actor.name
            name, summary = actor.node.display_name or actor.name, actor.node.summary
        else:
            assert actor.group is not None  # ActorKind.GROUP by construction
            kind, username = ActorType.GROUP, actor.name
            name, summary = actor.group.hashtag, actor.group.summary
        document: dict[str, Any] = {
            "@context": ACTOR_CONTEXT,
            "id": actor.id,
            "type": kind.value,
            "preferredUsername": username,
            "name": name,
            "summary": summary,
            "url": actor.id,
            "inbox": actor.inbox if actor.kind is not ActorKind.INSTANCE else f"{base}/inbox",
            "outbox": actor.outbox,
            "followers": actor.followers,
            "following": actor.following,
            "endpoints": {"sharedInbox": f"{base}/inbox"},
            "manuallyApprovesFollowers": False,
            "discoverable": True,
            "publicKey": {
                "id": actor.key.key_id,
                "owner": actor.id,
                "publicKeyPem": actor.key.public_key_pem,
            },
        }
        if actor.node is not None:
            if actor.node.blueprint:
                document["blueprint"] = actor.node.blueprint
            # Every node answers SPARQL at {actor}/sparql (federation/sparql.py) unless configured elsewhere.
            document["sparqlEndpoint"] = actor.node.sparql_endpoint or f"{actor.id}/sparql"
        if actor.group is not None:
            document["hashtag"] = actor.group.hashtag
            document["tag"] = [hashtag_object(base, actor.group.hashtag)]
        return document


def hashtag_object(base_url: str, hashtag: str) -> dict[str, str]:
    return {"type": "Hashtag", "name": hashtag, "href": f"{base_url}/tags/{hashtag.lstrip('#').lower()}"}


def collection(collection_id: str, total: int) -> dict[str, Any]:
    """An ``OrderedCollection`` that points at its first page (AS2 core section 2.3)."""
    document: dict[str, Any] = {
        "@context": AS2_CONTEXT_URL,
        "id": collection_id,
        "type": "OrderedCollection",
        "totalItems": total,
    }
    if total:
        document["first"] = f"{collection_id}?page=1"
    return document


def collection_page(collection_id: str, page: int, items: list[Any], *, has_next: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": AS2_CONTEXT_URL,
        "id": f"{collection_id}?page={page}",
        "type": "OrderedCollectionPage",
        "partOf": collection_id,
        "orderedItems": items,
    }
    if has_next:
        document["next"] = f"{collection_id}?page={page + 1}"
    if page > 1:
        document["prev"] = f"{collection_id}?page={page - 1}"
    return document
