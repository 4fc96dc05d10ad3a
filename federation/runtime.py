"""A host's federation runtime: every part wired once from config plus injected store, clock and rng.

:func:`federation.host.build_host` puts one of these behind a FastAPI app; tests and the node runtime
use its methods (follow, publish, ...) directly. Nothing here is module-global, so two hosts in one
process (as the tests run them) share no state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federation.actors import ActorDirectory, LocalActor
from federation.client import FederationClient, RefusedDestination, SigningScheme
from federation.config import HostConfig
from federation.delivery import Delivery, DeliveryQueue
from federation.inbox import InboxPipeline
from federation.keyring import KeyRing, actor_endpoints
from federation.observability import HostMetrics
from federation.outbox import Outbox, refuse_private_graph
from federation.processing import AdmissionPolicy, Processor, QuadSink, admit_all
from federation.ratelimit import RateLimiter
from federation.ssrf import Resolver, SsrfPolicy, system_resolver
from federation.state import FederationState, Relation
from federation.vocab import ActivityType

__all__ = ["HostRuntime"]

log = logging.getLogger(__name__)


@dataclass
class HostRuntime:
    config: HostConfig
    store: QuadSink
    clock: Callable[[], float]
    rng: random.Random
    admission: AdmissionPolicy = admit_all
    resolver: Resolver = system_resolver
    signing_scheme: SigningScheme = SigningScheme.CAVAGE
    check_outgoing: Callable[[dict[str, Any]], None] = refuse_private_graph
    metrics: HostMetrics = field(default_factory=HostMetrics)  # /metrics; the node runtime feeds it too
    actors: ActorDirectory = field(init=False)
    state: FederationState = field(init=False)
    deliveries: DeliveryQueue = field(init=False)
    client: FederationClient = field(init=False)
    keyring: KeyRing = field(init=False)
    outbox: Outbox = field(init=False)
    processor: Processor = field(init=False)
    pipeline: InboxPipeline = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)
    _scheme_by_host: dict[str, SigningScheme] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        config = self.config
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        limits = config.limits
        self.actors = ActorDirectory(config)
        self.state = FederationState(data_dir / "federation.sqlite3")
        self.deliveries = DeliveryQueue(
            data_dir / "deliveries.sqlite3",
            clock=self.clock,
            rng=self.rng,
            capacity=limits.delivery_queue_size,
        )
        policy = SsrfPolicy(allow_loopback=config.allow_loopback, allow_private=config.allow_private)
        self.client = FederationClient(
            policy=policy, clock=self.clock, verify=config.tls_verify, resolver=self.resolver
        )
        self.keyring = KeyRing(self.fetch_signed, local=self.actors.local_key, clock=self.clock)
        self.outbox = Outbox(
            base_url=config.base_url,
            actors=self.actors,
            state=self.state,
            deliveries=self.deliveries,
            clock=self.clock,
            check_outgoing=self.check_outgoing,
        )
        self.processor = Processor(
            actors=self.actors,
            state=self.state,
            outbox=self.outbox,
            store=self.store,
            fetch_actor=self.fetch_signed,
            clock=self.clock,
            admission=self.admission,
            forget_key=self.keyring.forget_owner,
            queue_size=limits.inbox_queue_size,
        )
        self.pipeline = InboxPipeline(
            keyring=self.keyring,
            limiter=RateLimiter(rate=limits.rate_per_second, burst=limits.rate_burst, clock=self.clock),
            clock=self.clock,
            first_sighting=self.state.first_sighting,
            forget_sighting=self.state.forget_sighting,
            accept=self.processor.submit,
            is_blocked=self.is_blocked,
            max_body_bytes=limits.max_body_bytes,
            max_depth=limits.max_json_depth,
            window_seconds=limits.clock_window_seconds,
        )

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self.processor.run(), name="spore-inbox-worker"),
            asyncio.create_task(
                self.deliveries.run(self.metrics.counting_deliveries(self.deliver)),
                name="spore-delivery-worker",
            ),
            asyncio.create_task(self._forget_old_ids(), name="spore-seen-pruner"),
        ]

    def workers(self) -> dict[str, bool]:
        """The background workers by name, and whether each is still running (for ``/healthz``)."""
        return {task.get_name(): not task.done() for task in self._tasks}

    async def _forget_old_ids(self, *, keep_seconds: float = 7 * 86400, every_seconds: float = 3600) -> None:
        while True:
            forgotten = self.state.forget_seen_before(self.clock() - keep_seconds)
            if forgotten:
                log.info("forgot %d activity ids older than %d days", forgotten, keep_seconds // 86400)
            await asyncio.sleep(every_seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()
        self.state.close()
        self.deliveries.close()

    async def settle(self, *, timeout: float = 10.0) -> None:
        """Wait until accepted activities are processed and due deliveries are attempted (for tests)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await self.processor.drain()
            if not self.deliveries.due() and self.processor.queue.empty():
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("host did not settle")

    # -- edges ---------------------------------------------------------------------------------------
    async def fetch_signed(self, url: str) -> dict[str, Any]:
        """GET a remote document signed by the instance actor (works with Mastodon's authorized fetch)."""
        return await self.client.get_json(url, sign_as=self.actors.instance.key, scheme=self.signing_scheme)

    async def deliver(self, delivery: Delivery) -> int | None:
        """POST one queued delivery; a 400/401 is retried once with the other signature scheme.

        This is Fedify's "double knock" in reverse: we lead with draft-cavage (what most of the
        Fediverse verifies) and remember, per host, a scheme that worked, so a peer that verifies only
        RFC 9421 costs one extra request, once.
        """
        sender = self.actors.by_id(delivery.sender)
        if sender is None:
            return 410  # the local actor is gone; nothing can sign this any more
        scheme = self._scheme_by_host.get(delivery.host, self.signing_scheme)
        try:
            response = await self.client.post(
                delivery.inbox, delivery.body, sign_as=sender.key, scheme=scheme
            )
            if response.status_code in (400, 401):
                other = SigningScheme.RFC9421 if scheme is SigningScheme.CAVAGE else SigningScheme.CAVAGE
                retry = await self.client.post(
                    delivery.inbox, delivery.body, sign_as=sender.key, scheme=other
                )
                if retry.is_success:
                    self._scheme_by_host[delivery.host] = other
                    return retry.status_code
        except RefusedDestination as error:
            log.warning("delivery refused by the SSRF guard: %s", error)
            return 403  # permanent: the address will not become allowed by retrying
        return response.status_code

    def is_blocked(self, local: str | None, remote: str) -> bool:
        if local is None:
            return False
        return self.state.relation_state(local, remote, Relation.BLOCKING) is not None

    def local(self, name: str) -> LocalActor:
        actor = self.actors.nodes.get(name) or self.actors.groups.get(name)
        if actor is None:
            raise KeyError(f"no local node or group named {name!r}")
        return actor

    async def _inbox(self, remote: str) -> str:
        inbox, _shared = actor_endpoints(await self.fetch_signed(remote))
        if inbox is None:
            raise ValueError(f"{remote} has no inbox")
        return inbox

    # -- what a node does (called by the node runtime) ---------------------------------------------------
    async def follow(self, name: str, remote: str) -> dict[str, Any]:
        return self.outbox.follow(self.local(name), remote, await self._inbox(remote))

    async def unfollow(self, name: str, remote: str) -> dict[str, Any]:
        """Undo the node's Follow of ``remote`` (the Undo embeds the original Follow, as peers expect)."""
        actor = self.local(name)
        follow_id = self.state.relation_activity(actor.id, remote, Relation.FOLLOWING)
        original = self.state.get_object(follow_id) if follow_id else None
        if original is None:
            raise ValueError(f"{name} does not follow {remote}")
        follow = {key: value for key, value in original.items() if key != "@context"}
        return self.outbox.unfollow(actor, remote, await self._inbox(remote), follow)

    async def block(self, name: str, remote: str) -> dict[str, Any]:
        return self.outbox.block(self.local(name), remote, await self._inbox(remote))

    async def join(self, name: str, group: str) -> dict[str, Any]:
        return self.outbox.join(self.local(name), group, await self._inbox(group))

    async def leave(self, name: str, group: str) -> dict[str, Any]:
        return self.outbox.leave(self.local(name), group, await self._inbox(group))

    async def publish(
        self, name: str, spore_object: dict[str, Any], *, text: str, hashtag: str, groups: Sequence[str] = ()
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Publish a SPORE object and its Note to the node's followers and the given learning groups."""
        targets = [(group, await self._inbox(group)) for group in groups]
        return self.outbox.publish(self.local(name), spore_object, text=text, hashtag=hashtag, groups=targets)

    async def invite(self, group_name: str, remote: str) -> dict[str, Any]:
        """A learning group invites an actor to join it (``Invite``: object the group, target the invitee)."""
        group = self.local(group_name)
        activity = self.outbox.activity(group, ActivityType.INVITE, group.id, target=remote, to=[remote])
        self.outbox.send(group, activity, [await self._inbox(remote)])
        return activity
