"""Spawning on a running host: a child node is built, registered, published and started live.

The simulator adds a child by appending a state; a served host must also give the child what every
node it started with has: an actor (key, WebFinger, actor document), its graphs (listeners,
catalogue, blueprint and description), a task on the host's clock, a line in ``/status``, a model on
the web page and an answer to Fediverse asks. :class:`HostSpawner` does all of that for one host,
from two sources:

* a node of the host (the parent): the spawning rule of :mod:`agents.autospawn` after each of its
  rounds (``spore serve --autospawn``), or an operator's request (``POST /admin/spawn``,
  :mod:`agents.host_admin`). The child blueprint is the parent's, mutated within the parent's caps
  and the host's (:func:`agents.spawn.plan_spawn`); the decision, refusals included, goes to the
  parent's decisions graph, and the child's description names its parent (``spore:spawnedBy``).
  The child holds the parent's listeners (its private graph is copied: data never leaves the host)
  and starts from the parent's model, so it can join the parent's group at once
  (:mod:`agents.spawn_build`);
* a blueprint an operator posts, started as it is (``spore spawn --as-is --host``): its listeners
  are dealt as a newcomer's share, as :func:`agents.node_setup.assign_roles` deals them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI
from rdflib import Graph, URIRef

from agents.autospawn import spawn_reason, spawn_window
from agents.hosting import NodeHost
from agents.node import FungusNode
from agents.node_blueprint import BlueprintError, read_blueprint
from agents.node_setup import assign_roles
from agents.spawn import (
    SpawnError,
    SpawnOutcome,
    child_name,
    children_in_store,
    host_full,
    names_in_store,
    parent_blueprint,
    plan_spawn,
    shape_keeping_operators,
    spawn_decision,
)
from agents.spawn_build import ChildBuilder
from federation.config import NAME_PATTERN, NodeSpec
from federation.vocab import same_origin
from ontology import SPORE
from reasoning.records import record
from shapes.validation import default_validator

__all__ = ["ChildBuilder", "HostSpawner", "SpawnRefused", "SpawnedNode", "install_spawning"]

log = logging.getLogger(__name__)

SpawnListener = Callable[[dict[str, Any]], None]


class SpawnRefused(Exception):
    """A spawn the host will not do, with the HTTP status that says why (404, 409, 422) and one line."""

    def __init__(self, status: int, reason: str, details: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = tuple(details)


@dataclass(frozen=True)
class SpawnedNode:
    """A child the host started: its name, actor, blueprint and why it exists."""

    name: str
    actor: str
    blueprint: str
    parent: str | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "actor": self.actor,
            "blueprint": self.blueprint,
            "parent": self.parent,
            "reason": self.reason,
        }


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _evaluation(actor: str, metric: str, round_number: int) -> str:
    """The IRI :mod:`agents.node_publish` gives a round's evaluation (``recall@20`` of round 3)."""
    name, _, cutoff = metric.partition("@")
    return f"{actor}#round-{round_number}-{name}-{cutoff}"


