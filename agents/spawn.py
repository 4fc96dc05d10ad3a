"""Self-replication: a node writes a mutated child blueprint, within caps, and the child starts.

:func:`plan_spawn` is the whole decision, pure over an rdflib graph: the child blueprint is the
parent's, mutated by the ontology's mutation operators (:func:`reasoning.mutation.mutate`), renamed,
linked to its parent by ``prov:wasRevisionOf`` (a sub-property of ``prov:wasDerivedFrom`` in PROV-O;
``queries/lineage.rq`` follows it; a child differs from a revision by its own ``spore:nodeName``), and
checked by the shapes; a spawn is refused, with the reason, when the
parent already has ``spore:maxChildren`` children (absent: 0, a blueprint must opt in), when its host
already serves its cap of nodes (a host setting, :data:`DEFAULT_MAX_NODES_PER_HOST`), or when the
mutant fails the shapes. Every outcome, refusals included, becomes a ``spore:SpawnDecision`` in the
parent's decisions graph (:func:`spawn_decision`).

Automatic spawning under policy is :mod:`agents.autospawn` (the rule; the simulator's spawner) and
:mod:`agents.host_spawning` (nodes served by a running host).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pyoxigraph import NamedNode
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.exceptions import ParserError
from rdflib.namespace import PROV
from rdflib.term import Node

import queries
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import KnowledgeStore, to_rdflib
from ontology import SPORE
from reasoning.operators import Change, Operator, load_operators, mutate
from reasoning.records import Decision, Option
from shapes.validation import Validator, default_validator

__all__ = [
    "DEFAULT_MAX_NODES_PER_HOST",
    "SpawnError",
    "SpawnOutcome",
    "child_name",
    "children_in_store",
    "host_full",
    "max_children",
    "names_in_store",
    "parent_blueprint",
    "shape_keeping_operators",
    "plan_spawn",
    "policy_value",
    "spawn_decision",
    "spawn_from_file",
    "spawn_in_store",
]

DEFAULT_MAX_NODES_PER_HOST = 32
"""A host's cap on the nodes it serves when its operator sets none (``--max-nodes-per-host``)."""
_NAME_LIMIT = 30  # shapes:BlueprintShape, spore:nodeName


@dataclass(frozen=True)
class SpawnOutcome:
    """What a spawn did: the child blueprint (graph and IRI) when it happened, else why not."""

    parent: URIRef
    spawned: bool
    reason: str
    child: URIRef | None = None
    name: str | None = None
    graph: Graph | None = None
    changes: tuple[Change, ...] = ()


def policy_value(graph: Graph, blueprint: URIRef, prop: URIRef) -> Decimal | None:
    """A number the blueprint's ``spore:policy`` states for ``prop`` (None when it states none)."""
    for policy in graph.objects(blueprint, SPORE.policy):
        value = graph.value(policy, prop)
        if isinstance(value, Literal):
            try:
                return Decimal(str(value))
            except ArithmeticError:
                return None
    return None


def max_children(graph: Graph, blueprint: URIRef) -> int:
    """``spore:maxChildren`` of the blueprint's policy; 0 without one (spawning is opted into)."""
    value = policy_value(graph, blueprint, SPORE.maxChildren)
    return max(0, int(value)) if value is not None else 0


def host_full(host_nodes: int, cap: int) -> str | None:
    """Why a host serving ``host_nodes`` nodes takes no more (its cap ``cap``), or None."""
    return f"the host serves {host_nodes} nodes, its cap is {cap}" if host_nodes >= cap else None


def shape_keeping_operators() -> tuple[Operator, ...]:
    """The mutations a child that trains in its parent's group may undergo: all but the embedding
    size, which changes the shapes of the shared weights a group merges (a child with other shapes
    could not join its parent's group, nor start from its parent's model)."""
    return tuple(op for op in load_operators() if op.setting != SPORE.embeddingDimension)


def child_name(parent: str, taken: Sequence[str]) -> str:
    """The first free ``{parent}_c{n}`` (cut so that it stays a valid node name)."""
    number = 1
    while True:
        suffix = f"_c{number}"
        name = parent[: _NAME_LIMIT - len(suffix)] + suffix
        if name not in taken:
            return name
        number += 1


