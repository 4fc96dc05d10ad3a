"""Automatic spawning under policy: healthy nodes copy themselves, within caps (here: the rule and
the simulator's spawner; nodes on a running host use the same rule in :mod:`agents.host_spawning`).

The rule (:func:`healthy`) reads the node's own validation history: a node whose metric improved by
at least its ``spore:switchMargin`` (relative) over its last ``spore:stagnationRounds`` rounds has a
blueprint worth exploring around, so it spawns a mutated child (:func:`agents.spawn.plan_spawn`);
a failing or stagnating blueprint is not copied (stagnation is the mutation rule's business). Caps
per node (``spore:maxChildren``) and per host refuse the spawn, and each refusal is recorded once
per node and reason as a ``spore:SpawnDecision``, like every spawn.

The child (:func:`spawn_in_simulator`) starts from its parent's model and listeners (a variant of
the same agent on the same host; data never leaves the host), with the mutated hyperparameters
where the learner has them, seeks the parent's hashtags, joins its group and learns.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

from rdflib import Graph, URIRef

from agents.protocol.context import NodeContext
from agents.protocol.state import initial_state
from agents.simulator import Simulator
from agents.spawn import (
    DEFAULT_MAX_NODES_PER_HOST,
    SpawnOutcome,
    child_name,
    plan_spawn,
    policy_value,
    spawn_decision,
)
from ontology import SPORE
from reasoning.operators import Change
from reasoning.records import Decision

__all__ = ["AutoSpawner", "healthy", "spawn_in_simulator", "spawn_reason", "spawn_window"]


def healthy(
    history: Sequence[float], *, window: int, margin: float, higher_is_better: bool = True
) -> str | None:
    """Why the node is healthy enough to copy (one line), or None: its metric improved by at least
    ``margin`` (relative) between ``window`` rounds ago and now."""
    if window < 1 or len(history) <= window:
        return None
    before, now = history[-window - 1], history[-1]
    if before == 0:
        return None
    gain = (now - before) / abs(before) if higher_is_better else (before - now) / abs(before)
    if gain < margin:
        return None
    return f"its metric went from {before:.4g} to {now:.4g} in {window} rounds ({gain:+.1%})"


def spawn_reason(
    graph: Graph, blueprint: URIRef, history: Sequence[float], *, higher_is_better: bool = True
) -> str | None:
    """The spawning rule with its thresholds from the blueprint's policy: why the node should spawn
    now (:func:`healthy` over ``spore:stagnationRounds`` rounds and ``spore:switchMargin``), or None."""
    stated = policy_value(graph, blueprint, SPORE.switchMargin)
    margin = 0.05 if stated is None else float(stated)  # a margin of 0 is a policy, not "unset"
    window = spawn_window(graph, blueprint)
    return healthy(history, window=window, margin=margin, higher_is_better=higher_is_better)


def spawn_window(graph: Graph, blueprint: URIRef) -> int:
    """Over how many rounds the spawning rule compares the metric (``spore:stagnationRounds``)."""
    return int(policy_value(graph, blueprint, SPORE.stagnationRounds) or 3)


def _mutated_learner(learner: object, changes: Sequence[Change]) -> object:
    """The parent's learner with the hyperparameters the mutation changed, where it has them."""
    names = {f.name for f in fields(learner)} if hasattr(learner, "__dataclass_fields__") else set()  # type: ignore[arg-type]
    updates: dict[str, float | int] = {}
    for change in changes:
        setting = {"learningRate": "learning_rate", "localEpochs": "local_epochs"}.get(change.setting)
        if setting in names:
            updates[setting] = int(change.new) if setting == "local_epochs" else float(change.new)
    return replace(learner, **updates) if updates else learner  # type: ignore[type-var]


