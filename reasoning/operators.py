"""Mutation operators, declared in the ontology, and :func:`mutate`: a blueprint's next revision.

The operators are data. Each ``spore:MutationOperator`` in ``ontology/spore.ttl`` names the setting
it changes (``spore:mutates``), the range it keeps it in (``spore:minimum``/``spore:maximum``) and how
far one change goes (``spore:factor``: multiply or divide; ``spore:step``: add or subtract;
``spore:choice``: pick another value). :func:`mutate` applies each operator with the policy's
``spore:mutationRate`` (at least one always fires, so a mutation changes something) to a copy of a
blueprint, which becomes a new revision: ``prov:wasRevisionOf`` its parent, ``spore:revision`` one
more, and a ``spore:changeNote`` saying what changed and why. Pure functions over rdflib graphs; when
to mutate, and the store, are :mod:`reasoning.mutation`'s.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from rdflib import RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.namespace import PROV
from rdflib.term import Node

from ontology import SPORE, load_ontology

__all__ = ["Change", "Mutant", "Operator", "blueprint_graph", "load_operators", "mutate"]

_PARTS = (SPORE.trains, SPORE.policy)
"""Where the settings live: the model configuration and the policy of a blueprint."""
_ADOPTED = (SPORE.trains, SPORE.policy, SPORE.usesModule)
"""What a node takes from a peer's blueprint it adopts; name, title and hashtags stay its own."""


@dataclass(frozen=True)
class Operator:
    """One ``spore:MutationOperator`` as the ontology declares it."""

    iri: str
    setting: URIRef
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    factor: Decimal | None = None
    step: Decimal | None = None
    choices: tuple[URIRef, ...] = ()

    @property
    def name(self) -> str:
        return self.setting.rsplit("#", 1)[-1]


def load_operators(ontology: Graph | None = None) -> tuple[Operator, ...]:
    """Every mutation operator ``ontology`` (the shipped one by default) declares, by IRI."""
    return _operators_from(ontology) if ontology is not None else _shipped_operators()


@cache
def _shipped_operators() -> tuple[Operator, ...]:
    return _operators_from(load_ontology())


def _decimal(graph: Graph, subject: Node, prop: URIRef) -> Decimal | None:
    value = graph.value(subject, prop)
    return Decimal(str(value)) if value is not None else None


