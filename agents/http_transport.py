"""The protocol's second transport: SPORE messages as signed ActivityPub activities between real hosts.

Outgoing, a protocol message becomes its JSON-LD activity (:func:`agents.protocol.wire.to_activity`),
recorded in the sender's outbox and queued for a signed POST to each recipient's inbox by the
federation layer's durable delivery. Model updates travel as content-addressed safetensors artifacts:
the activity names them by SHA-256 and links ``{actor}/artifacts/{sha256}``, which this host serves
from an :class:`ArtifactStore`; the receiver fetches the bytes by signed GET and the wire decoder
checks them against the digest before the update exists as a value.

Incoming, the federation inbox has already verified the HTTP signature; the processor hands every
activity to :meth:`HttpTransport.receive` first (``Processor.intercept``), which takes the SPORE
activities, decodes them and delivers an :class:`~agents.protocol.core.Envelope` naming the *signer*
(never the claimed actor) to the node runtime. Everything that fails to decode is still delivered, as
an envelope with an error, so that the core counts it (``dropped:malformed``) as the simulator does.

Routing of public activities follows the simulator: an ``Announce`` tagged with hashtags goes to the
known nodes that seek one of them (:class:`PeerDirectory`, filled from this host's nodes and from the
peers' ``/status``), as Mastodon delivers to followed hashtags.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from agents.protocol.core import Envelope
from agents.protocol.messages import PUBLIC, Message, MessageError
from agents.protocol.wire import SPORE_NS, from_activity, to_activity
from federation.actors import LocalActor
from federation.client import FetchError
from federation.keyring import RemoteKey, actor_endpoints
from federation.runtime import HostRuntime
from federation.vocab import ids_of, same_origin

__all__ = [
    "ArtifactStore",
    "HttpTransport",
    "PeerDirectory",
    "artifact_links",
    "artifact_router",
    "is_protocol_activity",
    "outgoing_activity",
]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A Last.fm-2k artist table (17.6k x 64 fp32) is 4.5 MB; anything far beyond is not a SPORE update.
DEFAULT_MAX_ARTIFACT_BYTES = 64 * 1024 * 1024

Deliver = Callable[[str, Envelope], Awaitable[None]]


class ArtifactStore:
    """Artifacts this host serves, by SHA-256, newest kept (an update matters for a round or two).

    Bounded by total bytes rather than count: a LightGCN update is a hundred times a linear one.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self.served: dict[str, int] = {}  # owner actor -> artifact bytes served to peers

    def put(self, owner: str, digest: str, blob: bytes) -> None:
        if digest in self._blobs:
            self._blobs.move_to_end(digest)
            return
        self._blobs[digest] = (owner, blob)
        self._size += len(blob)
        while self._size > self.max_bytes and len(self._blobs) > 1:
            _, (_, dropped) = self._blobs.popitem(last=False)
            self._size -= len(dropped)

    def get(self, digest: str) -> tuple[str, bytes] | None:
        return self._blobs.get(digest)

    def serve(self, owner: str, digest: str) -> bytes | None:
        """The artifact if ``owner`` published it (a node serves only its own), counting the bytes."""
        found = self._blobs.get(digest)
        if found is None or found[0] != owner:
            return None
        self.served[owner] = self.served.get(owner, 0) + len(found[1])
        return found[1]


@dataclass
class PeerDirectory:
    """Known node actors: their inboxes and the hashtags they seek (for routing public activities)."""

    inboxes: dict[str, str] = field(default_factory=dict)  # actor -> the inbox to POST to
    seeks: dict[str, frozenset[str]] = field(default_factory=dict)

    def learn(self, actor: str, *, inbox: str | None = None, seeks: Iterable[str] | None = None) -> None:
        if inbox is not None:
            self.inboxes[actor] = inbox
        if seeks is not None:
            self.seeks[actor] = frozenset(seeks)

    def followers(self, hashtags: Iterable[str]) -> list[str]:
        """Actors seeking any of ``hashtags``; with no hashtag, every known actor."""
        wanted = set(hashtags)
        if not wanted:
            return sorted(self.seeks)
        return sorted(actor for actor, seeks in self.seeks.items() if seeks & wanted)


