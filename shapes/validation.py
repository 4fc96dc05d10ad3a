"""Validate SPORE data against the shapes, with the ontology's entailments, into a typed report.

The pyshacl report is an RDF graph written for machines; people get :class:`Violation` lines that
name the resource, the property, what is wrong and the value found. Both are kept: the CLI prints
the lines by default and the SHACL report graph with ``--format turtle|json``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import pyshacl
from rdflib import XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.term import Node

from ontology import PREFIXES, load_ontology
from reasoning.entailment import OntologyIndex
from shapes import load_shapes

__all__ = ["Entailment", "ValidationReport", "Validator", "Violation", "default_validator"]

SH = Namespace("http://www.w3.org/ns/shacl#")
_BARE_DATATYPES = frozenset({XSD.integer, XSD.decimal, XSD.double, XSD.boolean})


class Entailment(StrEnum):
    """Which consequences of the ontology the data is validated with.

    ``rdfs`` (the default) derives types from rdfs:subClassOf, rdfs:subPropertyOf, rdfs:domain and
    rdfs:range in one pass (:mod:`reasoning.entailment`), typing only blank nodes by range, so that a
    link to a resource described elsewhere is not mistaken for an incomplete description of it;
    ``owlrl`` runs owlrl's full OWL RL closure (slow, and it types linked IRIs too, so use it on
    self-contained documents); ``none`` validates the data as written.
    """

    NONE = "none"
    RDFS = "rdfs"
    OWLRL = "owlrl"


@dataclass(frozen=True)
class Violation:
    focus: str
    path: str | None
    message: str
    value: str | None
    severity: str
    component: str
    focus_node: Node = field(compare=False, repr=False)

    def line(self) -> str:
        where = f"{self.focus} {self.path}" if self.path else self.focus
        found = f" (found: {self.value})" if self.value is not None else ""
        return f"{where}: {self.message}{found}"


@dataclass(frozen=True)
class ValidationReport:
    conforms: bool
    violations: tuple[Violation, ...]
    graph: Graph = field(repr=False)

    def lines(self) -> list[str]:
        return [violation.line() for violation in self.violations]


class _Names:
    """Short, readable names for nodes in messages: prefixed names, IRIs relative to the document."""

    def __init__(self, data: Graph, base_iri: str | None) -> None:
        self.data = data
        self.base = base_iri
        self.prefixes = sorted(PREFIXES.items(), key=lambda item: -len(item[1]))

    def name(self, node: Node, depth: int = 0) -> str:
        if isinstance(node, URIRef):
            iri = str(node)
            if self.base and iri.startswith(self.base) and iri != self.base:
                return f"<{iri[len(self.base) :]}>"
            for prefix, namespace in self.prefixes:
                local = iri[len(namespace) :]
                if iri.startswith(namespace) and local and all(c.isalnum() or c in "_-" for c in local):
                    return f"{prefix}:{local}"
            return f"<{iri}>"
        if isinstance(node, Literal):
            text = str(node)
            shown = text if len(text) <= 70 else text[:67] + "..."
            if node.datatype in _BARE_DATATYPES and node.value is not None:
                return shown  # numbers and booleans as a person wrote them in Turtle
            quoted = '"' + shown.replace('"', '\\"') + '"'
            if node.language:
                return f"{quoted}@{node.language}"
            if node.datatype is not None and node.datatype != XSD.string:
                return f"{quoted}^^{self.name(node.datatype)}"
            return quoted
        if isinstance(node, BNode) and depth < 4:
            # A blank node is shown by the way to reach it: "<#blueprint> spore:trains [ ]".
            for subject, predicate in self.data.subject_predicates(node):
                return f"{self.name(subject, depth + 1)} {self.name(predicate)} [ ]"
        return "[ ]"


class Validator:
    """Validates graphs against SPORE's shapes; build it once and reuse it (shapes are parsed once)."""

    def __init__(self, shapes: Graph | None = None, ontology: Graph | None = None) -> None:
        self.shapes = load_shapes() if shapes is None else shapes
        self.ontology = load_ontology() if ontology is None else ontology
        self.index = OntologyIndex.from_graph(self.ontology)
        self._allowed = self._allowed_properties()

    def _allowed_properties(self) -> dict[Node, list[Node]]:
        """Per closed shape, the properties it allows: used for "did you mean" on a typo."""
        allowed: dict[Node, list[Node]] = {}
        for shape in self.shapes.subjects(SH.closed, Literal(True)):
            paths = [self.shapes.value(p, SH.path) for p in self.shapes.objects(shape, SH.property)]
            ignored = self.shapes.value(shape, SH.ignoredProperties)
            if ignored is not None:
                paths += list(self.shapes.items(ignored))
            allowed[shape] = [p for p in paths if p is not None]
        return allowed

    def _prepare(self, data: Graph, entailment: Entailment) -> Graph:
        if entailment is Entailment.NONE:
            prepared = Graph()
            for triple in data:
                prepared.add(triple)
            for triple in self.index.schema_triples:
                prepared.add(triple)
            return prepared
        if entailment is Entailment.RDFS:
            return self.index.closure(data, type_iris_by_range=False)
        import owlrl  # imported here: owlrl is slow to import and only this option needs it

        prepared = Graph()
        for triple in data:
            prepared.add(triple)
        for triple in self.ontology:
            prepared.add(triple)
        owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(prepared)
        return prepared

    def validate(
        self, data: Graph, *, entailment: Entailment = Entailment.RDFS, base_iri: str | None = None
    ) -> ValidationReport:
        prepared = self._prepare(data, entailment)
        conforms, report_graph, _ = pyshacl.validate(
            prepared, shacl_graph=self.shapes, inference="none", inplace=True, advanced=True
        )
        assert isinstance(report_graph, Graph)
        violations = self._violations(report_graph, _Names(data, base_iri))
        return ValidationReport(bool(conforms), tuple(violations), report_graph)

    def validate_many(
        self, documents: Sequence[Graph], *, entailment: Entailment = Entailment.RDFS
    ) -> list[ValidationReport]:
        """Validate many documents in one pass and give each its own report.

        pyshacl's fixed cost per call (building the shapes, mixing in the ontology) dominates for a
        small blueprint, so the documents are validated as one union graph and each violation is
        handed back to the document that describes its focus node. Documents must not share
        subjects (they do not when each blueprint has its own IRI or base).
        """
        union = Graph()
        owner: dict[Node, int] = {}
        for position, document in enumerate(documents):
            for triple in document:
                union.add(triple)
            for subject in document.subjects():
                owner.setdefault(subject, position)
        combined = self.validate(union, entailment=entailment)
        per_document: list[list[Violation]] = [[] for _ in documents]
        for violation in combined.violations:
            per_document[owner.get(violation.focus_node, 0)].append(violation)
        return [ValidationReport(not found, tuple(found), combined.graph) for found in per_document]

    def _violations(self, report: Graph, names: _Names) -> list[Violation]:
        results = list(report.objects(None, SH.result))
        focus_of_results = {report.value(r, SH.focusNode) for r in results}
        violations: list[Violation] = []
        for result in results:
            focus = report.value(result, SH.focusNode)
            component = report.value(result, SH.sourceConstraintComponent)
            value = report.value(result, SH.value)
            path = report.value(result, SH.resultPath)
            # A nested node's own findings are more precise than "the value does not conform": keep those.
            if component == SH.NodeConstraintComponent and value in focus_of_results:
                continue
            message = str(report.value(result, SH.resultMessage) or "does not conform")
            if component == SH.ClosedConstraintComponent and path is not None:
                message = self._closed_message(report.value(result, SH.sourceShape), path, names)
            severity = report.value(result, SH.resultSeverity)
            violations.append(
                Violation(
                    focus=names.name(focus) if focus is not None else "?",
                    path=names.name(path) if isinstance(path, URIRef) else None,
                    message=message,
                    value=names.name(value) if value is not None else None,
                    severity=str(severity).removeprefix(str(SH)) if severity else "Violation",
                    component=str(component).removeprefix(str(SH)) if component else "",
                    focus_node=focus if focus is not None else BNode(),
                )
            )
        # One constraint can fail several ways (datatype and range) under one message: say it once.
        unique = {(v.focus, v.path, v.message, v.value): v for v in violations}
        return sorted(unique.values(), key=lambda v: (v.focus, v.path or "", v.message))

    def _closed_message(self, shape: Node | None, path: Node, names: _Names) -> str:
        allowed = self._allowed.get(shape, []) if shape is not None else []
        candidates = {names.name(p): p for p in allowed}
        close = difflib.get_close_matches(names.name(path), list(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown property, not allowed here{hint}"


@cache
def default_validator() -> Validator:
    """The process-wide validator over the packaged shapes and ontology (built on first use)."""
    return Validator()