def spawn_in_simulator(
    simulator: Simulator,
    parent: str,
    *,
    child: str,
    changes: Sequence[Change] = (),
    at: float | None = None,
) -> None:
    """Start ``child`` next to ``parent``: the parent's model, listeners and sought hashtags and the
    mutated hyperparameters; it boots at ``at`` (default now), joins the parent's group and learns."""
    node = simulator.nodes[parent]
    state = node.state
    ctx: NodeContext = replace(node.ctx, learner=_mutated_learner(node.ctx.learner, changes))  # type: ignore[arg-type]
    seeks = state.seeks
    if state.membership is not None and state.membership.group.hashtag not in seeks:
        seeks = (state.membership.group.hashtag, *seeks)
    child_state = initial_state(
        child,
        seed=state.seed + 7919,
        blueprint=replace(state.blueprint, iri=f"{child}/blueprint"),
        weights=dict(state.weights),
        seeks=seeks,
    )
    child_state = replace(child_state, known_groups=dict(state.known_groups))
    simulator.add_node(ctx, child_state, at=simulator.now if at is None else at)


def host_of(actor: str) -> str:
    return urlsplit(actor).netloc


@dataclass
class AutoSpawner:
    """Applies the spawning rule to every node after each of its rounds (call :meth:`observe` as the
    simulator runs). ``blueprints``: each parent's blueprint graph and IRI (its policy holds the
    caps and thresholds); ``metric``: the validation metric the rule reads."""

    simulator: Simulator
    blueprints: dict[str, tuple[Graph, URIRef]]
    metric: str = "recall@20"
    higher_is_better: bool = True
    max_nodes_per_host: int = DEFAULT_MAX_NODES_PER_HOST
    seed: int = 0
    clock: datetime.datetime = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    history: dict[str, list[float]] = field(default_factory=dict)
    seen_round: dict[str, int] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[SpawnOutcome] = field(default_factory=list)
    _refused: set[tuple[str, str]] = field(default_factory=set)

    def host_nodes(self, host: str) -> int:
        return sum(1 for actor in self.simulator.nodes if host_of(actor) == host)

    def observe(self) -> list[str]:
        """Check every parent that finished a round since the last call; the children started."""
        started: list[str] = []
        for parent, (graph, blueprint) in sorted(self.blueprints.items()):
            record = self.simulator.state(parent).last_round
            if record is None or self.seen_round.get(parent) == record.round:
                continue
            self.seen_round[parent] = record.round
            value = dict(record.metrics).get(self.metric)
            if value is None:
                continue
            history = self.history.setdefault(parent, [])
            history.append(value)
            why = spawn_reason(graph, blueprint, history, higher_is_better=self.higher_is_better)
            if why is not None:
                child = self._spawn(parent, graph, blueprint, record.round, why)
                if child is not None:
                    started.append(child)
        return started

    def _spawn(self, parent: str, graph: Graph, blueprint: URIRef, round_number: int, why: str) -> str | None:
        mine = self.children.setdefault(parent, [])
        host = host_of(parent)
        name = child_name(str(graph.value(blueprint, SPORE.nodeName) or "node"), mine)
        child = f"https://{host}/nodes/{name}"
        outcome = plan_spawn(
            graph,
            blueprint,
            child=URIRef(f"{child}/blueprint"),
            name=name,
            children=len(mine),
            host_nodes=self.host_nodes(host),
            max_nodes_per_host=self.max_nodes_per_host,
            rng=random.Random(f"{self.seed}:{parent}:{round_number}"),
        )
        if not outcome.spawned:
            if (parent, outcome.reason) in self._refused:
                return None
            self._refused.add((parent, outcome.reason))
        else:
            outcome = replace(outcome, reason=f"{outcome.reason}; {why}")
        at = self.clock + datetime.timedelta(seconds=self.simulator.now)
        self.decisions.append(spawn_decision(outcome, node=parent, at=at, round_number=round_number + 1))
        self.outcomes.append(outcome)
        if not outcome.spawned or outcome.graph is None or outcome.child is None:
            return None
        mine.append(name)
        spawn_in_simulator(self.simulator, parent, child=child, changes=outcome.changes)
        return child
