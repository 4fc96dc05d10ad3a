"""The default store: pyoxigraph in the process, on disk in the node's data directory or in memory.

Results pass straight through from pyoxigraph; nothing here converts terms, so hot paths (reasoning,
the inbox) pay only for the query itself. Code that needs pyoxigraph features beyond the interface
(pattern matching, custom functions) reaches the engine through :attr:`EmbeddedStore.native`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Self

from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    NamedNode,
    Quad,
    QueryBoolean,
    QuerySolutions,
    RdfFormat,
    Store,
    parse,
    serialize,
)

from knowledge.store.base import (
    GraphName,
    QueryError,
    QueryResult,
    StoreError,
    StoreUnavailable,
    check_dump_target,
)
from knowledge.store.bindings import BindingError, Term, bind
from knowledge.store.mirror import Mirror

_COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"


class EmbeddedStore:
    """A pyoxigraph :class:`~pyoxigraph.Store`: ``EmbeddedStore()`` in memory, ``EmbeddedStore(path)``
    on disk (created if missing), ``EmbeddedStore(path, read_only=True)`` for readers such as
    ``spore query`` that must not take the writer's lock.

    >>> from pyoxigraph import Literal, NamedNode, Quad
    >>> store = EmbeddedStore()
    >>> g = NamedNode("https://example.org/g")
    >>> store.extend([Quad(NamedNode("https://example.org/a"), NamedNode("https://example.org/p"),
    ...                    Literal("x"), g)])
    >>> store.count(g)
    1
    >>> [str(row["o"]) for row in store.query("SELECT ?o { GRAPH ?g { ?s ?p ?o } }")]
    ['"x"']
    """

    confines_datasets = True  # pyoxigraph evaluates every pattern against the given dataset

    def __init__(self, path: str | PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.path = None if path is None else Path(path)
        try:
            if self.path is None:
                if read_only:
                    raise ValueError("an in-memory store cannot be opened read-only")
                self._store = Store()
            elif read_only:
                if not (self.path / "CURRENT").exists():
                    raise StoreUnavailable(f"no store in {self.path}")
                self._store = Store.read_only(str(self.path))
            else:
                self._store = Store(str(self.path))
        except OSError as error:
            raise StoreUnavailable(f"cannot open the store in {self.path}: {error}") from error
        self.read_only = read_only
        self._mirror: Mirror | None = None

    @property
    def native(self) -> Store:
        """The underlying pyoxigraph store, for code that needs more than the interface."""
        return self._store

    # -- graphs kept in memory too (knowledge/store/mirror.py) -----------------------------------------
    def keep_in_memory(self, graphs: Iterable[NamedNode]) -> None:
        """Also hold ``graphs`` in memory, so that queries over them alone do not read the disk.

        For an on-disk store that the process writes; an in-memory or read-only store ignores it.
        """
        if self.path is None or self.read_only:
            return
        if self._mirror is None:
            self._mirror = Mirror(self._store, EmbeddedStore())
        self._mirror.keep(graphs)

    def kept(self, graphs: Iterable[GraphName]) -> EmbeddedStore | None:
        """The in-memory store holding every one of ``graphs``, or None. Write kept graphs through
        this store only; other graphs there are the caller's scratch space."""
        mirror = self._mirror
        return mirror.memory if mirror is not None and mirror.holds(graphs) else None

    def discard(self, quads: Iterable[Quad]) -> None:
        """Remove ``quads`` (from the in-memory copy too); quads that are not stored are ignored."""
        quads = list(quads)
        try:
            if self._mirror is None:
                for quad in quads:
                    self._store.remove(quad)
                return
            with self._mirror.lock:
                for quad in quads:
                    self._store.remove(quad)
                self._mirror.removed(quads)
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def _reader(self, default_graph: object, named_graphs: Sequence[NamedNode] | None) -> Store:
        """Where a query over this dataset runs: the in-memory copy when it holds all of it."""
        if self._mirror is None or (default_graph is None and named_graphs is None):
            return self._store
        graphs = [default_graph] if isinstance(default_graph, NamedNode | DefaultGraph) else default_graph
        wanted = [*(graphs or []), *(named_graphs or [])]  # type: ignore[misc]
        return self._mirror.memory.native if wanted and self._mirror.holds(wanted) else self._store

    def query(
        self,
        query: str,
        *,
        bindings: Mapping[str, Term] | None = None,
        default_graph: GraphName | Sequence[GraphName] | None = None,
        named_graphs: Sequence[NamedNode] | None = None,
    ) -> QueryResult:
        defaults: NamedNode | DefaultGraph | list[NamedNode | BlankNode | DefaultGraph] | None = None
        names: list[NamedNode | BlankNode] | None = None
        if default_graph is not None or named_graphs is not None:
            # Protocol semantics: naming one part of the dataset leaves the other empty.
            if isinstance(default_graph, NamedNode | DefaultGraph):
                defaults = default_graph
            else:
                defaults = list(default_graph or [])
            names = list(named_graphs or [])
        try:
            text = bind(query, bindings)
            reader = self._reader(default_graph, named_graphs)
            result = reader.query(text, default_graph=defaults, named_graphs=names)
        except (SyntaxError, BindingError) as error:
            raise QueryError(str(error)) from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error
        if isinstance(result, QueryBoolean):
            return bool(result)
        return result

    def update(self, update: str, *, bindings: Mapping[str, Term] | None = None) -> None:
        try:
            bound = bind(update, bindings, update=True)
            if self._mirror is None:
                self._store.update(bound)
                return
            with self._mirror.lock:
                self._store.update(bound)
                self._mirror.updated(update, bound, bindings)
        except (SyntaxError, BindingError) as error:
            raise QueryError(str(error)) from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def load(self, data: bytes | str, *, format: RdfFormat, graph: GraphName | None = None) -> None:
        if graph is not None and format.supports_datasets:
            raise ValueError(f"{format.name} carries its own graph names; load it without graph=")
        try:
            if self._mirror is not None and (format.supports_datasets or graph in self._mirror.graphs):
                # Parsed here, so that both copies get the same blank nodes.
                quads = parse(data, format=format)
                if graph is not None:
                    quads = (Quad(q.subject, q.predicate, q.object, graph) for q in quads)
                self.extend(quads)
                return
            self._store.load(data, format, to_graph=graph)
        except SyntaxError as error:
            raise QueryError(f"cannot parse {format.name}: {error}") from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def extend(self, quads: Iterable[Quad]) -> None:
        try:
            if self._mirror is None:
                self._store.extend(quads)
                return
            quads = list(quads)
            with self._mirror.lock:
                self._store.extend(quads)
                self._mirror.added(quads)
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def dump(self, *, format: RdfFormat, graph: GraphName | None = None) -> bytes:
        check_dump_target(graph, format)
        if graph is not None and format.supports_datasets:
            # pyoxigraph would write the graph's triples into the default graph; keep their graph name.
            return serialize(self._store.quads_for_pattern(None, None, None, graph), format=format) or b""
        return self._store.dump(format=format, from_graph=graph) or b""

    def clear(self, graph: GraphName | None) -> None:
        try:
            if self._mirror is None:
                self._clear(graph)
                return
            with self._mirror.lock:
                self._clear(graph)
                self._mirror.cleared(graph)
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def _clear(self, graph: GraphName | None) -> None:
        if graph is None:
            self._store.clear()
        else:
            self._store.remove_graph(graph)

    def named_graphs(self) -> list[NamedNode | BlankNode]:
        # Graphs that hold a triple, as SPARQL's GRAPH ?g sees them on every endpoint; pyoxigraph
        # also lists graphs created empty.
        store = self._store
        held = (g for g in store.named_graphs() if next(store.quads_for_pattern(None, None, None, g), None))
        return sorted(held, key=str)

    def count(self, graph: GraphName | None = None) -> int:
        if graph is None:
            return len(self._store)
        if isinstance(graph, DefaultGraph):
            rows = self._store.query(_COUNT)
        else:
            reader = self._reader(graph, [])
            rows = reader.query(_COUNT, default_graph=graph, named_graphs=[])
        assert isinstance(rows, QuerySolutions)
        return int(next(iter(rows))["n"].value)

    def flush(self) -> None:
        """Make every write durable now (on-disk stores flush in the background otherwise)."""
        if self.path is not None and not self.read_only:
            self._store.flush()

    def close(self) -> None:
        # pyoxigraph closes the database when the last reference goes; flush so nothing waits on GC.
        if getattr(self, "_store", None) is not None:
            self.flush()
            self._mirror = None  # it holds the database too
            del self._store

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"EmbeddedStore({where}{', read-only' if self.read_only else ''})"
