"""The reasoning loop of a fungus node after every merged round, the same for simulated and served nodes.

After a node merges a round it writes what it knows into its graphs (:mod:`reasoning.evidence`),
runs one reasoning pass (:func:`reasoning.decisions.reason`) and acts on what the pass decided:

* its own measurement: the group's model after one local epoch on its own listeners, Recall@20 on
  its held-out listeners' plays;
* the claims of the other groups: the Recall@20 each group's owner publishes for its merged model,
  written as claimed evaluations in the node's peers graph;
* its cross-checks: for the groups whose claim beats its own merged model's Recall@20 (at most
  ``candidates``), the group's snapshot trained one local epoch with the node's own listeners and
  measured the same way, so that own and candidate models are compared alike; the owner's
  blueprint goes into the peers graph so that selection can adopt it;
* the acts: a switch is ``leave()`` (Leave) then a seek of the new group's hashtag (Join, admitted by
  its owner); a new blueprint revision rebuilds the node's learner (learning rate, local epochs,
  layers). Owners cannot leave the group they host, so they only mutate.

What differs between the simulator (:mod:`agents.evolution`) and a host (:mod:`agents.node_thinking`)
is only where claims and snapshots come from and how an act reaches the running node; that is the
:class:`Surroundings` a caller hands in. Everything else, including the order in which evidence is
written and measured, is here once, so that a simulated run and a served node decide alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyoxigraph import NamedNode, Quad, RdfFormat
from rdflib import Graph, Literal, URIRef
from torch import Tensor

from agents.protocol.core import leave
from agents.protocol.messages import GroupInfo, Message
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.state import NodeState
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import KnowledgeStore
from ontology import PREFIXES, SPORE
from reasoning.decisions import ReasoningPass, reason
from reasoning.evidence import Measurement, blueprint_of, evaluation, membership
from reasoning.operators import Operator, load_operators

__all__ = [
    "RECALL",
    "SAFE_OPERATORS",
    "Candidate",
    "Claim",
    "Reasoner",
    "RoundView",
    "Surroundings",
    "ThinkingSettings",
    "learner_settings",
    "measure",
    "switch_change",
    "tempting",
]

RECALL = "recall@20"
PROV_ATTRIBUTED = NamedNode(PREFIXES["prov"] + "wasAttributedTo")
_UNLINK = "DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o } }"
SAFE_OPERATORS = (
    "LearningRateMutation",
    "LocalEpochsMutation",
    "LayersMutation",
    "SwitchMarginMutation",
    "StagnationRoundsMutation",
)
"""Operators by local name; the embedding dimension is left out because a node whose shared
parameters change shape can no longer merge with any group it could join."""


def learner_settings(graph: Graph, blueprint: URIRef) -> dict[str, Any]:
    """The learner's hyperparameters a blueprint sets (what a new revision changes in the node)."""
    config = graph.value(blueprint, SPORE.trains)
    found: dict[str, Any] = {}
    for prop, name, kind in (
        (SPORE.learningRate, "learning_rate", float),
        (SPORE.localEpochs, "local_epochs", int),
        (SPORE.layers, "num_layers", int),
    ):
        value = graph.value(config, prop)
        if isinstance(value, Literal):
            found[name] = kind(value.toPython())
    return found


def measure(learner: LightGCNLearner, weights: Mapping[str, Tensor], round_number: int) -> float:
    """One local epoch from ``weights`` on the node's own listeners, then its held-out Recall@20."""
    trained = learner.train(dict(weights), seed=round_number)
    return float(learner.evaluate(trained.weights).get(RECALL, 0.0))


@dataclass(frozen=True, order=True)
class Claim:
    """What a group's owner publishes about its merged model; ordered by value, then by group."""

    value: float
    group: str
    owner: str
    snapshot: str
    """IRI of the snapshot the figure is about."""
    hashtag: str = field(default="", compare=False)
    sha256: str | None = field(default=None, compare=False)
    download: str | None = field(default=None, compare=False)
    """Where the owner serves the snapshot's bytes (``dcat:downloadURL``)."""
    blueprint: str | None = field(default=None, compare=False)
    """The blueprint the owner follows now, as it publishes it."""


def tempting(claims: Sequence[Claim], merged: float, limit: int) -> list[Claim]:
    """The claims worth a cross-check: those above the node's merged model, best first, at most ``limit``."""
    return sorted((claim for claim in claims if claim.value > merged), reverse=True)[:limit]


