"""An in-memory network of SPORE nodes on a virtual clock: thousands of nodes, one process, one seed.

The simulator is the protocol core's first transport. Nodes are ``(context, state)`` pairs stepped by
:func:`agents.protocol.core.step`; the network delivers each outbox message to every recipient after a
per-link latency (base plus seeded jitter), drops it with the link's loss probability or when a
partition separates the two nodes, and loses everything sent to a node that is down. Crashing a node
freezes its last state (what it had on disk); restarting resumes from it.

Determinism: all randomness comes from one ``random.Random(seed)`` owned by the network plus the
nodes' own seeds, and events at the same virtual time run in the order they were scheduled, so a
seed fixes the whole run. Every event is folded into :attr:`Simulator.trace_digest`; set
``record_trace`` to also keep the lines.

Messages are immutable and delivered by reference, so a model update sent to eight peers exists
once in memory. Pass a ``codec`` (:class:`agents.protocol.wire.WireCodec`) to round-trip every
message through its wire bytes instead, with ``tap`` seeing each payload that leaves a node.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.protocol.context import NodeContext
from agents.protocol.core import Envelope, step
from agents.protocol.messages import PUBLIC, Create, Message, MessageError
from agents.protocol.state import NodeState

__all__ = ["Codec", "SimNode", "Simulator"]

_DELIVER, _WAKE, _CONTROL = 0, 1, 2


class Codec(Protocol):
    """Turns a message into what travels on a wire and back (raising MessageError on garbage)."""

    def encode(self, message: Message) -> Any: ...

    def decode(self, payload: Any) -> Message: ...


@dataclass
class SimNode:
    """One simulated node: its injected context, its current state, and whether it is running."""

    ctx: NodeContext
    state: NodeState
    up: bool = False
    wake_token: int = 0
    scheduled_wakeup: float | None = None


@dataclass
class _Link:
    latency: float
    loss: float


@dataclass
class Simulator:
    """The network, the virtual clock and the nodes; implements the ``Transport`` interface."""

    seed: int = 0
    latency: float = 0.05
    jitter: float = 0.02
    loss: float = 0.0
    duplicate: float = 0.0  # probability that a delivery happens twice (ActivityPub retries)
    codec: Codec | None = None
    tap: Callable[[str, str, Any], None] | None = None
    record_trace: bool = False
    now: float = 0.0
    nodes: dict[str, SimNode] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._queue: list[tuple[float, int, int, Any]] = []
        self._sequence = 0
        self._links: dict[tuple[str, str], _Link] = {}
        self._side: dict[str, int] = {}  # node -> partition side; absent: reachable by everyone
        self._digest = hashlib.sha256()
        self._followers: dict[str, set[str]] = {}  # hashtag -> nodes that seek it

    # setup --------------------------------------------------------------------------------------

    def add_node(self, ctx: NodeContext, state: NodeState, *, at: float = 0.0) -> None:
        """Register a node that boots at virtual time ``at`` (a late joiner boots later)."""
        if state.actor in self.nodes:
            raise ValueError(f"node {state.actor} already added")
        self.nodes[state.actor] = SimNode(ctx=ctx, state=state)
        self._follow(state.actor, (), state.seeks)
        self._schedule(at, _CONTROL, (self._boot, state.actor))

    def set_link(
        self, sender: str, recipient: str, *, latency: float | None = None, loss: float | None = None
    ) -> None:
        """Override one direction of one link (a slow or lossy path)."""
        current = self._links.get((sender, recipient), _Link(self.latency, self.loss))
        self._links[(sender, recipient)] = _Link(
            current.latency if latency is None else latency, current.loss if loss is None else loss
        )

    def crash(self, actor: str, *, at: float) -> None:
        self._schedule(at, _CONTROL, (self._crash, actor))

    def restart(self, actor: str, *, at: float) -> None:
        self._schedule(at, _CONTROL, (self._boot, actor))

    def partition(self, sides: Iterable[Iterable[str]], *, at: float, heal_at: float | None = None) -> None:
        """Split the network at ``at``: nodes on different sides cannot reach each other until healed."""
        assignment = {actor: index for index, side in enumerate(sides) for actor in side}
        self._schedule(at, _CONTROL, (self._set_partition, assignment))
        if heal_at is not None:
            self._schedule(heal_at, _CONTROL, (self._set_partition, {}))

    def inject(
        self, sender: str, recipient: str, message: Message | None, *, at: float, error: str = ""
    ) -> None:
        """Deliver something odd (garbage, a forgery) to ``recipient``, bypassing the sender's core."""
        self._schedule(at, _DELIVER, (recipient, Envelope(sender, message, error)))

    # Transport ----------------------------------------------------------------------------------

    def send(self, sender: str, message: Message) -> None:
        """Deliver ``message`` to each recipient after the link's latency, unless lost or cut off."""
        recipients = self._public_audience(message) if PUBLIC in message.to else sorted(set(message.to))
        payload: Any = message
        if self.codec is not None:
            payload = self.codec.encode(message)
        for recipient in recipients:
            if recipient == sender:
                continue
            if self.tap is not None:
                self.tap(sender, recipient, payload)
            link = self._links.get((sender, recipient))
            latency, loss = (link.latency, link.loss) if link else (self.latency, self.loss)
            lost = loss > 0 and self._rng.random() < loss
            if lost or self._cut(sender, recipient):
                self._count("lost" if lost else "partitioned")
                self._log("drop", sender, recipient, message)
                continue
            delay = latency + self._rng.random() * self.jitter
            self._count("sent")
            if isinstance(message, Create):
                self._count("updates")
                self._count("update-bytes", message.update.byte_size)
            self._schedule(self.now + delay, _DELIVER, (recipient, (sender, payload)))
            if self.duplicate > 0 and self._rng.random() < self.duplicate:
                self._count("duplicated")
                self._schedule(self.now + delay + latency, _DELIVER, (recipient, (sender, payload)))

    def _public_audience(self, message: Message) -> list[str]:
        """Everyone for an untagged public activity; for a tagged one, the followers of its hashtags
        (as Mastodon delivers to followed hashtags and relays), so that 125 group announcements do not
        cost 125,000 deliveries in a thousand-node run."""
        if not message.hashtags:
            return sorted(self.nodes)
        audience: set[str] = set()
        for hashtag in message.hashtags:
            audience |= self._followers.get(hashtag, set())
        return sorted(audience)

    def _follow(self, actor: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        for hashtag in set(old) - set(new):
            self._followers.get(hashtag, set()).discard(actor)
        for hashtag in set(new) - set(old):
            self._followers.setdefault(hashtag, set()).add(actor)

    # running ------------------------------------------------------------------------------------

    def run(self, until: float) -> None:
        """Process every event up to virtual time ``until`` (inclusive)."""
        while self._queue and self._queue[0][0] <= until:
            time, _, kind, payload = heapq.heappop(self._queue)
            self.now = time
            if kind == _CONTROL:
                action, argument = payload
                action(argument)
            elif kind == _WAKE:
                actor, token = payload
                node = self.nodes[actor]
                if node.up and node.wake_token == token:
                    node.scheduled_wakeup = None
                    self._step(actor, [])
            else:
                recipient, item = payload
                self._deliver(recipient, item)
        self.now = max(self.now, until)

    def run_until(self, predicate: Callable[[Simulator], bool], *, limit: float, tick: float = 1.0) -> bool:
        """Run in ``tick`` slices until ``predicate`` holds or ``limit`` is reached; whether it held."""
        while self.now < limit:
            if predicate(self):
                return True
            self.run(min(limit, self.now + tick))
        return predicate(self)

    def state(self, actor: str) -> NodeState:
        return self.nodes[actor].state

    def act(self, actor: str, change: Callable[[NodeState, float], tuple[NodeState, list[Message]]]) -> None:
        """Apply a decision taken outside the core (the reasoner's Leave and new seek) to a running
        node now, send what it produced, and step the node so that it follows up (a Join)."""
        node = self.nodes[actor]
        seeks = node.state.seeks
        node.state, outbox = change(node.state, self.now)
        if node.state.seeks != seeks:
            self._follow(actor, seeks, node.state.seeks)
        for message in outbox:
            self.send(actor, message)
        if node.up:
            self._step(actor, [])

    @property
    def trace_digest(self) -> str:
        """SHA-256 over every event so far: equal digests mean identical runs."""
        return self._digest.copy().hexdigest()

    # internals ----------------------------------------------------------------------------------

    def _deliver(self, recipient: str, item: Envelope | tuple[str, Any]) -> None:
        node = self.nodes.get(recipient)
        if isinstance(item, Envelope):
            envelope = item
        else:
            sender, payload = item
            envelope = Envelope(sender, payload)
            if self.codec is not None:
                try:
                    envelope = Envelope(sender, self.codec.decode(payload))
                except MessageError as error:
                    envelope = Envelope(sender, None, str(error))
        if node is None or not node.up:
            self._count("lost-down")
            self._log("lost-down", envelope.sender, recipient, envelope.message)
            return
        self._log("deliver", envelope.sender, recipient, envelope.message)
        self._step(recipient, [envelope])

    def _step(self, actor: str, inbox: list[Envelope]) -> None:
        node = self.nodes[actor]
        seeks = node.state.seeks
        node.state, outbox = step(node.ctx, node.state, inbox, self.now)
        if node.state.seeks != seeks:
            self._follow(actor, seeks, node.state.seeks)
        for message in outbox:
            self.send(actor, message)
        wakeup = node.state.wakeup_at
        if wakeup is not None and wakeup != node.scheduled_wakeup:
            node.wake_token += 1
            node.scheduled_wakeup = wakeup
            self._schedule(max(wakeup, self.now), _WAKE, (actor, node.wake_token))
        if node.state.last_round is not None and node.state.last_round.finished_at == self.now:
            record = node.state.last_round
            self._log_line(f"{self.now:.6f} merge {actor} r{record.round} {record.merged_sha256[:16]}")

    def _boot(self, actor: str) -> None:
        node = self.nodes[actor]
        node.up = True
        node.scheduled_wakeup = None
        self._log_line(f"{self.now:.6f} up {actor}")
        self._step(actor, [])

    def _crash(self, actor: str) -> None:
        node = self.nodes[actor]
        node.up = False
        node.wake_token += 1  # pending wake-ups of the old incarnation never fire
        self._log_line(f"{self.now:.6f} down {actor}")

    def _set_partition(self, assignment: dict[str, int]) -> None:
        self._side = assignment
        self._log_line(f"{self.now:.6f} partition {len(set(assignment.values()))}")

    def _cut(self, sender: str, recipient: str) -> bool:
        if not self._side:
            return False
        a, b = self._side.get(sender), self._side.get(recipient)
        return a is not None and b is not None and a != b

    def _schedule(self, time: float, kind: int, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (time, self._sequence, kind, payload))

    def _count(self, key: str, amount: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + amount

    def _log(self, event: str, sender: str, recipient: str, message: Message | None) -> None:
        kind = message.activity_type if message is not None else "garbage"
        ident = message.id if message is not None else "-"
        self._log_line(f"{self.now:.6f} {event} {sender} {recipient} {kind} {ident}")

    def _log_line(self, line: str) -> None:
        self._digest.update(line.encode() + b"\n")
        if self.record_trace:
            self.trace.append(line)
