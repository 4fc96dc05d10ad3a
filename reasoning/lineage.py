"""The lineage of a blueprint: which revisions it descends from, what each changed and why.

Runs ``queries/lineage.rq`` over a node's public graphs: its own revisions are in the blueprint
graph, and a blueprint it adopted from a peer is in its peers graph, so the lineage of an adopted
blueprint continues into the peer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyoxigraph import Literal, NamedNode, QuerySolutions

import queries
from knowledge.store import KnowledgeStore
from reasoning.records import rule_dataset

__all__ = ["Revision", "lineage"]


@dataclass(frozen=True)
class Revision:
    """One blueprint in a lineage, ``generation`` steps back from the one asked about."""

    blueprint: str
    generation: int
    revision: int | None
    node_name: str | None
    change_note: str | None
    parent: str | None


def lineage(
    store: KnowledgeStore,
    blueprint: str,
    *,
    node: str | None = None,
    graphs: Sequence[NamedNode] | None = None,
) -> list[Revision]:
    """``blueprint`` and its ancestors, newest first; read from ``node``'s graphs or ``graphs``."""
    dataset = list(graphs) if graphs is not None else (rule_dataset(node) if node is not None else None)
    result = store.query(
        queries.load("lineage"), bindings={"blueprint": NamedNode(blueprint)}, default_graph=dataset
    )
    assert isinstance(result, QuerySolutions)
    found = []
    for row in result:

        def value(name: str, row: object = row) -> str | None:
            term = row[name]  # type: ignore[index]
            return term.value if isinstance(term, Literal | NamedNode) else None

        revision = value("revision")
        found.append(
            Revision(
                blueprint=value("ancestor") or "",
                generation=int(value("generation") or 0),
                revision=int(revision) if revision is not None else None,
                node_name=value("nodeName"),
                change_note=value("changeNote"),
                parent=value("parent"),
            )
        )
    return found
