"""Decisions as values and as RDF, and the one way a decision rule is run over a node's graphs.

A rule is a named SPARQL query (``queries/decide-*.rq``) that weighs options from what the node's
graphs say and ranks them; the Python around it only records the verdict. Recording builds a
``spore:Decision`` that passes ``shapes:DecisionShape``: kind, options weighed with their scores, the
chosen option, the evidence it was derived from and a one-line explanation.

Options get IRIs under their decision (``{decision}#option-1``) rather than blank nodes, so that the
web page and ``spore explain`` can link to one, and rerunning a rule writes the same names.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pyoxigraph import BlankNode, Literal, NamedNode, Quad, QuerySolutions

import queries
from knowledge.graphs import PUBLIC_KINDS, GraphKind, graph_iri
from knowledge.store import KnowledgeStore
from knowledge.store.bindings import Term
from ontology import PREFIXES, SPORE
from reasoning.evidence import RDF_TYPE, xsd_datetime

__all__ = [
    "Decision",
    "Option",
    "RuleRow",
    "decision_iri",
    "decision_quads",
    "integer",
    "one_line",
    "record",
    "rule_dataset",
    "run_rule",
]

PROV = PREFIXES["prov"]
XSD = PREFIXES["xsd"]
EXPLANATION_LIMIT = 300
"""shapes:DecisionShape allows one line of at most this many characters."""

RuleRow = dict[str, NamedNode | BlankNode | Literal]


@dataclass(frozen=True)
class Option:
    """One alternative a decision weighed: what it is about and its score (higher is better)."""

    target: str
    score: float | None = None
    label: str = ""
    """How a person names the target in an explanation (a hashtag, "a mutated copy"); not written."""


@dataclass(frozen=True)
class Decision:
    """A decision ready to be recorded; ``kind`` is the IRI of a subclass of ``spore:Decision``."""

    iri: str
    kind: str
    node: str
    round: int
    at: datetime.datetime
    options: tuple[Option, ...]
    chosen: Option | None
    evidence: tuple[str, ...]
    explanation: str

    def __post_init__(self) -> None:
        if not self.evidence:
            raise ValueError(f"decision {self.iri} cites no evidence; a decision must say what it used")
        if self.chosen is not None and self.chosen not in self.options:
            raise ValueError(f"decision {self.iri} chose an option it did not weigh")


def one_line(text: str) -> str:
    """``text`` on one line, cut to the length the decision shape allows."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXPLANATION_LIMIT else flat[: EXPLANATION_LIMIT - 1] + "…"


def decision_iri(node: str, round_number: int, kind: str) -> str:
    """``{node}/decisions/{round}-{kind}``: at most one decision of a kind per node and round."""
    return f"{node.rstrip('/')}/decisions/{round_number}-{kind}"


def integer(value: int) -> Literal:
    return Literal(str(int(value)), datatype=NamedNode(XSD + "integer"))


def decision_quads(decision: Decision, graph: NamedNode) -> list[Quad]:
    """The decision as quads in ``graph``; its options are ``{decision}#option-N``."""
    subject = NamedNode(decision.iri)
    quads = [
        Quad(subject, RDF_TYPE, NamedNode(decision.kind), graph),
        Quad(subject, NamedNode(SPORE.decidedBy), NamedNode(decision.node), graph),
        Quad(subject, NamedNode(PROV + "generatedAtTime"), xsd_datetime(decision.at), graph),
        Quad(subject, NamedNode(SPORE.explanation), Literal(one_line(decision.explanation)), graph),
    ]
    if decision.round >= 1:
        quads.append(Quad(subject, NamedNode(SPORE.roundNumber), integer(decision.round), graph))
    for evidence in dict.fromkeys(decision.evidence):
        quads.append(Quad(subject, NamedNode(PROV + "wasDerivedFrom"), NamedNode(evidence), graph))
    for number, option in enumerate(decision.options, start=1):
        node = NamedNode(f"{decision.iri}#option-{number}")
        quads.append(Quad(subject, NamedNode(SPORE.weighed), node, graph))
        quads.append(Quad(node, RDF_TYPE, NamedNode(SPORE.Option), graph))
        quads.append(Quad(node, NamedNode(SPORE.target), NamedNode(option.target), graph))
        if option.score is not None:
            double = Literal(repr(float(option.score)), datatype=NamedNode(XSD + "double"))
            quads.append(Quad(node, NamedNode(SPORE.score), double, graph))
        if option == decision.chosen:
            quads.append(Quad(subject, NamedNode(SPORE.chosen), node, graph))
    return quads


