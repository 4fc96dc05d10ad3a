"""RDFS consequences of the SPORE ontology, cheap enough to run on every validation and every round.

owlrl computes the full OWL RL closure, which costs hundreds of milliseconds even for one blueprint
(it materialises every axiomatic triple). The shapes only depend on ``rdf:type`` facts, so this module
precomputes the ontology's class and property hierarchies once and derives the types that RDFS
rules rdfs2 (domain), rdfs3 (range), rdfs7 (sub-property) and rdfs9 (sub-class) give for instance
data, in one pass over the data (RDF 1.1 Semantics, section 9.2.1). ``tests/test_entailment.py``
checks the result against owlrl's RDFS closure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rdflib import RDF, RDFS, BNode, Graph, URIRef
from rdflib.term import Node

__all__ = ["OntologyIndex", "Triple"]

Triple = tuple[Node, Node, Node]


def _closure(direct: dict[URIRef, set[URIRef]]) -> dict[URIRef, frozenset[URIRef]]:
    """Reflexive-transitive closure of a relation given as adjacency sets (handles cycles)."""
    closed: dict[URIRef, frozenset[URIRef]] = {}
    for start in direct:
        seen = {start}
        stack = [start]
        while stack:
            for parent in direct.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        closed[start] = frozenset(seen)
    return closed


@dataclass(frozen=True)
class OntologyIndex:
    """The parts of an ontology that RDFS entailment of instance data needs, precomputed."""

    superclasses: dict[URIRef, frozenset[URIRef]]
    superproperties: dict[URIRef, frozenset[URIRef]]
    domains: dict[URIRef, frozenset[URIRef]]
    ranges: dict[URIRef, frozenset[URIRef]]
    schema_triples: tuple[Triple, ...]

    @classmethod
    def from_graph(cls, ontology: Graph) -> OntologyIndex:
        sub_class: dict[URIRef, set[URIRef]] = defaultdict(set)
        sub_property: dict[URIRef, set[URIRef]] = defaultdict(set)
        for child, parent in ontology.subject_objects(RDFS.subClassOf):
            if isinstance(child, URIRef) and isinstance(parent, URIRef):
                sub_class[child].add(parent)
                sub_class.setdefault(parent, set())
        for child, parent in ontology.subject_objects(RDFS.subPropertyOf):
            if isinstance(child, URIRef) and isinstance(parent, URIRef):
                sub_property[child].add(parent)
                sub_property.setdefault(parent, set())
        superclasses = _closure(sub_class)
        superproperties = _closure(sub_property)

        def typed_by(axiom: URIRef) -> dict[URIRef, frozenset[URIRef]]:
            direct: dict[URIRef, set[URIRef]] = defaultdict(set)
            for prop, cls_ in ontology.subject_objects(axiom):
                if isinstance(prop, URIRef) and isinstance(cls_, URIRef):
                    direct[prop].add(cls_)
            # A property inherits the domains and ranges of its super-properties (rdfs7 then rdfs2/3).
            result: dict[URIRef, frozenset[URIRef]] = {}
            for prop in set(direct) | set(superproperties):
                classes: set[URIRef] = set()
                for ancestor in superproperties.get(prop, frozenset({prop})):
                    for cls_ in direct.get(ancestor, ()):
                        classes |= superclasses.get(cls_, frozenset({cls_}))
                if classes:
                    result[prop] = frozenset(classes)
            return result

        # What SHACL needs from the ontology inside the data graph: the class hierarchy (sh:targetClass
        # and sh:class follow rdfs:subClassOf there) and the types of named individuals (sh:class
        # spore:Architecture must see that spore:LightGCN is one).
        schema = [(s, RDFS.subClassOf, o) for s, o in ontology.subject_objects(RDFS.subClassOf)]
        schema += [
            (s, RDF.type, o)
            for s, o in ontology.subject_objects(RDF.type)
            if isinstance(s, URIRef) and isinstance(o, URIRef) and o in superclasses
        ]
        return cls(
            superclasses=superclasses,
            superproperties=superproperties,
            domains=typed_by(RDFS.domain),
            ranges=typed_by(RDFS.range),
            schema_triples=tuple(schema),
        )

    def entailed(self, triples: Iterable[Triple], *, type_iris_by_range: bool = True) -> Iterator[Triple]:
        """The type and super-property triples RDFS entails from instance triples.

        Yields triples that may already be present; callers add them to a set or graph. Literals get
        no types (RDFS would need generalised RDF for that) and schema-level triples are not
        re-derived: the ontology is not data.

        With ``type_iris_by_range=False`` only blank nodes are typed by rdfs:range. Validation uses
        that: a blank node is described where it is mentioned, but an IRI in object position is a
        link (``spore:blueprint <…>``), and typing it would make the shapes demand its whole
        description in a document that only points to it.
        """
        for subject, predicate, obj in triples:
            if not isinstance(predicate, URIRef):
                continue
            if predicate == RDF.type:
                if isinstance(obj, URIRef):
                    for cls_ in self.superclasses.get(obj, ()):
                        yield subject, RDF.type, cls_
                continue
            for ancestor in self.superproperties.get(predicate, ()):
                if ancestor != predicate:
                    yield subject, ancestor, obj
            for cls_ in self.domains.get(predicate, ()):
                yield subject, RDF.type, cls_
            if isinstance(obj, BNode) or (type_iris_by_range and isinstance(obj, URIRef)):
                for cls_ in self.ranges.get(predicate, ()):
                    yield obj, RDF.type, cls_

    def closure(self, data: Graph, *, type_iris_by_range: bool = True) -> Graph:
        """A new graph: the data, the ontology's schema triples and everything entailed from them."""
        result = Graph()
        for triple in data:
            result.add(triple)
        for triple in self.schema_triples:
            result.add(triple)
        for triple in list(self.entailed(data, type_iris_by_range=type_iris_by_range)):
            result.add(triple)
        return result
