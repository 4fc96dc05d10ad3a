"""One host process: a federation app plus its fungus nodes, driven on the wall clock.

:class:`NodeHost` is the node runtime of one host. It steps each :class:`~agents.node.FungusNode` when
its timer is due and whenever the :class:`~agents.http_transport.HttpTransport` delivers it an
envelope, and sends what the step returns. Steps of all nodes of a host run one at a time on one
worker thread: training is CPU-bound and must not stall the event loop that answers inboxes and
serves artifacts, and one worker keeps a host to one core's worth of torch work.

Protocol time is wall-clock seconds since the host's ``epoch``, so that hosts started together (a
test, a benchmark) share round schedules; the federation layer keeps its own clock for signatures.

The host also polls its peers' ``GET /status`` (documented in docs/federation.md, "Host status") to
learn their nodes, inboxes and sought hashtags, so that public announcements reach the nodes that
seek them, and (unless disabled) to hand a node the announcement of a group it seeks and has not
heard of: a host that started later than the group's owner would otherwise wait for a re-announcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.http_transport import HttpTransport
from agents.node import FungusNode, save_checkpoint
from agents.node_publish import NodePublisher, start_publishing
from agents.node_status import host_status
from agents.node_thinking import ServedThinking
from agents.protocol.core import Envelope
from agents.protocol.messages import Announce, MessageError
from agents.protocol.wire import from_activity
from agents.spawn import DEFAULT_MAX_NODES_PER_HOST
from federation.client import FetchError
from federation.runtime import HostRuntime
from federation.vocab import origin_of, same_origin
from reasoning.accusations import record_ledger
from reasoning.defederation import Ledger

__all__ = ["HostOptions", "NodeHost", "RoundListener", "sender_allowed"]

log = logging.getLogger(__name__)

RoundListener = Callable[[dict[str, Any]], None]
# Builds the planned nodes once peers are known: gets actor -> sought hashtags of every known node.
NodeBuilder = Callable[[dict[str, tuple[str, ...]]], list[FungusNode]]


@dataclass(frozen=True)
class HostOptions:
    """How a host runs its nodes (``spore serve`` fills it from flags, environment or TOML)."""

    peers: tuple[str, ...] = ()  # base URLs of peer hosts whose /status is polled
    allow_peers: tuple[str, ...] = ()  # hosts (host[:port]) whose protocol traffic is accepted; () = any
    poll_seconds: float = 5.0
    announce_from_status: bool = True
    checkpoint_dir: Path | None = None  # {dir}/{node}/ checkpoint after every round
    autostart: bool = True  # start the nodes as soon as the app starts (tests start them together)
    discover_seconds: float = 0.0  # before building planned nodes, wait this long for every peer
    max_nodes: int = DEFAULT_MAX_NODES_PER_HOST  # spawning stops here (``spore serve --max-nodes``)
    autospawn: bool = False  # served nodes spawn children under their policy (agents/host_spawning.py)
    reasoning: bool = True  # served nodes reason and act after every round (agents/node_thinking.py)


@dataclass
class _Tracked:
    """Per node bookkeeping the status and the round log need."""

    logged_round: int = -1
    bytes_at_round: int = 0
    time_at_round: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def sender_allowed(sender: str, own_domain: str, allowed: tuple[str, ...]) -> bool:
    """Whether protocol traffic from ``sender`` is accepted: this host's own nodes, and with an
    allow-list (``--allow-peer HOST[:PORT]``) only the hosts on it; without one, everybody."""
    domain = origin_of(sender).split("://", 1)[-1]
    return not allowed or domain == own_domain or domain in allowed


class NodeHost:
    """The nodes of one host on its :class:`HostRuntime`: timers, deliveries, status, round log."""

    def __init__(
        self,
        runtime: HostRuntime,
        nodes: list[FungusNode],
        *,
        options: HostOptions = HostOptions(),
        on_round: RoundListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        planned: dict[str, tuple[str, ...]] | None = None,
        build: NodeBuilder | None = None,
        on_finished: Callable[[], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.nodes: dict[str, FungusNode] = {}
        self.options = options
        self.on_round = on_round
        self.on_finished = on_finished
        self.on_error = on_error
        self.clock = clock
        self.epoch: float | None = None
        self.transport = HttpTransport(runtime, self.deliver)
        self.peer_status: dict[str, dict[str, Any]] = {}
        # actor -> sought hashtags (in order) of every node known here, local ones included.
        self.known: dict[str, tuple[str, ...]] = dict(planned or {})
        self.build = build
        self.ready = False  # the nodes are built (data loaded); peers wait for this to start together
        self._tracked: dict[str, _Tracked] = {}
        self.publishers: dict[str, NodePublisher] = {}  # actor -> what writes its self into its graphs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spore-steps")
        self._tasks: list[asyncio.Task[None]] = []
        self.finished = asyncio.Event()
        self.thinking = ServedThinking(self)
        for actor, seeks in self.known.items():
            self._check_local(actor)
            self.transport.directory.learn(actor, inbox=f"{runtime.config.base_url}/inbox", seeks=seeks)
        self.add_nodes(nodes)

    def _peers_ready(self) -> bool:
        return all(
            bool(self.peer_status.get(peer, {}).get("ready") or self.peer_status.get(peer, {}).get("started"))
            for peer in self.options.peers
        )

    def _check_local(self, actor: str) -> None:
        local = self.runtime.actors.by_id(actor)
        if local is None or local.node is None:
            raise ValueError(f"{actor} is not a node actor of host {self.runtime.config.base_url}")

    def add_nodes(self, nodes: list[FungusNode]) -> None:
        for node in nodes:
            self._check_local(node.actor)
            self.nodes[node.actor] = node
            self._tracked[node.actor] = _Tracked()
            self.known[node.actor] = node.state.seeks
            self.transport.directory.learn(
                node.actor, inbox=f"{self.runtime.config.base_url}/inbox", seeks=node.state.seeks
            )
            self._publish_start(node)
            self.thinking.add(node)

    def start_node(self, node: FungusNode) -> None:
        """Serve ``node`` from now on, on a host already running (a spawned child): add and start it."""
        self.add_nodes([node])
        if self.epoch is not None:
            node.boot_at = self.now()
            self._tracked[node.actor].time_at_round = self.clock()
            self._tasks.append(asyncio.create_task(self._run(node), name=f"spore-node-{node.name}"))

    async def in_worker(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function`` on the step worker: graph and torch work off the event loop, one at a time."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _publish_start(self, node: FungusNode) -> None:
        publisher = start_publishing(node, self.runtime.actors.instance.id)
        if publisher is not None:
            self.publishers[node.actor] = publisher

    # -- time ----------------------------------------------------------------------------------------
    def now(self) -> float:
        """Protocol seconds since the epoch (0 before the nodes start)."""
        return 0.0 if self.epoch is None else self.clock() - self.epoch

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take the protocol's activities from the inbox and start polling peers (nodes start later)."""
        self.transport.install()
        self._tasks.append(asyncio.create_task(self._prepare(), name="spore-prepare"))

    async def _prepare(self) -> None:
        """Find the peers, build the planned nodes, start them (unless a test starts them)."""
        deadline = self.clock() + self.options.discover_seconds
        await self.poll_peers()
        while len(self.peer_status) < len(self.options.peers) and self.clock() < deadline:
            await asyncio.sleep(0.5)
            await self.poll_peers()
        if self.build is not None:
            known = dict(self.known)
            try:
                built = await asyncio.get_running_loop().run_in_executor(self._executor, self.build, known)
            except Exception as error:  # a host without its nodes must say so, not serve nothing
                log.exception("building the nodes failed")
                if self.on_error is not None:
                    self.on_error(f"building the nodes failed: {type(error).__name__}: {error}")
                return
            self.add_nodes(built)
        self.ready = True
        # Hosts build their nodes at their own pace (data loading); starting together keeps a group
        # from running rounds before the members on slower hosts exist.
        deadline = self.clock() + self.options.discover_seconds
        while not self._peers_ready() and self.clock() < deadline:
            await asyncio.sleep(0.5)
            await self.poll_peers()
        self._tasks.append(asyncio.create_task(self._poll_forever(), name="spore-peer-poll"))
        if self.options.autostart:
            await self.begin(self.clock())

    async def begin(self, epoch: float) -> None:
        """Start every node at ``epoch + node.boot_at`` (``epoch`` on this host's clock)."""
        if self.epoch is not None:
            return
        self.epoch = epoch
        for node in self.nodes.values():
            self._tracked[node.actor].time_at_round = self.clock()
            self._tasks.append(asyncio.create_task(self._run(node), name=f"spore-node-{node.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)

    # -- driving nodes -------------------------------------------------------------------------------
    async def _run(self, node: FungusNode) -> None:
        tracked = self._tracked[node.actor]
        await asyncio.sleep(max(0.0, node.boot_at - self.now()))
        node.up = True
        await self._step(node, [])
        while True:
            wake = node.state.wakeup_at
            timeout = None if wake is None else max(0.0, wake - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracked.changed.wait(), timeout)
            tracked.changed.clear()
            wake = node.state.wakeup_at
            if wake is not None and self.now() >= wake and not await self._step(node, []):
                await asyncio.sleep(1.0)  # the timer is still due: do not spin on a failing step

    async def deliver(self, actor: str, envelope: Envelope) -> None:
        """Hand one envelope to a local node (the transport's callback); lost while it is not up."""
        node = self.nodes.get(actor)
        if node is None or not node.up:
            self.transport.count("lost-down")
            return
        if not self._allowed(envelope.sender):
            self.transport.count("dropped:not-allowed")
            return
        await self._step(node, [envelope])

    def _allowed(self, sender: str) -> bool:
        return sender_allowed(sender, self.runtime.config.domain, self.options.allow_peers)

    async def _step(self, node: FungusNode, inbox: list[Envelope]) -> bool:
        """Step ``node`` with ``inbox`` now and send its outbox; False when the step raised."""
        tracked = self._tracked[node.actor]
        loop = asyncio.get_running_loop()
        async with tracked.lock:
            now = self.now()
            started = time.perf_counter()
            try:
                outbox = await loop.run_in_executor(self._executor, node.step, inbox, now)
            except Exception:  # the node keeps its last state; the host and its other nodes go on
                log.exception("a step of node %s failed", node.name)
                self.transport.count("failed-steps")
                return False
            self.runtime.metrics.trained(node.name, time.perf_counter() - started)
            for message in outbox:
                try:
                    await self.transport.send_async(node.actor, message)
                except Exception:  # one unsendable message must not stop the node
                    log.exception("sending %s from %s failed", message.id, node.name)
            await self._after_step(node, tracked)
        tracked.changed.set()
        return True

    async def _after_step(self, node: FungusNode, tracked: _Tracked) -> None:
        record = node.state.last_round
        # By rounds merged, not the group's round number: a node that switched group may meet its old number.
        if record is None or node.state.rounds_done == tracked.logged_round:
            return
        tracked.logged_round = node.state.rounds_done
        sent = self.bytes_sent(node.actor)
        wall = self.clock()
        membership = node.state.membership
        line: dict[str, Any] = {
            "event": "round",
            "host": self.runtime.config.base_url,
            "node": node.name,
            "round": record.round,
            "group": membership.group.hashtag if membership is not None else None,
            "members": len(membership.members) if membership is not None else 0,
            "contributors": len(record.contributors),
            "metrics": dict(record.metrics),
            "bytes": sent - tracked.bytes_at_round,
            "seconds": round(wall - tracked.time_at_round, 3),
            "merged_sha256": record.merged_sha256,
        }
        tracked.bytes_at_round, tracked.time_at_round = sent, wall
        self.runtime.metrics.node_round(
            node.name, record.round, line["seconds"], line["metrics"], int(membership is not None)
        )
        if self.options.checkpoint_dir is not None:
            directory = self.options.checkpoint_dir / node.name
            await asyncio.get_running_loop().run_in_executor(
                self._executor, save_checkpoint, node.state, directory, self.now()
            )
        await self._publish_round(node)
        ledger = node.state.defence
        if node.graphs is not None and isinstance(ledger, Ledger) and (ledger.history or ledger.received):
            # Accusations, blocks and lifts are public linked data in the node's graphs (issue 6).
            await asyncio.get_running_loop().run_in_executor(
                self._executor, record_ledger, node.graphs.store, ledger
            )
        if self.on_round is not None:
            self.on_round(line)
        await self.thinking.after_round(node)
        if all(other.done for other in self.nodes.values()) and not self.finished.is_set():
            self.finished.set()
            if self.on_finished is not None:
                self.on_finished()

    async def _publish_round(self, node: FungusNode) -> None:
        """The round's snapshot card, evaluations and group into the node's graphs; its bytes served."""
        publisher, record, membership = (
            self.publishers.get(node.actor),
            node.state.last_round,
            node.state.membership,
        )
        if publisher is None or record is None:
            return
        group = membership.group if membership is not None else None
        members = membership.members if membership is not None else frozenset()
        try:
            digest, blob = await asyncio.get_running_loop().run_in_executor(
                self._executor, publisher.round, record, node.state.weights, group, members
            )
        except Exception:  # publishing must not stop the node from training
            log.exception("node %s: round %d not published", node.name, record.round)
            self.transport.count("failed-publications")
            return
        self.transport.snapshots[node.actor] = (digest, blob)

    def bytes_sent(self, actor: str) -> int:
        """Activity bytes POSTed plus artifact bytes served to peers, for one node."""
        return self.transport.sent_bytes.get(actor, 0) + self.transport.artifacts.served.get(actor, 0)

    # -- peers ---------------------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_seconds)
            await self.poll_peers()

    async def poll_peers(self) -> None:
        """Read each peer's /status: learn its nodes, and offer announcements of sought groups."""
        for peer in self.options.peers:
            url = peer.rstrip("/") + "/status"
            try:
                status = await self.runtime.client.get_json(url, accept="application/json")
            except FetchError as error:
                log.info("peer %s not reachable: %s", peer, error)
                self.peer_status.pop(peer, None)
                continue
            self.peer_status[peer] = status
            await self._learn(peer, status)

    async def _learn(self, peer: str, status: dict[str, Any]) -> None:
        for entry in status.get("nodes", []) if isinstance(status.get("nodes"), list) else []:
            actor = entry.get("actor") if isinstance(entry, dict) else None
            # Only actors on the peer's own origin: a host speaks for its own nodes, not for others.
            if not isinstance(actor, str) or not same_origin(actor, peer):
                continue
            seeks = tuple(tag for tag in entry.get("seeks", []) if isinstance(tag, str))
            self.known[actor] = seeks
            inbox = entry.get("shared_inbox") or entry.get("inbox")
            self.transport.directory.learn(
                actor,
                inbox=inbox if isinstance(inbox, str) and same_origin(inbox, peer) else None,
                seeks=seeks,
            )
            if self.options.announce_from_status:
                for owned in entry.get("owns", []):
                    await self._offer(actor, owned.get("announce") if isinstance(owned, dict) else None)

    async def _offer(self, owner: str, announce: Any) -> None:
        """Give a node that seeks a group it does not know the owner's announcement from /status."""
        try:
            message = from_activity(announce, {})
        except MessageError:
            return
        if not isinstance(message, Announce) or message.actor != owner:
            return
        for node in self.nodes.values():
            state = node.state
            wants = message.group.hashtag in state.seeks and message.group.hashtag not in state.known_groups
            if wants and node.up and state.membership is None and state.pending_join is None:
                await self._step(node, [Envelope(owner, message)])

    def status(self) -> dict[str, Any]:
        """The host's JSON status (shape documented in docs/federation.md, \"Host status\")."""
        return host_status(self)
