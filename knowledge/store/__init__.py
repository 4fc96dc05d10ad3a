"""A node's knowledge store: one interface, an embedded pyoxigraph store and a remote SPARQL endpoint.

>>> from knowledge.store import EmbeddedStore, open_store
>>> store = open_store(None)  # in memory; a directory opens it on disk, an http(s) URL an endpoint
>>> isinstance(store, EmbeddedStore)
True

See docs/store.md for the interface, graph naming and the bindings rule.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

from knowledge.store.base import (
    GraphName,
    KnowledgeStore,
    QueryError,
    QueryResult,
    StoreError,
    StoreUnavailable,
    rdf_format,
    to_rdflib,
)
from knowledge.store.bindings import BindingError, Term
from knowledge.store.embedded import EmbeddedStore

__all__ = [
    "BindingError",
    "EmbeddedStore",
    "GraphName",
    "KnowledgeStore",
    "QueryError",
    "QueryResult",
    "SparqlEndpointStore",
    "StoreError",
    "StoreUnavailable",
    "Term",
    "open_store",
    "rdf_format",
    "to_rdflib",
]


def open_store(location: str | PathLike[str] | None, **options: Any) -> KnowledgeStore:
    """The store a node configuration names: ``None`` in memory, an ``http(s)://`` URL a SPARQL
    endpoint (``options`` go to :class:`SparqlEndpointStore`), anything else a directory on disk
    (``options`` go to :class:`EmbeddedStore`)."""
    if location is not None and str(location).startswith(("http://", "https://")):
        from knowledge.store.remote import SparqlEndpointStore

        return SparqlEndpointStore(str(location), **options)
    return EmbeddedStore(location, **options)


def __getattr__(name: str) -> Any:
    # The remote store imports httpx; load it only for code that uses it.
    if name == "SparqlEndpointStore":
        from knowledge.store.remote import SparqlEndpointStore

        return SparqlEndpointStore
    raise AttributeError(name)
