"""Asynchronous processing of accepted activities: side effects by type, then RDF into the nodes' graphs.

The inbox answers 202 as soon as an activity is verified; this worker does the rest. Activities are
taken in batches so that the store sees one write per batch rather than one per activity (the store
write, not the signature check, is what limits inbox throughput).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import nh3
import pyoxigraph as ox

from federation.actors import ActorDirectory, ActorKind, LocalActor
from federation.client import FetchError
from federation.config import GroupSpec
from federation.jsonld import AS2_CONTEXT_URL, to_graph_quads
from federation.keyring import RemoteKey, actor_endpoints
from federation.outbox import Outbox
from federation.state import FederationState, Relation
from federation.vocab import ActivityType, id_of, ids_of, types_of
from knowledge.graphs import GraphKind, graph_iri

__all__ = [
    "Processor",
    "AdmissionPolicy",
    "CreateListener",
    "Intercept",
    "QuadSink",
    "admit_all",
    "sanitise",
    "peers_graph",
]

log = logging.getLogger(__name__)

# The node runtime decides who may join a learning group; the default admits anyone not blocked.
AdmissionPolicy = Callable[[GroupSpec, str], bool]
FetchActor = Callable[[str], Awaitable[dict[str, Any]]]
# Called for every verified Create with (activity, signer's actor id, its actor document if known):
# how features such as answering asks (federation/answering.py) see Notes without a handler of their own.
CreateListener = Callable[[dict[str, Any], str, dict[str, Any] | None], Awaitable[None]]
# A hook that takes an activity before the default handlers (the SPORE protocol's node runtime);
# it returns True when it consumed the activity, so that no default handler also acts on it.
Intercept = Callable[[dict[str, Any], RemoteKey, list[LocalActor]], Awaitable[bool]]
_TEXT_KEYS = ("content", "summary", "name")


class QuadSink(Protocol):
    """The part of :class:`knowledge.store.KnowledgeStore` the processor writes through."""

    def extend(self, quads: Any) -> None: ...


def peers_graph(actor_id: str) -> ox.NamedNode:
    """The graph holding what a local actor received from peers: ``{node}/graphs/peers``."""
    return graph_iri(ox.NamedNode(actor_id), GraphKind.PEERS)


def sanitise(document: Any) -> Any:
    """A copy with every HTML text (content, summary, name and their language maps) cleaned by nh3.

    Received HTML is attacker-controlled; cleaning it once on arrival means nothing downstream (the
    HTML view, a SPARQL result rendered in a browser) can show a script from a peer.
    """
    if isinstance(document, list):
        return [sanitise(item) for item in document]
    if not isinstance(document, dict):
        return document
    cleaned: dict[str, Any] = {}
    for key, value in document.items():
        base = key.removesuffix("Map")
        if base in _TEXT_KEYS and isinstance(value, str):
            cleaned[key] = nh3.clean(value)
        elif base in _TEXT_KEYS and key.endswith("Map") and isinstance(value, dict):
            cleaned[key] = {
                lang: nh3.clean(text) if isinstance(text, str) else text for lang, text in value.items()
            }
        elif key == "@context":
            cleaned[key] = value
        else:
            cleaned[key] = sanitise(value)
    return cleaned


@dataclass(frozen=True)
class Incoming:
    """A verified activity as a handler sees it: ``actor`` is the signer's key owner, never a claim."""

    activity: dict[str, Any]
    signer: RemoteKey
    target: LocalActor | None  # the local actor named by ``object``, if any
    now: float

    @property
    def actor(self) -> str:
        return self.signer.owner

    @property
    def id(self) -> str:
        return str(self.activity["id"])


@dataclass(frozen=True)
class Received:
    activity: dict[str, Any]
    signer: RemoteKey
    inbox_owner: str | None


def admit_all(group: GroupSpec, actor: str) -> bool:
    """The default admission policy: every actor the group has not blocked may join."""
    return True