def plan_spawn(
    source: Graph,
    parent: URIRef,
    *,
    child: URIRef,
    name: str,
    children: int,
    host_nodes: int,
    max_nodes_per_host: int = DEFAULT_MAX_NODES_PER_HOST,
    rng: random.Random,
    validator: Validator | None = None,
    operators: Iterable[Operator] | None = None,
) -> SpawnOutcome:
    """The child blueprint ``child`` of ``parent`` (described in ``source``), or why there is none.

    ``children`` is how many children the parent already has; ``host_nodes`` how many nodes the
    host that would run the child already serves; ``operators`` the mutations allowed (default all).
    """
    cap = max_children(source, parent)
    if children >= cap:
        noun = "child" if children == 1 else "children"
        why = f"the parent has {children} {noun} and its policy allows {cap} (spore:maxChildren)"
        return SpawnOutcome(parent, False, why)
    full = host_full(host_nodes, max_nodes_per_host)
    if full is not None:
        return SpawnOutcome(parent, False, full)
    rate = policy_value(source, parent, SPORE.mutationRate)
    parent_name = str(source.value(parent, SPORE.nodeName) or parent)
    mutant = mutate(
        source,
        parent,
        child,
        rng=rng,
        rate=float(rate) if rate else 0.2,
        operators=operators,
        reason=f"spawned by {parent_name}",
    )
    graph = mutant.graph
    graph.set((child, SPORE.nodeName, Literal(name)))
    report = (validator or default_validator()).validate(graph)
    if not report.conforms:
        first = report.lines()[0] if report.lines() else "it does not conform"
        return SpawnOutcome(
            parent, False, f"the mutated child fails the shapes: {first}", changes=mutant.changes
        )
    changed = "; ".join(change.note() for change in mutant.changes) or "no setting changed"
    return SpawnOutcome(parent, True, f"spawned {name}: {changed}", child, name, graph, mutant.changes)


def spawn_decision(
    outcome: SpawnOutcome,
    *,
    node: str,
    at: datetime.datetime,
    round_number: int = 0,
    evidence: Sequence[str] = (),
) -> Decision:
    """The ``spore:SpawnDecision`` recording ``outcome`` for the parent ``node``."""
    stamp = at.strftime("%Y%m%dT%H%M%S%fZ")
    parent = Option(str(outcome.parent), label="no child")
    options: tuple[Option, ...] = (parent,)
    chosen = None
    if outcome.child is not None:
        chosen = Option(str(outcome.child), label="a mutated child")
        options = (chosen, parent)
    return Decision(
        iri=f"{node.rstrip('/')}/decisions/spawn-{stamp}",
        kind=str(SPORE.SpawnDecision),
        node=node,
        round=round_number,
        at=at,
        options=options,
        chosen=chosen,
        evidence=(str(outcome.parent), *evidence),
        explanation=outcome.reason if outcome.spawned else f"spawn refused: {outcome.reason}",
    )


# I/O at the edges: blueprint files and a node's graphs --------------------------------------------------


class SpawnError(ValueError):
    """The parent cannot be read (no such file or node, not one blueprint); one line."""


def _parse(path: Path) -> Graph:
    graph = Graph()
    try:
        graph.parse(path, format="turtle", publicID=path.resolve().as_uri())
    except (OSError, ParserError, SyntaxError, ValueError) as error:
        raise SpawnError(f"{path}: not readable Turtle: {error}") from error
    return graph


def _only_blueprint(graph: Graph, where: str) -> URIRef:
    found = sorted(s for s in graph.subjects(SPORE.nodeName, None) if isinstance(s, URIRef))
    if len(found) != 1:
        raise SpawnError(f"{where}: expected one blueprint with spore:nodeName, found {len(found)}")
    return found[0]


def spawn_from_file(
    path: Path,
    *,
    out_dir: Path | None = None,
    name: str | None = None,
    seed: int = 0,
    max_nodes_per_host: int = DEFAULT_MAX_NODES_PER_HOST,
    validator: Validator | None = None,
) -> tuple[SpawnOutcome, Path | None]:
    """Spawn from a blueprint file into ``out_dir`` (default: the parent's folder, the folder of
    blueprints one host serves): children are the blueprints there derived from the parent, the
    host's nodes are all blueprints there. Returns the outcome and the child's file when written."""
    source = _parse(path)
    parent = _only_blueprint(source, str(path))
    folder = out_dir or path.parent
    siblings = {p: _parse(p) for p in sorted(folder.glob("*.ttl")) if p.resolve() != path.resolve()}
    blueprints = {p: g for p, g in siblings.items() if any(g.subjects(SPORE.nodeName, None))}
    parent_name = source.value(parent, SPORE.nodeName)
    children = sum(
        1
        for g in blueprints.values()
        for b in g.subjects(PROV.wasRevisionOf, parent)
        if g.value(b, SPORE.nodeName) != parent_name
    )
    taken = [str(n) for g in blueprints.values() for n in g.objects(None, SPORE.nodeName)]
    child_name_ = name or child_name(str(parent_name), taken)
    target = folder / f"{child_name_}.ttl"
    child = URIRef(target.resolve().as_uri() + "#blueprint")
    outcome = plan_spawn(
        source,
        parent,
        child=child,
        name=child_name_,
        children=children,
        host_nodes=len(blueprints) + 1,
        max_nodes_per_host=max_nodes_per_host,
        rng=random.Random(f"{seed}:{child_name_}"),
        validator=validator,
    )
    if not outcome.spawned or outcome.graph is None:
        return outcome, None
    if target.exists():
        raise SpawnError(f"{target} exists; choose another --name")
    folder.mkdir(parents=True, exist_ok=True)
    portable = _relative(outcome.graph, target)
    header = " ".join(f"# {child_name_}: spawned from {path.name}; {outcome.reason}".split()) + "\n"
    target.write_text(header + portable.serialize(format="turtle"))
    return outcome, target