@dataclass
class HostSpawner:
    """Starts children on one running host, within the parent's and the host's caps."""

    host: NodeHost
    builder: ChildBuilder
    app: FastAPI | None = None
    on_spawn: SpawnListener | None = None
    metric: str = "recall@20"
    clock: Callable[[], datetime.datetime] = _utc_now
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    spawned: list[SpawnedNode] = field(default_factory=list)
    _refused: set[tuple[str, str]] = field(default_factory=set)
    _lock: asyncio.Lock | None = None
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)
    closed: bool = False

    # -- caps --------------------------------------------------------------------------------------
    def host_nodes(self) -> int:
        """Nodes this host serves or is about to (planned ones still loading count too)."""
        base = self.host.runtime.config.base_url
        return len(set(self.host.nodes) | {actor for actor in self.host.known if same_origin(actor, base)})

    def _taken(self) -> set[str]:
        return set(self.host.runtime.actors.nodes) | set(self.host.runtime.actors.groups)

    def _lock_now(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # -- a child of a node -------------------------------------------------------------------------
    async def spawn_child(
        self,
        parent_actor: str,
        *,
        name: str | None = None,
        seed: int = 0,
        why: str = "",
        evidence: Sequence[str] = (),
        round_number: int = 0,
        automatic: bool = False,
    ) -> SpawnedNode:
        """Plan, record and start a mutated child of the host's node ``parent_actor``.

        Raises :class:`SpawnRefused`: 404 for no such node here, 409 for a cap or a taken name,
        422 for a child that fails the shapes. An automatic refusal is recorded once per reason.
        """
        parent = self.host.nodes.get(parent_actor)
        if parent is None:
            raise SpawnRefused(404, f"{parent_actor} is not a node of {self.host.runtime.config.base_url}")
        if name is not None and (not NAME_PATTERN.match(name) or name in self._taken()):
            raise SpawnRefused(
                409 if name in self._taken() else 422, f"node name {name!r} is taken or invalid"
            )
        async with self._lock_now():
            outcome = await self.host.in_worker(self._plan, parent, name, seed)
            if outcome.spawned and why:
                outcome = replace(outcome, reason=f"{outcome.reason}; {why}")
            decision = spawn_decision(
                outcome, node=parent_actor, at=self.clock(), round_number=round_number, evidence=evidence
            )
            first_refusal = (parent_actor, outcome.reason) not in self._refused
            if outcome.spawned or not automatic or first_refusal:
                await self.host.in_worker(record, self.builder.store, decision)
            if not outcome.spawned or outcome.graph is None or outcome.name is None:
                self._refused.add((parent_actor, outcome.reason))
                status = 422 if "fails the shapes" in outcome.reason else 409
                raise SpawnRefused(status, f"spawn refused: {outcome.reason}")
            return await self._start(outcome.name, outcome.graph, parent, outcome.reason)

    def _plan(self, parent: FungusNode, name: str | None, seed: int) -> SpawnOutcome:
        store = self.builder.store
        try:
            source, blueprint = parent_blueprint(store, parent.actor)
        except SpawnError as error:
            raise SpawnRefused(409, str(error)) from error
        taken = sorted(self._taken() | set(names_in_store(store)))
        chosen = name or child_name(str(source.value(blueprint, SPORE.nodeName) or parent.name), taken)
        actor = f"{self.host.runtime.config.base_url}/nodes/{chosen}"
        return plan_spawn(
            source,
            blueprint,
            child=URIRef(f"{actor}/blueprint"),
            name=chosen,
            children=children_in_store(store, parent.actor),
            host_nodes=self.host_nodes(),
            max_nodes_per_host=self.host.options.max_nodes,
            rng=random.Random(f"{seed}:{parent.actor}:{chosen}"),
            operators=shape_keeping_operators(),
        )

    # -- a blueprint as it is ----------------------------------------------------------------------
    async def start_blueprint(self, turtle: str) -> SpawnedNode:
        """Start the blueprint ``turtle`` as a new node of this host (an operator's request).

        Raises :class:`SpawnRefused`: 422 for Turtle that does not parse or fails the shapes (with
        the first violations), 409 for a taken name or a host at its cap.
        """
        graph = Graph()
        try:
            graph.parse(data=turtle, format="turtle", publicID=f"{self.host.runtime.config.base_url}/spawned")
        except Exception as error:  # rdflib raises many types for bad Turtle; all mean "unreadable"
            raise SpawnRefused(
                422, f"the blueprint is not readable Turtle: {' '.join(str(error).split())}"
            ) from error
        report = await self.host.in_worker(default_validator().validate, graph)
        if not report.conforms:
            lines = report.lines()
            raise SpawnRefused(
                422, f"the blueprint fails the shapes: {lines[0] if lines else '?'}", lines[:5]
            )
        names = sorted({str(value) for value in graph.objects(None, SPORE.nodeName)})
        if len(names) != 1:
            raise SpawnRefused(422, f"expected one blueprint with spore:nodeName, found {len(names)}")
        async with self._lock_now():
            return await self._start(names[0], graph, None, "started as posted")

    # -- starting ----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop spawning (the host is stopping): no check still running starts a node on a stopped host."""
        self.closed = True
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _start(self, name: str, graph: Graph, parent: FungusNode | None, reason: str) -> SpawnedNode:
        runtime = self.host.runtime
        if self.closed:
            raise SpawnRefused(503, "the host is stopping")
        full = host_full(self.host_nodes(), self.host.options.max_nodes)
        if name in self._taken():
            raise SpawnRefused(409, f"{name!r} is already a node of {runtime.config.base_url}")
        if full is not None:
            raise SpawnRefused(409, f"spawn refused: {full}")
        if not NAME_PATTERN.match(name):
            raise SpawnRefused(422, f"node name {name!r} must match {NAME_PATTERN.pattern}")
        actor = f"{runtime.config.base_url}/nodes/{name}"
        path = self.builder.directory / f"{name}.ttl"
        self.builder.directory.mkdir(parents=True, exist_ok=True)
        path.write_text(graph.serialize(format="turtle"), encoding="utf-8")
        try:
            blueprint = read_blueprint(path)
        except BlueprintError as error:
            path.unlink(missing_ok=True)
            raise SpawnRefused(422, str(error)) from error
        shard = assign_roles({**self.host.known, actor: blueprint.hashtags})[actor].shard
        node = await self.host.in_worker(self.builder.build, blueprint, actor, parent, shard)
        local = runtime.actors.add_node(
            NodeSpec(
                name,
                summary=f"Fungus node spawned by {parent.name}" if parent else "Fungus node",
                blueprint=f"{actor}/blueprint",
            )
        )
        self.host.start_node(node)
        publisher = self.host.publishers.get(actor)
        if publisher is not None and parent is not None:
            publisher.spawned_by = parent.actor
            await self.host.in_worker(publisher.start)
        self._make_public(local)
        spawned = SpawnedNode(name, actor, f"{actor}/blueprint", parent.actor if parent else None, reason)
        self.spawned.append(spawned)
        log.info("spawned %s (%s)", actor, reason)
        if self.on_spawn is not None:
            self.on_spawn(spawned.as_json())
        return spawned

    def _make_public(self, local: Any) -> None:
        """The asking service took the host's node list once at start: the child is askable too."""
        asking = getattr(self.app.state, "asking", None) if self.app is not None else None
        if asking is not None:
            asking.nodes.append(local)

    # -- automatic spawning ------------------------------------------------------------------------
    def observe(self, line: dict[str, Any]) -> None:
        """A host round line: remember the node's metric and, when the rule says so, spawn."""
        name, metrics = line.get("node"), line.get("metrics")
        node = next((n for n in self.host.nodes.values() if n.name == name), None)
        if self.closed or node is None or not isinstance(metrics, dict) or self.metric not in metrics:
            return
        number = int(line.get("round", 0)) + 1  # spore:roundNumber of the round just finished
        self.history.setdefault(node.actor, []).append((number, float(metrics[self.metric])))
        task = asyncio.get_running_loop().create_task(self.consider(node.actor))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def consider(self, actor: str) -> SpawnedNode | None:
        """Apply the spawning rule of :mod:`agents.autospawn` to the node ``actor`` now; the child,
        or None (no reason to spawn, or a refusal, recorded in the node's decisions graph)."""
        try:
            return await self._consider(actor)
        except SpawnRefused as refusal:
            log.info("node %s: %s", actor, refusal.reason)
        except RuntimeError as error:  # the host stopped (its step worker with it) after the round
            log.info("node %s: no spawning check, the host is stopping (%s)", actor, error)
        except Exception:  # a failed spawn must not stop the parent or the host
            log.exception("spawning a child of %s failed", actor)
        return None

    async def _consider(self, actor: str) -> SpawnedNode | None:
        history = self.history.get(actor, [])
        try:
            source, blueprint = await self.host.in_worker(parent_blueprint, self.builder.store, actor)
        except SpawnError:
            return None  # not published (yet): nothing to copy
        why = spawn_reason(source, blueprint, [value for _, value in history])
        if why is None:
            return None
        # The rule compared the first and the last round of its window: those evaluations are its evidence.
        first = history[-spawn_window(source, blueprint) - 1][0]
        evidence = [_evaluation(actor, self.metric, number) for number in (first, history[-1][0])]
        return await self.spawn_child(
            actor,
            seed=len(self.spawned),
            why=why,
            evidence=evidence,
            round_number=history[-1][0],
            automatic=True,
        )


def install_spawning(
    app: FastAPI, host: NodeHost, builder: ChildBuilder, *, on_spawn: SpawnListener | None = None
) -> HostSpawner:
    """Give the host ``app`` a :class:`HostSpawner` (``app.state.spawner``), its admin route, and
    with ``HostOptions.autospawn`` the spawning rule after every round of its nodes."""
    from agents.host_admin import admin_router

    spawner = HostSpawner(host, builder, app=app, on_spawn=on_spawn)
    app.state.spawner = spawner
    app.router.routes[:0] = admin_router(spawner).routes
    running = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with running(application) as state:
            try:
                yield state
            finally:
                await spawner.close()  # before the host stops its nodes and step worker

    app.router.lifespan_context = lifespan
    if host.options.autospawn:
        previous = host.on_round

        def on_round(line: dict[str, Any]) -> None:
            if previous is not None:
                previous(line)
            spawner.observe(line)

        host.on_round = on_round
    return spawner