def record(store: KnowledgeStore, decision: Decision) -> NamedNode:
    """Write ``decision`` into its node's decisions graph, replacing an earlier one with its IRI."""
    graph = graph_iri(NamedNode(decision.node), GraphKind.DECISIONS)
    subject = NamedNode(decision.iri)
    # The IRIs written in (N-Triples terms, escaped): bound with BIND, the engine matched every
    # statement of the graph first. Two operations, options first: in one, every statement of the
    # decision joined every statement of its options, each a delete (12 ms on disk).
    store.update(
        f"DELETE {{ GRAPH {graph} {{ ?option ?q ?v }} }} WHERE {{ GRAPH {graph} {{ "
        f"{subject} <https://w3id.org/spore/ns#weighed> ?option . ?option ?q ?v }} }} ; "
        f"DELETE WHERE {{ GRAPH {graph} {{ {subject} ?p ?o }} }}"
    )
    store.extend(decision_quads(decision, graph))
    return subject


def rule_dataset(node: str, *, decisions: bool = True) -> list[NamedNode]:
    """The graphs a rule reads: the node's public graphs except the catalogue (never the private one).

    The catalogue is left out because no rule reads artists, and every graph in a union default
    graph costs each triple pattern a lookup; the entailed graph is left out because the rules match
    the asserted terms they name (the entailment is for the node's readers, such as its SPARQL
    endpoint asking for every ``spore:Decision``). ``decisions=False`` leaves out the node's earlier
    decisions too, for a rule that does not read them (switching weighs evaluations only).
    """
    node_iri = NamedNode(node)
    left_out = {GraphKind.CATALOGUE} | (set() if decisions else {GraphKind.DECISIONS})
    return [graph_iri(node_iri, kind) for kind in PUBLIC_KINDS if kind not in left_out]


def _written_in(text: str, bindings: Mapping[str, Term]) -> tuple[str, dict[str, Term]]:
    """``text`` with the bound IRIs and literals written in where that is safe, and the bindings left.

    A constant in the text lets the engine start from it, where ``BIND`` (the store's way to bind,
    :mod:`knowledge.store.bindings`) is a join it evaluates after the patterns: written in, the
    switching rule ran a third faster. A variable that the query projects, names with ``AS`` or
    binds inside a sub-select cannot be replaced by a constant, so it stays bound.
    """
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    projection = code[: code.upper().find("WHERE")] if "WHERE" in code.upper() else code
    written, left = code, {}
    for name, term in bindings.items():
        variable = re.compile(rf"[?$]{re.escape(name)}\b")
        unsafe = (
            isinstance(term, BlankNode)
            or variable.search(projection)
            or re.search(rf"\bAS\s+[?$]{re.escape(name)}\b", code, re.IGNORECASE)
            or code.upper().count("SELECT") > 1
        )
        if unsafe:
            left[name] = term
        else:
            written = variable.sub(lambda _match, term=term: str(term), written)
    return written, left


def run_rule(
    store: KnowledgeStore,
    name: str,
    node: str,
    bindings: Mapping[str, Term] | None = None,
    *,
    dataset: list[NamedNode] | None = None,
) -> list[RuleRow]:
    """Run the named rule with ``?node`` bound over ``dataset`` (:func:`rule_dataset` by default);
    its rows as dictionaries."""
    text, rest = _written_in(queries.load(name), {"node": NamedNode(node), **(bindings or {})})
    result = store.query(
        text, bindings=rest or None, default_graph=dataset if dataset is not None else rule_dataset(node)
    )
    if not isinstance(result, QuerySolutions):
        raise TypeError(f"rule {name} must be a SELECT query")
    names = [variable.value for variable in result.variables]
    rows = []
    for solution in result:
        row: RuleRow = {}
        for variable in names:
            term = solution[variable]
            if term is not None and not isinstance(term, tuple):
                row[variable] = term  # type: ignore[assignment]
        rows.append(row)
    return rows


def number(row: RuleRow, name: str) -> float | None:
    """A numeric column of a rule row as a float, or None when unbound."""
    term = row.get(name)
    return float(term.value) if isinstance(term, Literal) else None


def flag(row: RuleRow, name: str) -> bool:
    term = row.get(name)
    return isinstance(term, Literal) and term.value in ("true", "1")


def iris(row: RuleRow, *names: str) -> list[str]:
    """The IRIs listed (space-separated) in ``names`` columns of a rule row, in order, once each."""
    found: dict[str, None] = {}
    for name in names:
        term = row.get(name)
        if isinstance(term, Literal):
            for iri in term.value.split():
                found.setdefault(iri)
    return list(found)


def text(row: RuleRow, name: str, default: str = "") -> str:
    term = row.get(name)
    return term.value if term is not None else default
