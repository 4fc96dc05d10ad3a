"""The blueprint revision a served node follows: applied when it mutates or adopts, and again after
a restart, read back from its blueprint graph, so that restarting a host does not undo what its
nodes decided (the file a node was started from is only its first revision)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rdflib import URIRef

from agents.node import FungusNode
from agents.protocol.recommender import LightGCNLearner
from agents.thinking import learner_settings
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import to_rdflib
from reasoning.mutation import current_blueprint

__all__ = ["follow_revision", "resume_revision"]

_BLUEPRINT_FIELDS = {"learning_rate": "learning_rate", "local_epochs": "local_epochs", "num_layers": "layers"}


def follow_revision(node: FungusNode, settings: Mapping[str, Any]) -> None:
    """Give ``node`` a learner (and blueprint record) with a revision's ``settings``."""
    learner = node.ctx.learner
    assert isinstance(learner, LightGCNLearner)  # only such nodes reason (why_not_reasoning)
    learner = dataclasses.replace(learner, **settings)
    step = learner.learning_rate * learner.local_epochs  # what its updates declare (protocol/defence.py)
    node.ctx = dataclasses.replace(node.ctx, learner=learner, training_step=step)
    if node.blueprint is not None:
        changes = {_BLUEPRINT_FIELDS[name]: value for name, value in settings.items()}
        node.blueprint = dataclasses.replace(node.blueprint, **changes)


def resume_revision(node: FungusNode) -> URIRef | None:
    """After a restart, the blueprint revision the node followed (it mutated or adopted), read back
    from its blueprint graph and applied to its learner, so that a restart does not undo what it
    decided; None when it follows the blueprint it was started from."""
    if node.graphs is None or not isinstance(node.ctx.learner, LightGCNLearner):
        return None
    current = current_blueprint(node.graphs.store, node.actor)
    if current is None or str(current) == f"{node.actor}/blueprint":
        return None
    graph = to_rdflib(node.graphs.store, graph_iri(node.graphs.node, GraphKind.BLUEPRINT))
    follow_revision(node, learner_settings(graph, current))
    return current
