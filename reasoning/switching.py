"""Switching learning groups on evidence, with hysteresis: the ``decide-switch`` rule and its record.

A node compares its own group with every group that published a claim this round. Claims are only
what makes a group worth a look: the node fetches the group's snapshot, measures it on its own
validation listeners and records that as an evaluation attributed to itself
(:mod:`reasoning.evidence`); the rule ``queries/decide-switch.rq`` compares those measurements with
the node's measurements of its own group's model. A candidate wins only after beating the own group
by the policy's ``spore:switchMargin`` in each of the last ``spore:switchPatience`` rounds, so a
claim that the node cannot reproduce never moves it and noise around the margin does not make it
flap. The act is the protocol's: ``Leave`` the old group, then ``Join`` the new one.

A decision is recorded when the node switched, and when it stayed although some group claimed more
than the node measured for its own (the case a person would ask about); a quiet round writes nothing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pyoxigraph import NamedNode

from knowledge.store import KnowledgeStore
from ontology import SPORE
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
    rule_dataset,
    run_rule,
    text,
)

__all__ = ["SwitchOutcome", "decide_switch", "metric_name"]


@dataclass(frozen=True)
class SwitchOutcome:
    """What the switching rule concluded: the decision recorded (if any) and the group to join."""

    decision: Decision | None
    leave: str | None = None
    join: str | None = None

    @property
    def switches(self) -> bool:
        return self.join is not None


def metric_name(metric: str, cutoff: int) -> str:
    return f"{metric.rsplit('#', 1)[-1]}@{cutoff}"


def _label(row: RuleRow) -> str:
    return text(row, "hashtag") or text(row, "target")


def decide_switch(
    store: KnowledgeStore,
    node: str,
    *,
    round_number: int,
    now: datetime.datetime,
    metric: str = str(SPORE.Recall),
    cutoff: int = 20,
    write: bool = True,
) -> SwitchOutcome:
    """Run the switching rule for ``node`` at ``round_number``; record and return its verdict."""
    rows = run_rule(
        store,
        "decide-switch",
        node,
        {"round": integer(round_number), "metric": NamedNode(metric), "cutoff": integer(cutoff)},
        dataset=rule_dataset(node, decisions=False),
    )
    own = next((row for row in rows if flag(row, "own")), None)
    candidates = [row for row in rows if not flag(row, "own")]
    if own is None or not candidates:
        return SwitchOutcome(None)
    own_score = number(own, "score")
    winner = rows[0] if flag(rows[0], "qualifies") and not flag(rows[0], "own") else None
    tempting = [row for row in candidates if (number(row, "claimed") or 0.0) > (own_score or 0.0)]
    if winner is None and not tempting:
        return SwitchOutcome(None)
    options = tuple(Option(text(row, "target"), number(row, "score"), _label(row)) for row in rows)
    chosen = options[rows.index(winner)] if winner is not None else options[rows.index(own)]
    evidence = iris(own, "measured")
    for row in [winner] if winner is not None else tempting:
        evidence += iris(row, "measured", "window", "claims")
    what = metric_name(metric, cutoff)
    if winner is not None:
        held = int(number(winner, "held") or 0)
        explanation = (
            f"Left {_label(own)} for {_label(winner)}: its model scored {number(winner, 'score'):.3f} "
            f"vs {own_score or 0.0:.3f} {what} on my own listeners, at least "
            f"{number(winner, 'margin') or 0.0:.0%} better in each of {held} rounds."
        )
    else:
        best = max(tempting, key=lambda row: number(row, "claimed") or 0.0)
        measured = number(best, "score")
        patience = int(number(best, "patience") or 1)
        held = int(number(best, "held") or 0)
        found = (
            "I have not measured its model on my own listeners"
            if measured is None
            else f"on my own listeners it scored {measured:.3f} vs {own_score or 0.0:.3f}, "
            f"ahead by the margin in {held} of the {patience} rounds I require"
        )
        explanation = (
            f"Stayed in {_label(own)}: {_label(best)} claims {number(best, 'claimed'):.3f} {what}, "
            f"but {found}."
        )
    decision = Decision(
        iri=decision_iri(node, round_number, "switch"),
        kind=str(SPORE.SwitchGroupDecision),
        node=node,
        round=round_number,
        at=now,
        options=options,
        chosen=chosen,
        evidence=tuple(dict.fromkeys(evidence)),
        explanation=explanation,
    )
    if write:
        record(store, decision)
    if winner is None:
        return SwitchOutcome(decision)
    return SwitchOutcome(decision, leave=text(own, "target"), join=text(winner, "target"))