def _relative(graph: Graph, target: Path) -> Graph:
    """``graph`` with IRIs of files in ``target``'s folder written relative to it, as the shipped
    blueprints are (``<#blueprint>``), so that a folder of blueprints can be moved or copied."""
    folder = target.resolve().parent.as_uri() + "/"
    own = target.resolve().as_uri()

    def shorten(term: Node) -> Node:
        if isinstance(term, URIRef) and str(term).startswith(folder):
            text = str(term)[len(folder) :]
            return URIRef(text[len(target.name) :] if str(term).startswith(own + "#") else text)
        return term

    portable = Graph()
    for prefix, namespace in (("spore", SPORE), ("prov", PROV)):
        portable.bind(prefix, namespace)
    for s, p, o in graph:
        portable.add((shorten(s), p, shorten(o)))
    return portable


def _rows(store: KnowledgeStore, name: str, bindings: dict[str, NamedNode]) -> list[dict[str, str]]:
    result = store.query(queries.load(name), bindings=bindings)
    names = [v.value for v in result.variables]  # type: ignore[union-attr]
    return [{n: row[n].value for n in names if row[n] is not None} for row in result]  # type: ignore[union-attr]


def parent_blueprint(store: KnowledgeStore, parent_node: str) -> tuple[Graph, URIRef]:
    """The blueprint graph of the node ``parent_node`` and the blueprint it follows now."""
    from reasoning.mutation import current_blueprint

    blueprint = current_blueprint(store, parent_node)
    if blueprint is None:
        raise SpawnError(f"{parent_node}: no node with a current blueprint (spore:blueprint) in the store")
    return to_rdflib(store, graph_iri(NamedNode(parent_node), GraphKind.BLUEPRINT)), blueprint


def children_in_store(store: KnowledgeStore, parent_node: str) -> int:
    """How many children (``spore:spawnedBy``) of ``parent_node`` the store knows."""
    return len({row["child"] for row in _rows(store, "spawn-children", {"parent": NamedNode(parent_node)})})


def names_in_store(store: KnowledgeStore) -> list[str]:
    """The node names of every spawned child in the store (a new child's name must be free)."""
    return [row["name"] for row in _rows(store, "spawn-children", {}) if "name" in row]


def spawn_in_store(
    store: KnowledgeStore,
    parent_node: str,
    *,
    name: str | None = None,
    host: str | None = None,
    seed: int = 0,
    now: datetime.datetime,
    max_nodes_per_host: int = DEFAULT_MAX_NODES_PER_HOST,
    validator: Validator | None = None,
) -> SpawnOutcome:
    """Spawn a child of the node ``parent_node`` whose graphs are in ``store``: its blueprint goes to
    the child's blueprint graph with the child's description (``spore:spawnedBy``, ``spore:hostedBy``),
    and the decision, refusals included, to the parent's decisions graph."""
    from reasoning.mutation import write_blueprint
    from reasoning.records import record

    source, blueprint = parent_blueprint(store, parent_node)
    host_iri = host or str(source.value(URIRef(parent_node), SPORE.hostedBy) or parent_node.rsplit("/", 1)[0])
    children = children_in_store(store, parent_node)
    host_nodes = len(_rows(store, "spawn-host-nodes", {"host": NamedNode(host_iri)}))
    chosen = name or child_name(str(source.value(blueprint, SPORE.nodeName) or "node"), names_in_store(store))
    child_node = (
        f"{host_iri.rstrip('/')}/nodes/{chosen}" if host else f"{parent_node.rsplit('/', 1)[0]}/{chosen}"
    )
    outcome = plan_spawn(
        source,
        blueprint,
        child=URIRef(f"{child_node}/blueprint"),
        name=chosen,
        children=children,
        host_nodes=max(host_nodes, 1),
        max_nodes_per_host=max_nodes_per_host,
        rng=random.Random(f"{seed}:{chosen}"),
        validator=validator,
    )
    if outcome.spawned and outcome.graph is not None and outcome.child is not None:
        graph = outcome.graph
        node = URIRef(child_node)
        graph.add((node, RDF.type, SPORE.FungusNode))
        graph.add((node, SPORE.spawnedBy, URIRef(parent_node)))
        graph.add((node, SPORE.hostedBy, URIRef(host_iri)))
        write_blueprint(store, child_node, graph, outcome.child)
    record(store, spawn_decision(outcome, node=parent_node, at=now))
    return outcome
