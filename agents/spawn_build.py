"""Building a node spawned on a running host: its listeners, model and known groups from its parent.

A child of a node holds the parent's listeners (the private graph is copied inside the host's store:
data never leaves the host) and starts from the parent's model, so it can train in the parent's
group at once; a blueprint started without a parent gets a newcomer's share of the listeners.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode

from agents.node import FungusNode
from agents.node_blueprint import Blueprint
from agents.node_setup import CatalogueQuads, NodeRoles, RoundTiming, build_node
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import KnowledgeStore

__all__ = ["ChildBuilder", "inherited_state"]


@dataclass
class ChildBuilder:
    """What a host needs to build one more node: its store, music catalogue, timing, and the folder
    its children's blueprints are written to (a node is served from a blueprint file)."""

    store: KnowledgeStore
    catalogue: CatalogueQuads
    timing: RoundTiming
    directory: Path

    def build(
        self, blueprint: Blueprint, actor: str, parent: FungusNode | None, shard: tuple[int, int]
    ) -> FungusNode:
        """The child node; runs on the host's step worker (it reads and writes graphs, builds torch)."""
        if parent is not None and parent.graphs is not None:
            source = graph_iri(NamedNode(parent.actor), GraphKind.PRIVATE)
            target = graph_iri(NamedNode(actor), GraphKind.PRIVATE)
            self.store.update(f"ADD {source} TO {target}")
        node = build_node(
            blueprint,
            actor,
            store=self.store,
            catalogue=self.catalogue,
            roles=NodeRoles(founds=None, shard=shard),
            timing=self.timing,
        )
        if parent is not None:
            node.state = inherited_state(node, parent)
        return node


def inherited_state(child: FungusNode, parent: FungusNode) -> Any:
    """The child's first state with what it takes from its parent: the model (when the shapes agree),
    the groups the parent knows, and the parent's group's hashtag first among those it seeks."""
    state, mine = child.state, parent.state
    same_shapes = set(state.weights) == set(mine.weights) and all(
        state.weights[name].shape == tensor.shape for name, tensor in mine.weights.items()
    )
    seeks = state.seeks
    if mine.membership is not None:
        tag = mine.membership.group.hashtag
        seeks = (tag, *(other for other in seeks if other != tag))
    return replace(
        state,
        weights={name: tensor.clone() for name, tensor in mine.weights.items()}
        if same_shapes
        else state.weights,
        known_groups=dict(mine.known_groups),
        seeks=seeks,
    )