def _operators_from(graph: Graph) -> tuple[Operator, ...]:
    found = []
    for subject in sorted(graph.subjects(RDF.type, SPORE.MutationOperator)):
        setting = graph.value(subject, SPORE.mutates)
        if not isinstance(setting, URIRef):
            continue
        found.append(
            Operator(
                iri=str(subject),
                setting=setting,
                minimum=_decimal(graph, subject, SPORE.minimum),
                maximum=_decimal(graph, subject, SPORE.maximum),
                factor=_decimal(graph, subject, SPORE.factor),
                step=_decimal(graph, subject, SPORE.step),
                choices=tuple(
                    sorted(c for c in graph.objects(subject, SPORE.choice) if isinstance(c, URIRef))
                ),
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class Change:
    """One setting a mutation changed."""

    operator: str
    setting: str
    old: str
    new: str

    def note(self) -> str:
        return f"{self.setting} {self.old} -> {self.new}"


@dataclass(frozen=True)
class Mutant:
    """A mutated blueprint (not yet validated) and what changed."""

    iri: URIRef
    graph: Graph
    changes: tuple[Change, ...]


def _short(term: Node) -> str:
    return str(term).rsplit("#", 1)[-1] if isinstance(term, URIRef) else str(term)


def _copy(source: Graph, subject: Node, target: Graph, rename: dict[Node, Node]) -> None:
    """Copy ``subject``'s description and the blank nodes below it, under fresh blank node names,
    so that the copy shares no blank node with the original once both are in one store."""
    for predicate, obj in source.predicate_objects(subject):
        if isinstance(obj, BNode):
            if obj not in rename:
                rename[obj] = BNode()
                _copy(source, obj, target, rename)
            obj = rename[obj]
        target.add((rename.get(subject, subject), predicate, obj))


def blueprint_graph(source: Graph, blueprint: URIRef) -> Graph:
    """``blueprint`` and everything below it (its concise bounded description) from ``source``."""
    graph = Graph()
    rename: dict[Node, Node] = {}
    _copy(source, blueprint, graph, rename)
    return graph


def _mutated_value(operator: Operator, current: Literal, rng: random.Random) -> Literal | None:
    integral = current.datatype == XSD.integer
    value = Decimal(str(current))
    candidates = []
    if operator.factor is not None and operator.factor > 0:
        candidates = [value * operator.factor, value / operator.factor]
    elif operator.step is not None:
        candidates = [value + operator.step, value - operator.step]
    if rng.random() < 0.5:
        candidates.reverse()
    for candidate in candidates:
        if integral:
            candidate = Decimal(int(candidate.to_integral_value()))
        if operator.minimum is not None and candidate < operator.minimum:
            continue
        if operator.maximum is not None and candidate > operator.maximum:
            continue
        if candidate != value:
            if integral:
                return Literal(int(candidate), datatype=XSD.integer)
            # Six significant digits, written positionally: xsd:decimal has no exponent notation.
            rounded = Decimal(f"{candidate:.6g}")
            return Literal(format(rounded.normalize(), "f"), datatype=XSD.decimal)
    return None


def _apply(graph: Graph, holder: Node, operator: Operator, rng: random.Random) -> Change | None:
    current = graph.value(holder, operator.setting)
    if current is None:
        return None
    if operator.choices:
        others = [choice for choice in operator.choices if choice != current]
        if not others:
            return None
        new: Node = rng.choice(others)
    elif isinstance(current, Literal):
        mutated = _mutated_value(operator, current, rng)
        if mutated is None:
            return None
        new = mutated
    else:
        return None
    graph.set((holder, operator.setting, new))
    return Change(operator.iri, operator.name, _short(current), _short(new))


def mutate(
    source: Graph,
    parent: URIRef,
    child: URIRef,
    *,
    rng: random.Random,
    rate: float,
    operators: Iterable[Operator] | None = None,
    reason: str = "",
    adopt_into: tuple[Graph, URIRef] | None = None,
) -> Mutant:
    """A new revision ``child`` of blueprint ``parent`` (described in ``source``), mutated.

    Each operator fires with probability ``rate``; when none does, one drawn at random does, so a
    mutation is never a copy. With ``adopt_into=(own_graph, own_blueprint)`` the node's own name,
    title and hashtags are kept and the rest comes from ``parent`` (a peer's blueprint): selection.
    """
    chosen_operators = tuple(load_operators() if operators is None else operators)
    graph = Graph()
    rename: dict[Node, Node] = {parent: child}
    if adopt_into is None:
        _copy(source, parent, graph, rename)
    else:
        own_graph, own = adopt_into
        own_rename: dict[Node, Node] = {own: child}
        _copy(own_graph, own, graph, own_rename)
        for prop in _ADOPTED:
            for old in list(graph.objects(child, prop)):
                graph.remove((child, prop, old))
                for triple in blueprint_graph(graph, old) if isinstance(old, BNode) else ():
                    graph.remove(triple)
            for obj in source.objects(parent, prop):
                if isinstance(obj, BNode):
                    rename[obj] = BNode()
                    _copy(source, obj, graph, rename)
                graph.add((child, prop, rename.get(obj, obj)))
    holders = [obj for prop in _PARTS for obj in graph.objects(child, prop)]
    applicable = [
        (h, op) for op in chosen_operators for h in holders if graph.value(h, op.setting) is not None
    ]
    changes = [c for h, op in applicable if rng.random() < rate and (c := _apply(graph, h, op, rng))]
    tries = list(applicable)
    rng.shuffle(tries)
    while not changes and tries:
        holder, operator = tries.pop()
        change = _apply(graph, holder, operator, rng)
        if change is not None:
            changes.append(change)
    revision = source.value(parent, SPORE.revision)
    graph.set((child, SPORE.revision, Literal(int(revision or 0) + 1, datatype=XSD.integer)))
    graph.set((child, PROV.wasRevisionOf, parent))
    note = "; ".join(change.note() for change in changes) or "no setting could change"
    prefix = "adopted " + str(parent) + " with " if adopt_into is not None else ""
    graph.set((child, SPORE.changeNote, Literal(f"{prefix}{note}" + (f" ({reason})" if reason else ""))))
    return Mutant(child, graph, tuple(changes))
