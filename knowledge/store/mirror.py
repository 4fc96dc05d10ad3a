"""Graphs an on-disk store also keeps in memory: the working set a node's reasoner reads every round.

Reading pyoxigraph's RocksDB costs about 3 µs a quad (each term is looked up in the store's term
dictionary), so a reasoning pass over one node's history took three times longer on disk than in
memory (docs/benchmarks.md, "Reasoning pass"). :meth:`EmbeddedStore.keep_in_memory` copies named
graphs once into an in-memory pyoxigraph store; from then on every write goes to both copies and a
query whose whole dataset is kept is answered from memory. The disk stays the record: a restarted
host copies the graphs again.

The two copies stay equal:

* quads added or removed through the store (``extend``, ``load``, ``clear``, ``discard``) are the
  same Python quads on both sides, so blank nodes keep their identity;
* a SPARQL update is run on both only when its outcome cannot differ: each ``GRAPH`` it names is
  kept (an IRI, or a variable bound to one), it mints no blank node, reads no clock or random value,
  has no ``USING``/``WITH``/graph-management operation, and the disk's default graph (which the
  copy does not hold) is empty. Any other update touching kept graphs makes the store copy the
  graphs it may have touched again from disk;
* a lock orders each pair of writes, so two writers cannot apply theirs in different orders.

Writes through :attr:`EmbeddedStore.native` bypass the copy; nothing writes kept graphs that way.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pyoxigraph import DefaultGraph, NamedNode, Quad, Store

from knowledge.store.bindings import Term

if TYPE_CHECKING:
    from knowledge.store.embedded import EmbeddedStore

__all__ = ["Mirror", "replayable"]

_GRAPH = re.compile(r"\bGRAPH\s+([^\s{]+)", re.IGNORECASE)
_UNSAFE = re.compile(
    r"_:|\[|\b(BNODE|NOW|RAND|UUID|STRUUID|USING|WITH|LOAD|ADD|COPY|MOVE|CLEAR|DROP|CREATE|SERVICE)\b",
    re.IGNORECASE,
)
_IRI = re.compile(r"<([^>\s]*)>")


def _graphs_named(update: str, bindings: Mapping[str, Term] | None) -> list[object | None]:
    """What follows each GRAPH keyword: the graph, or None where the text alone does not say
    (a prefixed name, an unbound variable)."""
    found: list[object | None] = []
    for target in _GRAPH.findall(update):
        if target.startswith("<") and target.endswith(">"):
            found.append(NamedNode(target[1:-1]))
        elif target[0] in "?$":
            found.append((bindings or {}).get(target[1:]))
        else:
            found.append(None)
    return found


def replayable(update: str, bindings: Mapping[str, Term] | None, kept: set[NamedNode]) -> bool:
    """Whether running ``update`` on the in-memory copy gives what it gave on disk (module docstring).

    Conservative: a keyword inside a string literal also makes an update unsafe, which costs a copy
    from disk, never a wrong copy.
    """
    if _UNSAFE.search(update):
        return False
    named = _graphs_named(update, bindings)
    # No GRAPH at all: the update reads and writes the default graph, which only the disk holds.
    return bool(named) and all(graph in kept for graph in named)


def touched(update: str, bindings: Mapping[str, Term] | None, kept: set[NamedNode]) -> set[NamedNode]:
    """The kept graphs ``update`` may have written: those its text or bindings name, or every kept
    graph when it names one it does not spell out (``GRAPH ?g`` unbound, a prefixed name, ``ALL``)."""
    if None in _graphs_named(update, bindings) or re.search(r"\b(ALL|NAMED)\b", update, re.IGNORECASE):
        return set(kept)
    if re.search(r"^\s*PREFIX|\sPREFIX\s", update, re.IGNORECASE):
        return set(kept)  # a prefixed name may name a graph after ADD, MOVE, WITH or USING
    named = {NamedNode(iri) for iri in _IRI.findall(update)}
    named |= {term for term in (bindings or {}).values() if isinstance(term, NamedNode)}
    return named & kept


class Mirror:
    """The in-memory copy of some named graphs of an on-disk pyoxigraph store."""

    def __init__(self, disk: Store, memory: EmbeddedStore) -> None:
        self.disk = disk
        self.memory = memory
        """An in-memory store; besides the kept graphs it may hold a reasoner's working graphs."""
        self.graphs: set[NamedNode] = set()
        self.lock = threading.RLock()

    def keep(self, graphs: Iterable[NamedNode]) -> None:
        with self.lock:
            for graph in graphs:
                if graph not in self.graphs:
                    self.memory.native.extend(self.disk.quads_for_pattern(None, None, None, graph))
                    self.graphs.add(graph)

    def holds(self, graphs: Iterable[object]) -> bool:
        return all(graph in self.graphs for graph in graphs)

    def added(self, quads: Iterable[Quad]) -> None:
        self.memory.native.extend(quad for quad in quads if quad.graph_name in self.graphs)

    def removed(self, quads: Iterable[Quad]) -> None:
        for quad in quads:
            if quad.graph_name in self.graphs:
                self.memory.native.remove(quad)

    def cleared(self, graph: object | None) -> None:
        if graph is None:
            self.memory.native.clear()
        elif graph in self.graphs:
            self.memory.native.remove_graph(graph)  # type: ignore[arg-type]

    def updated(self, update: str, bound: str, bindings: Mapping[str, Term] | None) -> None:
        """Bring the copy up to date after ``bound`` (``update`` with its bindings) ran on disk."""
        empty_default = next(self.disk.quads_for_pattern(None, None, None, DefaultGraph()), None) is None
        if empty_default and replayable(update, bindings, self.graphs):
            self.memory.native.update(bound)
            return
        memory = self.memory.native
        for graph in touched(update, bindings, self.graphs):
            # By difference rather than dropped and copied: a reader never sees the graph empty.
            fresh = set(self.disk.quads_for_pattern(None, None, None, graph))
            held = set(memory.quads_for_pattern(None, None, None, graph))
            for quad in held - fresh:
                memory.remove(quad)
            memory.extend(fresh - held)
