"""One reasoning pass of a node, and reading its decisions back: the REASON step of a round.

A pass runs, on the node's store and through :class:`~knowledge.store.KnowledgeStore` only (an
on-disk embedded store is first asked to keep the graphs a pass reads in memory too, where reading
them costs a third; knowledge/store/mirror.py):

1. entailment (:func:`reasoning.rules.entail`) of the node's public graphs into
   ``{node}/graphs/inferred``, which the rules read along with the graphs themselves;
2. the switching rule (:mod:`reasoning.switching`);
3. when the node does not switch, the mutation and selection rule (:mod:`reasoning.mutation`):
   a node that is changing group has not yet seen whether its blueprint stagnates in the new one.

Every rule records its own decision in the node's decisions graph; the pass returns what they
decided so that the caller can act (Leave and Join, a new learner from the new blueprint). The
acts themselves stay outside: the protocol core does them.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyoxigraph import Literal, NamedNode, QuerySolutions

import queries
from knowledge.store import EmbeddedStore, KnowledgeStore
from ontology import SPORE
from reasoning.mutation import MutationOutcome, decide_mutation
from reasoning.operators import Operator
from reasoning.records import Decision, rule_dataset
from reasoning.rules import ONTOLOGY_GRAPH, Entailment, entail
from reasoning.switching import SwitchOutcome, decide_switch
from shapes.validation import Validator

__all__ = [
    "EvidenceView",
    "DecisionView",
    "OptionView",
    "ReasoningPass",
    "inferred_graph",
    "read_decisions",
    "reason",
    "reasoning_graphs",
]


def inferred_graph(node: str) -> NamedNode:
    """Where a pass writes the node's entailed triples."""
    return NamedNode(f"{node.rstrip('/')}/graphs/inferred")


def reasoning_graphs(node: str) -> list[NamedNode]:
    """Every graph a pass for ``node`` reads or writes: the ontology, the rules' dataset, the inferred."""
    return [ONTOLOGY_GRAPH, *rule_dataset(node), inferred_graph(node)]


@dataclass(frozen=True)
class ReasoningPass:
    """What one pass entailed and decided."""

    entailment: Entailment | None
    switch: SwitchOutcome
    mutation: MutationOutcome

    @property
    def decisions(self) -> list[Decision]:
        return [d for d in (self.switch.decision, self.mutation.decision) if d is not None]


def reason(
    store: KnowledgeStore,
    node: str,
    *,
    round_number: int,
    now: datetime.datetime,
    rng: random.Random,
    entailment: bool = True,
    switching: bool = True,
    mutation: bool = True,
    operators: Sequence[Operator] | None = None,
    validator: Validator | None = None,
    keep_in_memory: bool = True,
) -> ReasoningPass:
    """Entail, then run the decision rules for ``node`` at ``round_number``; decisions are recorded.

    ``switching=False`` is for a node that cannot leave its group (the owner of the group).
    ``keep_in_memory=False`` reads an on-disk store's graphs from disk (the benchmark's baseline).
    """
    if keep_in_memory and isinstance(store, EmbeddedStore):
        store.keep_in_memory(reasoning_graphs(node))
    entailed = None
    if entailment:
        entailed = entail(store, graphs=rule_dataset(node), into=inferred_graph(node))
    switch = SwitchOutcome(None)
    if switching:
        switch = decide_switch(store, node, round_number=round_number, now=now)
    mutated = MutationOutcome(None)
    if mutation and not switch.switches:
        mutated = decide_mutation(
            store,
            node,
            round_number=round_number,
            now=now,
            rng=rng,
            operators=operators,
            validator=validator,
        )
    return ReasoningPass(entailed, switch, mutated)


# Reading decisions back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionView:
    target: str
    score: float | None
    chosen: bool


@dataclass(frozen=True)
class EvidenceView:
    iri: str
    value: float | None
    round: int | None
    by: str | None
    claimed: bool


@dataclass
class DecisionView:
    """A recorded decision as ``spore explain`` and the web page show it."""

    iri: str
    kind: str
    round: int | None
    at: str | None
    explanation: str
    options: list[OptionView] = field(default_factory=list)
    evidence: list[EvidenceView] = field(default_factory=list)

    @property
    def kind_name(self) -> str:
        return self.kind.removeprefix(str(SPORE))


def _value(row: object, name: str) -> str | None:
    term = row[name]  # type: ignore[index]
    return term.value if isinstance(term, Literal | NamedNode) else None


def _float(text: str | None) -> float | None:
    return float(text) if text is not None else None


def read_decisions(
    store: KnowledgeStore,
    *,
    node: str | None = None,
    decision: str | None = None,
    dataset: Sequence[NamedNode] | None = None,
) -> list[DecisionView]:
    """The decisions in ``dataset`` (the store's default dataset if None), oldest first."""
    bindings = {}
    if node is not None:
        bindings["node"] = NamedNode(node)
    if decision is not None:
        bindings["decision"] = NamedNode(decision)
    result = store.query(
        queries.load("decide-explain"),
        bindings=bindings,
        default_graph=list(dataset) if dataset is not None else None,
    )
    assert isinstance(result, QuerySolutions)
    views: dict[str, DecisionView] = {}
    for row in result:
        iri = _value(row, "decision") or ""
        view = views.get(iri)
        if view is None:
            round_text = _value(row, "round")
            view = views[iri] = DecisionView(
                iri=iri,
                kind=_value(row, "kind") or "",
                round=int(round_text) if round_text is not None else None,
                at=_value(row, "at"),
                explanation=_value(row, "explanation") or "",
            )
        target = _value(row, "target")
        if target is not None:
            view.options.append(
                OptionView(target, _float(_value(row, "score")), _value(row, "chosen") == "true")
            )
        evidence = _value(row, "evidence")
        if evidence is not None:
            evidence_round = _value(row, "evidenceRound")
            view.evidence.append(
                EvidenceView(
                    evidence,
                    _float(_value(row, "value")),
                    int(evidence_round) if evidence_round is not None else None,
                    _value(row, "by"),
                    _value(row, "claimed") == "true",
                )
            )
    return list(views.values())
