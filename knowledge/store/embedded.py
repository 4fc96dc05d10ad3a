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

    @property
    def native(self) -> Store:
        """The underlying pyoxigraph store, for code that needs more than the interface."""
        return self._store

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
            result = self._store.query(text, default_graph=defaults, named_graphs=names)
        except (SyntaxError, BindingError) as error:
            raise QueryError(str(error)) from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error
        if isinstance(result, QueryBoolean):
            return bool(result)
        return result

    def update(self, update: str, *, bindings: Mapping[str, Term] | None = None) -> None:
        try:
            self._store.update(bind(update, bindings, update=True))
        except (SyntaxError, BindingError) as error:
            raise QueryError(str(error)) from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def load(self, data: bytes | str, *, format: RdfFormat, graph: GraphName | None = None) -> None:
        if graph is not None and format.supports_datasets:
            raise ValueError(f"{format.name} carries its own graph names; load it without graph=")
        try:
            self._store.load(data, format, to_graph=graph)
        except SyntaxError as error:
            raise QueryError(f"cannot parse {format.name}: {error}") from error
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

    def extend(self, quads: Iterable[Quad]) -> None:
        try:
            self._store.extend(quads)
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
            if graph is None:
                self._store.clear()
            else:
                self._store.remove_graph(graph)
        except (OSError, RuntimeError) as error:
            raise StoreError(str(error)) from error

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
            rows = self._store.query(_COUNT, default_graph=graph, named_graphs=[])
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
            del self._store

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"EmbeddedStore({where}{', read-only' if self.read_only else ''})"