def is_protocol_activity(activity: dict[str, Any]) -> bool:
    """A SPORE protocol activity carries the wire context's inline ``spore`` prefix.

    Federation activities that merely mention SPORE terms use the published context URL instead, so
    this tells the protocol's traffic from a Mastodon user's Follow of a node.
    """
    context = activity.get("@context")
    entries = context if isinstance(context, list) else [context]
    return any(isinstance(entry, dict) and entry.get("spore") == SPORE_NS for entry in entries)


def artifact_links(activity: dict[str, Any]) -> list[tuple[str, str]]:
    """``(sha256, url)`` of every artifact the activity names: a model update or co-listening
    statistics (Create's object), the group model (Accept's result)."""
    links = []
    for key in ("object", "result"):
        value = activity.get(key)
        if not isinstance(value, dict) or "spore:sha256" not in value:
            continue
        digest, url = value["spore:sha256"], value.get("url")
        href = url.get("href") if isinstance(url, dict) else url
        if not isinstance(digest, str) or not _SHA256.match(digest) or not isinstance(href, str):
            raise MessageError("model update without a sha256 and an artifact URL")
        links.append((digest, href))
    return links


def outgoing_activity(message: Message) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The activity for ``message`` as it goes on the wire, and its artifacts.

    A Create's object gets an id under the activity: ActivityPub inboxes (ours included, see
    ``federation.inbox.check_origins``) refuse a Create whose object has none.
    """
    activity, artifacts = to_activity(message)
    if activity["type"] == "Create" and isinstance(activity.get("object"), dict):
        activity["object"] = {"id": f"{message.id}/object", **activity["object"]}
    return activity, artifacts


@dataclass
class HttpTransport:
    """The ``Transport`` of nodes hosted on one federation runtime; ``deliver`` hands envelopes on."""

    runtime: HostRuntime
    deliver: Deliver
    artifacts: ArtifactStore = field(default_factory=ArtifactStore)
    directory: PeerDirectory = field(default_factory=PeerDirectory)
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    sent_bytes: dict[str, int] = field(default_factory=dict)  # sender -> activity bytes POSTed
    stats: dict[str, int] = field(default_factory=dict)
    # owner -> (sha256, bytes) of its latest published snapshot (agents.node_publish): kept apart from
    # the update artifacts so that snapshots never evict an update a peer has still to fetch.
    snapshots: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def snapshot(self, owner: str, digest: str) -> bytes | None:
        held = self.snapshots.get(owner)
        return held[1] if held is not None and held[0] == digest else None

    def install(self) -> None:
        """Take SPORE activities from the host's inbox processing before its default handlers."""
        self.runtime.processor.intercept = self.receive

    def count(self, key: str, amount: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + amount

    # -- outgoing ----------------------------------------------------------------------------------
    def send(self, sender: str, message: Message) -> None:
        """The ``Transport`` interface for callers off the host's loop: schedules :meth:`send_async`."""
        loop = self.runtime.loop
        if loop is None:
            raise RuntimeError("the host is not running")
        asyncio.run_coroutine_threadsafe(self.send_async(sender, message), loop)

    async def send_async(self, sender: str, message: Message) -> int:
        """Record and queue ``message`` for every recipient's inbox; returns how many POSTs were queued."""
        local = self.runtime.actors.by_id(sender)
        if local is None:
            raise ValueError(f"{sender} is not a node of this host")
        activity, artifacts = outgoing_activity(message)
        for digest, blob in artifacts.items():
            self.artifacts.put(sender, digest, blob)
        recipients = self.directory.followers(message.hashtags) if PUBLIC in message.to else list(message.to)
        inboxes: dict[str, None] = {}
        for recipient in dict.fromkeys(recipients):
            if recipient == sender:
                continue
            inbox = await self._inbox(recipient)
            if inbox is None:
                self.count("unreachable")
                continue
            inboxes[inbox] = None
        if not inboxes:
            return 0
        queued = self.runtime.outbox.send(local, activity, inboxes)
        # The same bytes Outbox.send serialises: what each POST carries.
        body = len(json.dumps(activity).encode("utf-8"))
        self.sent_bytes[sender] = self.sent_bytes.get(sender, 0) + body * queued
        self.count("sent", queued)
        return queued

    async def _inbox(self, actor: str) -> str | None:
        """Where to POST for ``actor``: its host's shared inbox when it has one (one POST per host)."""
        if self.runtime.actors.by_id(actor) is not None:
            return f"{self.runtime.config.base_url}/inbox"
        known = self.directory.inboxes.get(actor)
        if known is not None:
            return known
        try:
            inbox, shared = actor_endpoints(await self.runtime.fetch_signed(actor))
        except FetchError as error:
            log.warning("no inbox for %s: %s", actor, error)
            return None
        inbox = shared or inbox
        if inbox is not None:
            self.directory.learn(actor, inbox=inbox)
        return inbox

    # -- incoming ----------------------------------------------------------------------------------
    async def receive(
        self, activity: dict[str, Any], signer: RemoteKey, recipients: list[LocalActor]
    ) -> bool:
        """``Processor.intercept``: decode a SPORE activity and deliver it to the local nodes it is for.

        Those are computed here rather than taken from the inbox: a peer POSTs an activity once per
        host (to the shared inbox), since the inbox drops a second POST of the same id as a replay.
        Addressed nodes get it; a public one goes to the local nodes that seek one of its hashtags.
        """
        if not is_protocol_activity(activity):
            return False
        envelope = await self.decode(activity, signer.owner)
        addressed = set(ids_of(activity.get("to")))
        targets = [actor for actor in self.local_nodes() if actor in addressed]
        if PUBLIC in addressed and envelope.message is not None:
            local = set(self.local_nodes())
            targets += [a for a in self.directory.followers(envelope.message.hashtags) if a in local]
        if not targets:
            self.count("dropped:no-local-node")
        for node in dict.fromkeys(targets):
            if node != signer.owner:
                await self.deliver(node, envelope)
        return True

    def local_nodes(self) -> list[str]:
        return [actor.id for actor in self.runtime.actors.nodes.values()]

    async def decode(self, activity: dict[str, Any], sender: str) -> Envelope:
        """The envelope for ``activity`` from the authenticated ``sender``, its artifacts fetched."""
        try:
            artifacts = {
                digest: await self._artifact(digest, url, sender) for digest, url in artifact_links(activity)
            }
            return Envelope(sender, from_activity(activity, artifacts))
        except (MessageError, FetchError) as error:
            self.count("malformed")
            log.info("undecodable SPORE activity %s from %s: %s", activity.get("id"), sender, error)
            return Envelope(sender, None, str(error))

    async def _artifact(self, digest: str, url: str, sender: str) -> bytes:
        """The artifact's bytes: from this host when a local node published it, else by signed GET.

        Only from the sender's own origin: an update names bytes its author serves, so a link elsewhere
        would make this host fetch arbitrary URLs for a peer. The wire decoder checks the digest.
        """
        held = self.artifacts.get(digest)
        if held is not None:
            return held[1]
        if not same_origin(url, sender):
            raise MessageError(f"artifact {url} is not on the origin of {sender}")
        blob = await self.runtime.client.get_bytes(
            url, sign_as=self.runtime.actors.instance.key, max_bytes=self.max_artifact_bytes
        )
        self.count("artifacts-fetched")
        self.count("artifact-bytes-fetched", len(blob))
        return blob


def artifact_router(transport: HttpTransport) -> APIRouter:
    """``GET /nodes/{name}/artifacts/{sha256}``: a node's published update artifacts and its latest
    snapshot (safetensors)."""
    router = APIRouter()
    base = transport.runtime.config.base_url

    @router.get("/nodes/{name}/artifacts/{digest}")
    async def artifact(name: str, digest: str) -> Response:
        if not _SHA256.match(digest):
            return JSONResponse(
                {"error": "an artifact is named by a lower-case hex SHA-256"}, status_code=400
            )
        owner = f"{base}/nodes/{name}"
        blob = transport.artifacts.serve(owner, digest) or transport.snapshot(owner, digest)
        if blob is None:
            return JSONResponse({"error": f"no artifact {digest} of node {name}"}, status_code=404)
        return Response(
            blob,
            media_type="application/octet-stream",
            headers={"cache-control": "public, max-age=31536000, immutable", "etag": f'"{digest}"'},
        )

    return router
