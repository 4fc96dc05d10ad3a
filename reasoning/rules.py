"""Entailment as SPARQL UPDATE rules, run to a fixpoint inside the store, cheap enough for every round.

owlrl materialises the whole OWL RL closure in Python (every axiomatic triple included) and takes
seconds on one node's graph; :mod:`reasoning.entailment` is fast but only types instance data for
validation. Here the rules are named SPARQL updates (``queries/entail-*.rq``, each naming the OWL 2
RL and RDFS rule it implements), so that they run where the data is, on the embedded pyoxigraph
store or on any SPARQL 1.1 endpoint behind :class:`~knowledge.store.KnowledgeStore`, and anyone can
read and rerun them.

The rule set is what the SPORE ontology uses: rdfs:subClassOf, rdfs:subPropertyOf, rdfs:domain and
rdfs:range (it declares no inverse, transitive, symmetric or functional property, no equivalences and
no restrictions). Consequences of those four axioms are exactly what RDFS rules rdfs2, 3, 5, 7, 9 and
11 give, or their OWL 2 RL names prp-dom, prp-rng, scm-spo, prp-spo1, cax-sco and scm-sco;
``tests/test_rules.py`` checks them against owlrl.

How a run goes:

1. The ontology lives in a graph of the store (:func:`load_ontology_graph`). The schema triples of
   the ontology and of the asserted graphs (the catalogue declares its own relations as
   sub-properties of ``spore:knowledgeRelation``) are copied into a working graph and closed under
   scm-sco and scm-spo with property paths, so the instance rules reach every ancestor in one step;
   scm-dom2 and scm-rng2 then give each property the domains and ranges of its super-properties
   (in the working graph only).
2. The instance rules (one update request, in the order of :data:`INSTANCE_RULES`) take each asserted
   graph and the ontology as premises once, and cax-sco then types with super-classes what they
   typed. That is the whole closure, because every instance rule has exactly one data premise (what
   a graph entails alone it entails in that pass) and the flattened schema folds the chains
   prp-spo1 then prp-dom/prp-rng, and either then cax-sco, into one step. Only a schema that says
   something about ``rdf:type`` as a property (``entail-typing-schema``) lets a derived type be the
   premise of another rule; then the rules run over the consequences, pass after pass, until a pass
   adds nothing. A rule with two data premises (such as prp-trp) would need the premises joined
   with the consequences.
3. Whatever an asserted graph or the ontology states already is removed from the consequences, and
   the working graphs are dropped.

The type rules insert each distinct pair once (a sub-select): a subject with many properties of one
domain inserted its type once per triple, which cost more than all the matching. The graph names are
written into the rule text (:func:`_prepared`, once per graph) rather than bound, since a sub-select
does not see bindings of the outer group (figures: docs/benchmarks.md, "Reasoning pass").

Schema triples that only the instance rules could entail (a data property declared a sub-property
of rdfs:subClassOf) are not fed back into the schema; no SPORE data does that.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from pyoxigraph import NamedNode, Quad, RdfFormat, parse

import queries
from knowledge.store import EmbeddedStore, KnowledgeStore
from ontology import ONTOLOGY_IRI, ONTOLOGY_PATH

__all__ = [
    "INSTANCE_RULES",
    "ONTOLOGY_GRAPH",
    "SCHEMA_RULES",
    "Entailment",
    "entail",
    "load_ontology_graph",
]

ONTOLOGY_GRAPH = NamedNode(ONTOLOGY_IRI)
"""Where :func:`entail` expects the ontology unless told otherwise: the graph named by its own IRI."""

SCHEMA_RULES = ("scm-sco", "scm-spo")
"""Rules over the schema alone, each the query ``entail-<rule>``."""

INSTANCE_RULES = ("prp-spo1", "prp-dom", "prp-rng", "cax-sco")
"""Rules with one data premise, run to a fixpoint, each the query ``entail-<rule>``."""


@dataclass(frozen=True)
class Entailment:
    """What one :func:`entail` run did: where the consequences are, from what, and how many."""

    graph: NamedNode
    """The graph holding the consequences, and nothing but them."""
    sources: tuple[NamedNode, ...]
    """The asserted graphs the consequences follow from (with the ontology)."""
    ontology: NamedNode
    triples: int
    """Entailed triples: none of them is asserted in a source or in the ontology."""
    passes: int
    """Passes of the instance rules until one added nothing (that last one included)."""


_PREFIX = re.compile(r"^PREFIX\s+([\w-]*):\s*<([^>]*)>\s*$", re.IGNORECASE | re.MULTILINE)


@cache
def _joined(names: tuple[str, ...]) -> str:
    """One update request running the named rules in order, so each pass costs one round trip.

    The PREFIX lines move to the top: SPARQL 1.1 allows a prologue after every ``;``, but pyoxigraph
    0.5 refuses one there.
    """
    prefixes: dict[str, str] = {}
    bodies = []
    for name in names:
        text = queries.load(f"entail-{name}")
        for prefix, iri in _PREFIX.findall(text):
            if prefixes.setdefault(prefix, iri) != iri:
                raise ValueError(
                    f"entail-{name} binds {prefix}: to <{iri}>, another rule to <{prefixes[prefix]}>"
                )
        bodies.append(_PREFIX.sub("", text).strip())
    declarations = "".join(f"PREFIX {prefix}: <{iri}>\n" for prefix, iri in prefixes.items())
    return declarations + " ;\n".join(bodies)


_GRAPH_VARIABLE = re.compile(r"\?(schema|source|inferred)\b")


@lru_cache(maxsize=256)
def _prepared(text: str, schema: NamedNode, source: NamedNode, inferred: NamedNode) -> str:
    """``text`` with the graph variables written in as IRIs, prepared once per graph.

    Not bindings: the type rules select distinct pairs in a sub-select, which (as SPARQL scopes it)
    does not see a binding of the outer group, and a graph name written in lets the engine go
    straight to the graph. Only ``?schema``, ``?source`` and ``?inferred`` are graph variables in
    the entailment queries; ``str`` of a NamedNode is its escaped N-Triples form.
    """
    graphs = {"schema": str(schema), "source": str(source), "inferred": str(inferred)}
    return _GRAPH_VARIABLE.sub(lambda match: graphs[match.group(1)], text)


def _apply(
    store: KnowledgeStore, text: str, *, schema: NamedNode, source: NamedNode, inferred: NamedNode
) -> None:
    store.update(_prepared(text, schema, source, inferred))


@cache
def _ontology_size() -> int:
    with ONTOLOGY_PATH.open("rb") as turtle:
        return sum(1 for _ in parse(turtle, format=RdfFormat.TURTLE))


def load_ontology_graph(store: KnowledgeStore, graph: NamedNode = ONTOLOGY_GRAPH) -> NamedNode:
    """Make ``graph`` hold the shipped ontology, loading it only when it is missing or differs in size.

    A size check rather than a comparison of contents: it is one count, and the ontology only
    changes with a new release of the package, which adds or removes triples.
    """
    if store.count(graph) != _ontology_size():
        store.clear(graph)
        store.load(ONTOLOGY_PATH.read_bytes(), format=RdfFormat.TURTLE, graph=graph)
    return graph


def _working_graph(into: NamedNode, name: str) -> NamedNode:
    # Named after the target rather than random, so a run that died is cleaned up by the next one.
    return NamedNode(f"{into.value}/reasoning/{name}")


def entail(
    store: KnowledgeStore,
    *,
    graphs: Sequence[NamedNode],
    into: NamedNode,
    ontology: NamedNode = ONTOLOGY_GRAPH,
) -> Entailment:
    """Replace ``into`` with the RDFS consequences of ``graphs`` and the ontology in ``ontology``.

    The ontology graph is loaded when it is missing (:func:`load_ontology_graph`); ``graphs`` and the
    ontology are only read. ``into`` must be none of them. Not atomic: a reader of ``into`` during
    the run may see part of the consequences.

    An embedded store on disk runs the rules on an in-memory copy of the premises and then writes
    only the difference to ``into``: every consequence is a RocksDB write, and rewriting thousands of
    them each round costs ten times the reasoning, while few change between rounds. A remote store
    runs them in place: a consequence about a stored blank node can only be written by an update
    that matches the node, not sent back as data.
    """
    sources = tuple(dict.fromkeys(graphs))
    if not all(isinstance(graph, NamedNode) for graph in (*sources, into, ontology)):
        raise ValueError(
            "entailment reads and writes named graphs only (SPARQL cannot bind the default graph)"
        )
    if into in sources or into == ontology:
        raise ValueError(f"the inferred graph {into} must not be one of the graphs it is derived from")
    if _working_graph(into, "schema") in (*sources, ontology):
        raise ValueError(f"the graphs under {into.value}/reasoning/ are working graphs of the reasoner")
    load_ontology_graph(store, ontology)
    if isinstance(store, EmbeddedStore) and store.path is not None:
        return _entail_on_copy(store, sources, into, ontology)
    return _entail_in_place(store, sources, into, ontology)


def _entail_on_copy(
    store: EmbeddedStore, sources: tuple[NamedNode, ...], into: NamedNode, ontology: NamedNode
) -> Entailment:
    kept = store.kept((ontology, *sources, into))
    if kept is not None:
        return _entail_kept(store, kept, sources, into, ontology)
    disk = store.native
    copy = EmbeddedStore()
    for graph in (ontology, *sources):
        copy.extend(disk.quads_for_pattern(None, None, None, graph))
    result = _entail_in_place(copy, sources, into, ontology)
    fresh = set(copy.native.quads_for_pattern(None, None, None, into))
    stale = set(disk.quads_for_pattern(None, None, None, into))
    store.discard(stale - fresh)
    store.extend(fresh - stale)
    return result


def _entail_kept(
    store: EmbeddedStore,
    kept: EmbeddedStore,
    sources: tuple[NamedNode, ...],
    into: NamedNode,
    ontology: NamedNode,
) -> Entailment:
    """The rules run on the in-memory copy the store keeps of the premises (knowledge/store/mirror.py),
    into a scratch graph there; only the difference is written, to disk and copy alike."""
    scratch = _working_graph(into, "consequences")
    result = _entail_in_place(kept, sources, scratch, ontology)
    # The difference in the engine: few quads change from one round to the next, so only those
    # become Python objects.
    only = (
        "SELECT ?s ?p ?o WHERE {{ GRAPH {} {{ ?s ?p ?o }} FILTER NOT EXISTS {{ GRAPH {} {{ ?s ?p ?o }} }} }}"
    )
    memory = kept.native
    gone = [Quad(r["s"], r["p"], r["o"], into) for r in memory.query(only.format(into, scratch))]  # type: ignore[union-attr,index,arg-type]
    new = [Quad(r["s"], r["p"], r["o"], into) for r in memory.query(only.format(scratch, into))]  # type: ignore[union-attr,index,arg-type]
    kept.clear(scratch)
    store.discard(gone)
    store.extend(new)
    return dataclasses.replace(result, graph=into)


def _entail_in_place(
    store: KnowledgeStore, sources: tuple[NamedNode, ...], into: NamedNode, ontology: NamedNode
) -> Entailment:
    schema = _working_graph(into, "schema")
    premises = (ontology, *sources)
    store.clear(into)
    store.clear(schema)
    try:
        for source in premises:
            _apply(store, queries.load("entail-schema"), schema=schema, source=source, inferred=into)
        _apply(store, _joined(SCHEMA_RULES), schema=schema, source=schema, inferred=into)
        _apply(store, queries.load("entail-scm-dom-rng"), schema=schema, source=schema, inferred=into)
        rules = _joined(INSTANCE_RULES)
        for source in premises:
            _apply(store, rules, schema=schema, source=source, inferred=into)
        # With domains and ranges inherited along the closed property hierarchy, one pass of the
        # instance rules over the premises and one of cax-sco over what they typed derive all,
        # unless rdf:type itself is in the schema; then consequences feed the rules again until a
        # pass adds nothing.
        _apply(store, _joined(("cax-sco",)), schema=schema, source=into, inferred=into)
        passes = 1
        if store.query(_prepared(queries.load("entail-typing-schema"), schema, schema, into)):
            size = store.count(into)
            while True:
                passes += 1
                _apply(store, rules, schema=schema, source=into, inferred=into)
                size, before = store.count(into), size
                if size == before:
                    break
        for source in premises:
            _apply(store, queries.load("entail-asserted"), schema=schema, source=source, inferred=into)
    finally:
        store.clear(schema)
    return Entailment(
        graph=into, sources=sources, ontology=ontology, triples=store.count(into), passes=passes
    )
