"""SHACL shapes for SPORE data and the validator that applies them.

One file per boundary: blueprints (what people author), nodes and groups, model snapshots and
evaluations, decisions, recommendations. They ship inside the installed package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from rdflib import Graph

__all__ = ["SHAPES_DIR", "SHAPES_IRI", "load_shapes", "shape_files"]

SHAPES_DIR = Path(__file__).parent
SHAPES_IRI = "https://w3id.org/spore/shapes#"


def shape_files() -> list[Path]:
    return sorted(SHAPES_DIR.glob("*.ttl"))


@cache
def load_shapes() -> Graph:
    """All shapes as one rdflib graph, parsed once per process (callers must not mutate it)."""
    graph = Graph()
    for path in shape_files():
        graph.parse(path, format="turtle")
    return graph