@dataclass(frozen=True)
class Candidate:
    """A claimed group's model as the node can train it, and its owner's blueprint."""

    weights: Mapping[str, Tensor]
    """The node's weights with the snapshot's shared part in place of its own."""
    blueprint: URIRef | None = None
    describe: Callable[[], Graph | None] | None = None
    """The blueprint's description; only called when the node does not know that revision yet."""


@dataclass(frozen=True)
class RoundView:
    """What a node's last merged round left it, as the reasoning loop needs it."""

    actor: str
    round_number: int
    group: str | None
    merged: float | None
    """Recall@20 of the merged model as the round measured it (None: not measured)."""
    weights: Mapping[str, Tensor]
    snapshot: str | None
    """IRI of the merged model (None before the node's first round)."""
    learner: LightGCNLearner
    owner: bool
    at: datetime.datetime


class Surroundings(Protocol):
    """Where a node's claims and candidate snapshots come from, and how its acts reach it."""

    def claims(self) -> Sequence[Claim]:
        """The other groups' published figures, this round."""
        ...

    def candidate(self, claim: Claim) -> Candidate | None:
        """The claimed snapshot, verified; None when it cannot be had (the claim stays unchecked)."""
        ...

    def switch(self, group: str) -> None:
        """Leave the current group and seek ``group``."""
        ...

    def rebuild(self, settings: Mapping[str, Any], blueprint: Graph, iri: URIRef) -> None:
        """Train from now on with ``settings`` (from the new blueprint revision ``iri``)."""
        ...


def switch_change(target: GroupInfo) -> Callable[[NodeState, float], tuple[NodeState, list[Message]]]:
    """The state change of a switch: Leave the group, then seek only ``target`` (the next step Joins)."""

    def change(state: NodeState, now: float) -> tuple[NodeState, list[Message]]:
        state, outbox = leave(state, now)
        state = dataclasses.replace(
            state,
            seeks=(target.hashtag,),
            known_groups={**state.known_groups, target.hashtag: target},
            rejected=state.rejected - {target.iri},
        )
        return state, outbox

    return change


@dataclass(frozen=True)
class ThinkingSettings:
    """How nodes reason: how many claims they cross-check, entailment, and the mutation operators."""

    candidates: int = 2
    entailment: bool = True
    operators: tuple[str, ...] = SAFE_OPERATORS
    seed: int | str = 0
    """Part of each pass's random draw (with the node and round), so that reruns decide alike."""
    claim_seconds: float = 1.0
    """How long one read of a group's claim serves the host's other nodes (agents/claims.py): the
    nodes of a group finish a round within about this much of each other."""


COUNTED = ("switches", "mutations", "reverts", "adoptions", "discarded", "cross_checks")


