"""Incremental entailment: a round entails only what the triples it added can produce (semi-naive).

Every instance rule of :mod:`reasoning.rules` has exactly one data premise, so with the schema
unchanged the consequences of ``old ∪ delta`` are the consequences of ``old`` plus those of ``delta``
alone. :func:`entail_added` therefore runs the same rules (the same ``queries/entail-*.rq``, through
:func:`reasoning.rules.entail`) on a small in-memory working store holding the ontology, the schema
triples of the node's graphs and the delta, and merges the result into the inferred graph, instead
of rereading every graph of the node.

Deletions are not tracked: the caller passes only additions, and whenever the delta could change the
schema (a schema predicate, or a schema that types ``rdf:type`` itself) or the store is not an
embedded one, the full pass runs instead. A round that removes triples (a replaced snapshot, a
blueprint revision) must call :func:`reasoning.rules.entail`, which recomputes from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyoxigraph import NamedNode, Quad, Triple

from knowledge.store import EmbeddedStore, KnowledgeStore
from reasoning.rules import ONTOLOGY_GRAPH, Entailment, entail, load_ontology_graph

__all__ = ["entail_added"]

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RDFS = "http://www.w3.org/2000/01/rdf-schema#"
_TYPE = NamedNode(_RDF + "type")
SCHEMA_PREDICATES = frozenset(
    NamedNode(_RDFS + name) for name in ("subClassOf", "subPropertyOf", "domain", "range")
)
_DELTA = NamedNode("urn:spore:reasoning:delta")
_SCHEMA = NamedNode("urn:spore:reasoning:schema")
_INTO = NamedNode("urn:spore:reasoning:delta-consequences")


def _needs_full_pass(schema: Sequence[Quad], delta: Sequence[Triple]) -> bool:
    """Whether the delta may change the schema, or the schema lets consequences feed the rules."""
    if any(t.predicate in SCHEMA_PREDICATES for t in delta):
        return True
    return any(
        q.subject == _TYPE or q.object == _TYPE
        for q in schema
        if q.predicate != NamedNode(_RDFS + "subClassOf")
    )


def entail_added(
    store: KnowledgeStore,
    *,
    added: Iterable[Triple | Quad],
    graphs: Sequence[NamedNode],
    into: NamedNode,
    ontology: NamedNode = ONTOLOGY_GRAPH,
) -> Entailment:
    """Bring ``into`` up to date after ``added`` (already stored in one of ``graphs``) was asserted.

    ``into`` must hold the consequences of ``graphs`` before the addition (a previous :func:`entail`
    or :func:`entail_added`); afterwards it equals what :func:`entail` would compute. Falls back to
    :func:`entail` where the shortcut is not sound (see the module docstring).
    """
    sources = tuple(dict.fromkeys(graphs))
    delta = [Triple(t.subject, t.predicate, t.object) for t in added]
    if not isinstance(store, EmbeddedStore) or into in sources or into == ontology:
        return entail(store, graphs=sources, into=into, ontology=ontology)
    load_ontology_graph(store, ontology)
    native = store.native
    schema = [
        quad
        for graph in (ontology, *sources)
        for predicate in SCHEMA_PREDICATES
        for quad in native.quads_for_pattern(None, predicate, None, graph)
    ]
    if _needs_full_pass(schema, delta):
        return entail(store, graphs=sources, into=into, ontology=ontology)
    # The working store: the schema of every graph (so the hierarchies close as in the full pass)
    # and the delta, whose consequences alone are new.
    work = EmbeddedStore()
    work.extend(Quad(q.subject, q.predicate, q.object, _SCHEMA) for q in schema)
    work.extend(Quad(t.subject, t.predicate, t.object, _DELTA) for t in delta)
    entail(work, graphs=[_DELTA, _SCHEMA], into=_INTO, ontology=ontology)

    def asserted(quad: Quad) -> bool:
        return any(
            next(native.quads_for_pattern(quad.subject, quad.predicate, quad.object, graph), None) is not None
            for graph in (ontology, *sources)
        )

    fresh = [
        Quad(q.subject, q.predicate, q.object, into)
        for q in work.native.quads_for_pattern(None, None, None, _INTO)
        if not asserted(q)
    ]
    # What is now asserted is no longer a consequence.
    for t in delta:
        native.remove(Quad(t.subject, t.predicate, t.object, into))
    store.extend(fresh)
    return Entailment(graph=into, sources=sources, ontology=ontology, triples=store.count(into), passes=1)
