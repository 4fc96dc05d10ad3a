"""Mutation and selection of blueprints: the rule that decides, the mutant checked by the shapes.

The operators and :func:`~reasoning.operators.mutate` are in :mod:`reasoning.operators`. When to
mutate is the rule ``queries/decide-mutation.rq`` (stagnation for ``spore:stagnationRounds``
rounds). The same rule weighs selection: the blueprint of a peer whose model the node measured on its
own listeners and found better by the switch margin is adopted, with a mutation, instead of the
node's own (the node keeps its name and hashtags; model configuration, modules and policy come from
the peer, and the revision links to the peer's blueprint). A mutant that fails the shapes is never
written: the decision records why it was discarded.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable
from dataclasses import dataclass

from pyoxigraph import NamedNode, RdfFormat
from rdflib import Graph, URIRef

from knowledge.documents import rdflib_graph
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import EmbeddedStore, KnowledgeStore, to_rdflib
from ontology import SPORE
from reasoning.operators import Mutant, Operator, mutate
from reasoning.records import (
    Decision,
    Option,
    RuleRow,
    decision_iri,
    flag,
    integer,
    iris,
    number,
    record,
    run_rule,
    text,
)
from reasoning.switching import metric_name
from shapes.validation import Validator, default_validator

__all__ = ["MutationOutcome", "current_blueprint", "decide_mutation", "write_blueprint"]


def _descriptions(store: KnowledgeStore, graphs: list[NamedNode], *blueprints: str) -> Graph:
    """What mutation and adoption read: the blueprints' concise bounded descriptions in ``graphs``.

    Oxigraph's DESCRIBE is the CBD; converting the whole peers graph (every claim and evaluation)
    to rdflib instead was most of a mutating pass. Other endpoints define DESCRIBE their own way, so
    they still hand over the graphs whole.
    """
    if not isinstance(store, EmbeddedStore):
        return to_rdflib(store, graphs)
    described = store.query(
        f"DESCRIBE {' '.join(str(NamedNode(b)) for b in blueprints)}", default_graph=graphs
    )
    return rdflib_graph(described)  # type: ignore[arg-type]


def current_blueprint(store: KnowledgeStore, node: str) -> URIRef | None:
    """The blueprint ``node spore:blueprint`` names in the node's blueprint graph."""
    result = store.query(
        "SELECT ?b WHERE { ?node <https://w3id.org/spore/ns#blueprint> ?b }",
        bindings={"node": NamedNode(node)},
        default_graph=graph_iri(NamedNode(node), GraphKind.BLUEPRINT),
    )
    for row in result:  # type: ignore[union-attr]
        return URIRef(row["b"].value)
    return None


def write_blueprint(store: KnowledgeStore, node: str, graph: Graph, blueprint: URIRef) -> None:
    """Add a blueprint revision to the node's blueprint graph and make it the one the node follows."""
    target = graph_iri(NamedNode(node), GraphKind.BLUEPRINT)
    store.load(graph.serialize(format="nt"), format=RdfFormat.N_TRIPLES, graph=target)
    store.update(
        "DELETE { GRAPH ?g { ?node <https://w3id.org/spore/ns#blueprint> ?old } } "
        "INSERT { GRAPH ?g { ?node <https://w3id.org/spore/ns#blueprint> ?new } } "
        "WHERE { OPTIONAL { GRAPH ?g { ?node <https://w3id.org/spore/ns#blueprint> ?old } } }",
        bindings={"g": target, "node": NamedNode(node), "new": NamedNode(str(blueprint))},
    )


def _label(row: RuleRow) -> str:
    if flag(row, "own"):
        return "my blueprint"
    return "an earlier blueprint of mine" if flag(row, "previous") else "a peer's blueprint"


@dataclass(frozen=True)
class MutationOutcome:
    """What the mutation rule did: its decision, and the new blueprint when one was written."""

    decision: Decision | None
    blueprint: URIRef | None = None
    mutant: Mutant | None = None
    adopted: str | None = None
    discarded: str | None = None
    """Why the mutant was thrown away (the first shape violation), when it was."""


def decide_mutation(
    store: KnowledgeStore,
    node: str,
    *,
    round_number: int,
    now: datetime.datetime,
    rng: random.Random,
    operators: Iterable[Operator] | None = None,
    validator: Validator | None = None,
    metric: str = str(SPORE.Recall),
    cutoff: int = 20,
) -> MutationOutcome:
    """Run the mutation rule; when the node stagnates, write a mutated (or adopted) revision."""
    bindings = {"round": integer(round_number), "metric": NamedNode(metric), "cutoff": integer(cutoff)}
    rows = run_rule(store, "decide-mutation", node, bindings)
    own = next((row for row in rows if flag(row, "own")), None)
    if own is None or not flag(own, "stagnant"):
        return MutationOutcome(None)
    winner = rows[0] if flag(rows[0], "qualifies") else own
    options = tuple(Option(text(row, "target"), number(row, "score"), _label(row)) for row in rows)
    chosen = options[rows.index(winner)]
    what = metric_name(metric, cutoff)
    window = int(number(own, "window") or 1)
    reason = f"no gain over {number(own, 'before'):.3f} {what} in {window} rounds"
    own_iri = URIRef(text(own, "target"))
    public = [graph_iri(NamedNode(node), kind) for kind in (GraphKind.BLUEPRINT, GraphKind.PEERS)]
    source = _descriptions(store, public, chosen.target, str(own_iri))
    child = URIRef(f"{node.rstrip('/')}/blueprints/{round_number}")
    adopted = winner is not own
    mutant = mutate(
        source,
        URIRef(chosen.target),
        child,
        rng=rng,
        rate=float(number(own, "rate") or 0.1),
        operators=operators,
        reason=reason,
        adopt_into=(source, own_iri) if adopted else None,
    )
    report = (validator or default_validator()).validate(mutant.graph)
    evidence = iris(own, "measured") + (iris(winner, "verified") if adopted else [])
    changed = ", ".join(change.note() for change in mutant.changes) or "nothing"
    if not report.conforms:
        why = report.lines()[0] if report.lines() else "the shapes rejected it"
        decision = Decision(
            iri=decision_iri(node, round_number, "mutation"),
            kind=str(SPORE.MutationDecision),
            node=node,
            round=round_number,
            at=now,
            options=options,
            chosen=options[rows.index(own)],
            evidence=tuple(evidence),
            explanation=f"Kept my blueprint: the mutant ({changed}) was discarded because {why}.",
        )
        record(store, decision)
        return MutationOutcome(decision, mutant=mutant, discarded=why)
    write_blueprint(store, node, mutant.graph, child)
    if adopted and flag(winner, "previous"):
        explanation = (
            f"Returned to an earlier blueprint of mine, which reached {chosen.score:.3f} {what} when I "
            f"left it vs my {number(own, 'recent'):.3f} now, mutated ({changed}): {reason}."
        )
    elif adopted:
        explanation = (
            f"Adopted a peer's blueprint whose model scored {chosen.score:.3f} "
            f"vs my {number(own, 'recent'):.3f} {what} on my own listeners, mutated ({changed}): {reason}."
        )
    else:
        explanation = f"Mutated my blueprint ({changed}): {reason}."
    decision = Decision(
        iri=decision_iri(node, round_number, "mutation"),
        kind=str(SPORE.MutationDecision),
        node=node,
        round=round_number,
        at=now,
        options=options,
        chosen=chosen,
        evidence=tuple(evidence),
        explanation=explanation,
    )
    record(store, decision)
    return MutationOutcome(decision, child, mutant, adopted=chosen.target if adopted else None)