class Reasoner:
    """The reasoning loop over one store holding the graphs of the nodes it reasons for."""

    def __init__(self, store: KnowledgeStore, settings: ThinkingSettings = ThinkingSettings()) -> None:
        self.store = store
        self.settings = settings
        self.counts = dict.fromkeys(COUNTED, 0)
        self.reasoning_seconds = 0.0
        self.passes = 0
        all_operators = {op.iri.rsplit("#", 1)[-1]: op for op in load_operators()}
        self.operators: list[Operator] = [all_operators[name] for name in settings.operators]
        self.member_of: dict[str, str | None] = {}

    # evidence -------------------------------------------------------------------------------------

    def set_membership(self, actor: str, group: str | None) -> None:
        """``actor spore:memberOf group`` in its blueprint graph, as the rules read it."""
        if actor in self.member_of and self.member_of[actor] == group:
            return
        graph = graph_iri(NamedNode(actor), GraphKind.BLUEPRINT)
        self.store.update(
            _UNLINK, bindings={"g": graph, "s": NamedNode(actor), "p": NamedNode(SPORE.memberOf)}
        )
        if group is not None:
            self.store.extend(membership(actor, group, graph))
        self.member_of[actor] = group

    def know_blueprint(self, actor: str, owner: str, candidate: Candidate) -> None:
        """The owner's current blueprint into the node's peers graph (selection reads it there)."""
        blueprint = candidate.blueprint
        if blueprint is None:
            return
        peers = graph_iri(NamedNode(actor), GraphKind.PEERS)
        known = self.store.query(
            "ASK { ?b ?p ?o }", bindings={"b": NamedNode(str(blueprint))}, default_graph=peers
        )
        if not known:
            copy = candidate.describe() if candidate.describe is not None else None
            if copy is None or not len(copy):
                return
            self.store.load(copy.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=peers)
        self.store.update(
            _UNLINK, bindings={"g": peers, "s": NamedNode(owner), "p": NamedNode(SPORE.blueprint)}
        )
        self.store.extend(blueprint_of(owner, str(blueprint), peers))

    def record_round(self, view: RoundView, surroundings: Surroundings) -> None:
        """The node's own measurement, the other groups' claims and its cross-checks of the best."""
        actor, round_number, group = view.actor, view.round_number, view.group
        self.set_membership(actor, group)
        if group is None or view.snapshot is None:
            return
        models = graph_iri(NamedNode(actor), GraphKind.MODELS)
        peers = graph_iri(NamedNode(actor), GraphKind.PEERS)
        own = measure(view.learner, view.weights, round_number)
        quads = list(
            evaluation(
                Measurement(
                    f"{actor}/evaluations/{round_number}",
                    group,
                    view.snapshot,
                    round_number,
                    own,
                    actor,
                    at=view.at,
                ),
                models,
            )
        )
        claims = [claim for claim in surroundings.claims() if claim.group != group]
        for claim in claims:
            # The node's copy of the claim, in its own namespace: the owner's round numbers differ.
            claim_iri = f"{actor}/claims/{round_number}-{claim.group.rsplit('/', 1)[-1]}"
            quads += evaluation(
                Measurement(
                    claim_iri,
                    claim.group,
                    claim.snapshot,
                    round_number,
                    claim.value,
                    claim.owner,
                    claimed=True,
                    at=view.at,
                ),
                peers,
            )
        self.store.extend(quads)
        # A claim is the Recall@20 of a merged model, so it is compared with the node's own merged
        # model's figure; the cross-check then measures both models alike (one local epoch first).
        merged = view.merged if view.merged is not None else own
        for claim in tempting(claims, merged, self.settings.candidates):
            candidate = surroundings.candidate(claim)
            if candidate is None:
                continue
            value = measure(view.learner, candidate.weights, round_number)
            self.counts["cross_checks"] += 1
            check = Measurement(
                f"{actor}/evaluations/{round_number}-{claim.group.rsplit('/', 1)[-1]}",
                claim.group,
                claim.snapshot,
                round_number,
                value,
                actor,
                at=view.at,
            )
            self.store.extend(evaluation(check, models))
            self.store.extend(
                [Quad(NamedNode(claim.snapshot), PROV_ATTRIBUTED, NamedNode(claim.owner), peers)]
            )
            self.know_blueprint(actor, claim.owner, candidate)

    # reasoning and acting --------------------------------------------------------------------------

    def think(self, view: RoundView, surroundings: Surroundings) -> ReasoningPass:
        """One reasoning pass (decisions recorded by the rules), then the acts it calls for."""
        actor, round_number = view.actor, view.round_number
        started = time.perf_counter()
        result = reason(
            self.store,
            actor,
            round_number=round_number,
            now=view.at,
            rng=random.Random(f"{self.settings.seed}:{actor}:{round_number}"),
            entailment=self.settings.entailment,
            switching=not view.owner,
            operators=self.operators,
        )
        self.reasoning_seconds += time.perf_counter() - started
        self.passes += 1
        if result.switch.join is not None:
            self.counts["switches"] += 1
            surroundings.switch(result.switch.join)
        outcome = result.mutation
        if outcome.discarded is not None:
            self.counts["discarded"] += 1
        if outcome.blueprint is not None and outcome.mutant is not None:
            kind = "mutations"
            if outcome.adopted is not None:
                kind = "reverts" if outcome.adopted.startswith(f"{actor}/") else "adoptions"
            self.counts[kind] += 1
            settings = learner_settings(outcome.mutant.graph, outcome.blueprint)
            surroundings.rebuild(settings, outcome.mutant.graph, outcome.blueprint)
        return result

    def after_round(self, view: RoundView, surroundings: Surroundings) -> ReasoningPass:
        """Record the round's evidence, reason, act: the whole REASON/ACT step of a round."""
        self.record_round(view, surroundings)
        return self.think(view, surroundings)