class Processor:
    def __init__(
        self,
        *,
        actors: ActorDirectory,
        state: FederationState,
        outbox: Outbox,
        store: QuadSink,
        fetch_actor: FetchActor,
        clock: Callable[[], float],
        admission: AdmissionPolicy = admit_all,
        forget_key: Callable[[str], None] = lambda owner: None,
        queue_size: int = 10_000,
        batch_size: int = 16,  # bounds how long one batch holds the event loop (p99 latency)
        gather_seconds: float = 0.01,  # how long a lone activity waits for others to share its batch
    ) -> None:
        self.actors = actors
        self.state = state
        self.outbox = outbox
        self.store = store
        self.fetch_actor = fetch_actor
        self.clock = clock
        self.admission = admission
        self.forget_key = forget_key
        self.batch_size = batch_size
        self.gather_seconds = gather_seconds
        # An embedded store writes in-process (~25 us a quad on disk) and, for a partial batch, inline: a
        # hand-off to a thread costs more CPU than it saves. A full batch means a backlog, where the
        # event loop is the bottleneck: then the write (pyoxigraph releases the GIL) runs in a thread
        # while the loop answers POSTs. A remote store does HTTP, which must never block the loop.
        self.inline_writes = hasattr(store, "native")
        self.queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=queue_size)
        self.processed = 0
        self.create_listeners: list[CreateListener] = []
        self.intercept: Intercept | None = None

    async def submit(self, activity: dict[str, Any], signer: RemoteKey, inbox_owner: str | None) -> bool:
        try:
            self.queue.put_nowait(Received(activity, signer, inbox_owner))
        except asyncio.QueueFull:
            return False
        return True

    async def drain(self) -> None:
        """Wait until everything accepted so far is processed (deterministic tests)."""
        await self.queue.join()

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if self.queue.qsize() < self.batch_size and self.gather_seconds > 0:
                # Wait a moment for more: a batch has a fixed cost (one JSON-LD context to process, one
                # store transaction, one sqlite commit) that made a batch of one cost 0.5 ms of CPU
                # per activity against 0.33 ms in a batch of eight. Only storage waits: the senders
                # already have their 202.
                await asyncio.sleep(self.gather_seconds)
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self.process_batch(batch)
            except Exception:  # one poisoned batch must not stop the worker
                log.exception("processing a batch of %d activities failed", len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()
            await asyncio.sleep(0)  # let waiting requests in: get() on a full queue never suspends

    async def process_batch(self, batch: list[Received]) -> None:
        entries: list[tuple[dict[str, Any], list[str]]] = []
        for item in batch:
            activity = sanitise(item.activity)
            recipients = self.recipients(activity, item.inbox_owner)
            try:
                await self.handle(activity, item.signer, recipients)
            except FetchError as error:  # e.g. the follower's actor document is unreachable or refused
                log.warning("handling %s failed: %s", activity.get("id"), error)
            except Exception:
                log.exception("handling %s failed", activity.get("id"))
            if "@context" not in activity:
                activity = {"@context": AS2_CONTEXT_URL, **activity}
            entries.append((activity, [peers_graph(actor.id).value for actor in recipients]))
        if self.inline_writes and len(batch) < self.batch_size:
            errors = self._store_entries(entries)
        else:
            errors = await asyncio.to_thread(self._store_entries, entries)
        for error in errors:
            log.warning("activity not stored as RDF: %s", error)
        self.processed += len(batch)

    def _store_entries(self, entries: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
        quads, errors = to_graph_quads(entries)
        if quads:
            self.store.extend(quads)
        self.state.write_sightings()  # the batch's activity ids, one transaction (see first_sighting)
        return errors

    def recipients(self, activity: dict[str, Any], inbox_owner: str | None) -> list[LocalActor]:
        """Local actors an activity concerns: the inbox owner, or (shared inbox) all addressed or related."""
        if inbox_owner is not None:
            owner = self.actors.by_id(inbox_owner)
            return [owner] if owner else []
        found: dict[str, LocalActor] = {}
        for key in ("to", "cc", "bto", "bcc", "audience", "object"):
            for iri in ids_of(activity.get(key)):
                actor = self.actors.by_id(iri.removesuffix("/followers"))
                if actor is not None:
                    found[actor.id] = actor
        actor_id = id_of(activity.get("actor"))
        if actor_id:
            for local in self.state.locals_related_to(
                actor_id, [Relation.FOLLOWING, Relation.FOLLOWER, Relation.MEMBER]
            ):
                actor = self.actors.by_id(local)
                if actor is not None:
                    found[actor.id] = actor
        return list(found.values()) or [self.actors.instance]

    async def _inbox_of(self, signer: RemoteKey, actor_id: str) -> tuple[str | None, str | None]:
        document = (
            signer.actor
            if signer.actor is not None and signer.owner == actor_id
            else await self.fetch_actor(actor_id)
        )
        return actor_endpoints(document)

    async def handle(self, activity: dict[str, Any], signer: RemoteKey, recipients: list[LocalActor]) -> None:
        """Run the side effect of each of the activity's types (one handler per type, see ``_HANDLERS``)."""
        if self.intercept is not None and await self.intercept(activity, signer, recipients):
            return
        incoming = Incoming(
            activity, signer, self.actors.by_id(id_of(activity.get("object")) or ""), self.clock()
        )
        for kind in sorted(types_of(activity)):
            handler = _HANDLERS.get(kind)
            if handler is not None:
                await handler(self, incoming)

    async def _follow(self, incoming: Incoming) -> None:
        """Follow of a node (or of a group, as Mastodon users do): accept unless blocked."""
        target, actor_id = incoming.target, incoming.actor
        if target is None:
            return
        inbox, shared = await self._inbox_of(incoming.signer, actor_id)
        if inbox is None:
            return
        if self.state.relation_state(target.id, actor_id, Relation.BLOCKING) is not None:
            self.outbox.respond(target, ActivityType.REJECT, incoming.activity, inbox)
            return
        kind = Relation.MEMBER if target.kind is ActorKind.GROUP else Relation.FOLLOWER
        self.state.relate(
            target.id,
            actor_id,
            kind,
            activity_id=incoming.id,
            inbox=inbox,
            shared_inbox=shared,
            now=incoming.now,
        )
        self.outbox.respond(target, ActivityType.ACCEPT, incoming.activity, inbox)

    async def _join(self, incoming: Incoming) -> None:
        """Join of a learning group: the admission policy decides, Accept or Reject answers."""
        target, actor_id = incoming.target, incoming.actor
        if target is None or target.group is None:
            return
        inbox, shared = await self._inbox_of(incoming.signer, actor_id)
        if inbox is None:
            return
        blocked = self.state.relation_state(target.id, actor_id, Relation.BLOCKING) is not None
        admitted = not blocked and self.admission(target.group, actor_id)
        if admitted:
            self.state.relate(
                target.id,
                actor_id,
                Relation.MEMBER,
                activity_id=incoming.id,
                inbox=inbox,
                shared_inbox=shared,
                now=incoming.now,
            )
        answer = ActivityType.ACCEPT if admitted else ActivityType.REJECT
        self.outbox.respond(target, answer, incoming.activity, inbox)

    async def _leave(self, incoming: Incoming) -> None:
        if incoming.target is not None:
            self.state.unrelate(incoming.target.id, incoming.actor, Relation.MEMBER)

    async def _accept(self, incoming: Incoming) -> None:
        self._settle_request(incoming.activity, incoming.actor, accepted=True)

    async def _reject(self, incoming: Incoming) -> None:
        self._settle_request(incoming.activity, incoming.actor, accepted=False)

    async def _undo(self, incoming: Incoming) -> None:
        undone, actor_id = incoming.activity.get("object"), incoming.actor
        if isinstance(undone, str):
            relation = self.state.relation_by_activity(undone)
            if relation is not None and relation[1] == actor_id:
                self.state.unrelate(*relation)
            return
        if not isinstance(undone, dict) or id_of(undone.get("actor")) != actor_id:
            return  # only the author may undo an activity
        local = self.actors.by_id(id_of(undone.get("object")) or "")
        if local is not None and types_of(undone) & {ActivityType.FOLLOW, ActivityType.JOIN}:
            self.state.unrelate(local.id, actor_id, Relation.FOLLOWER)
            self.state.unrelate(local.id, actor_id, Relation.MEMBER)

    async def _create(self, incoming: Incoming) -> None:
        """A member's Create addressed to a local group is announced to the group's other members."""
        addressed = set()
        for key in ("to", "cc", "audience"):
            addressed.update(ids_of(incoming.activity.get(key)))
        for group_id in addressed:
            group = self.actors.by_id(group_id)
            if group is None or group.group is None:
                continue
            if self.state.relation_state(group.id, incoming.actor, Relation.MEMBER) == "accepted":
                self.outbox.announce(group, incoming.activity)
        for listener in self.create_listeners:
            await listener(incoming.activity, incoming.actor, incoming.signer.actor)

    async def _update(self, incoming: Incoming) -> None:
        if id_of(incoming.activity.get("object")) == incoming.actor:
            self.forget_key(incoming.actor)  # an actor updating itself may have rotated its key

    async def _delete(self, incoming: Incoming) -> None:
        if id_of(incoming.activity.get("object")) == incoming.actor:
            self.forget_key(incoming.actor)
            self.state.forget_remote(incoming.actor)  # the account is gone: no more deliveries to it

    async def _block(self, incoming: Incoming) -> None:
        target, actor_id = incoming.target, incoming.actor
        if target is None:
            return
        # The blocker wants neither our posts nor to follow us any more (Mastodon semantics).
        self.state.unrelate(target.id, actor_id, Relation.FOLLOWER)
        self.state.unrelate(target.id, actor_id, Relation.FOLLOWING)
        self.state.relate(target.id, actor_id, Relation.BLOCKED_BY, activity_id=incoming.id, now=incoming.now)

    def _settle_request(self, activity: dict[str, Any], actor_id: str, *, accepted: bool) -> None:
        request = activity.get("object")
        request_id = id_of(request)
        relation = self.state.relation_by_activity(request_id) if request_id else None
        if relation is None and isinstance(request, dict):
            # Some servers answer with a copy of our Follow lacking its id: match on (actor, object).
            local, remote = id_of(request.get("actor")), id_of(request.get("object"))
            if local and remote == actor_id:
                relation = (local, remote, Relation.FOLLOWING)
        if relation is None or relation[1] != actor_id:
            return  # an Accept for something we never asked this actor
        local, remote, kind = relation
        if accepted:
            self.state.relate(local, remote, kind, state="accepted", now=self.clock())
        else:
            self.state.unrelate(local, remote, kind)


Handler = Callable[[Processor, "Incoming"], Awaitable[None]]
# One handler per activity type; types without one (Announce, Like, Invite ...) are stored only.
_HANDLERS: dict[str, Handler] = {
    ActivityType.FOLLOW: Processor._follow,
    ActivityType.JOIN: Processor._join,
    ActivityType.LEAVE: Processor._leave,
    ActivityType.ACCEPT: Processor._accept,
    ActivityType.REJECT: Processor._reject,
    ActivityType.UNDO: Processor._undo,
    ActivityType.CREATE: Processor._create,
    ActivityType.UPDATE: Processor._update,
    ActivityType.DELETE: Processor._delete,
    ActivityType.BLOCK: Processor._block,
}
