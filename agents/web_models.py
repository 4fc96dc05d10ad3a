"""Hooking the web page to a host's fungus nodes: each node recommends with the weights it has now.

The page (``federation.web``) knows nothing of the protocol; it asks a :class:`ModelRegistry` for a
node's :class:`NodeModel`. Here each :class:`~agents.node.FungusNode` gets a source that rebuilds
that model from the node's current weights when they change (after a round's merge), over the
tensors read once from the node's own graphs, the same rows its learner trains on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import FastAPI

from federation.web import NodeModel, web_state

if TYPE_CHECKING:
    from agents.node import FungusNode
    from models.data import MusicTensors

__all__ = ["LiveNodeModel", "serve_node_models"]

log = logging.getLogger(__name__)


class LiveNodeModel:
    """The current :class:`NodeModel` of one node, rebuilt only when its weights were replaced.

    Nothing is shown before the node has finished a round: its first weights are a random
    initialisation, and a ranked list from them would look like an answer while being noise.
    """

    def __init__(self, node: FungusNode) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._tensors: MusicTensors | None = None
        self._built: tuple[object, NodeModel] | None = None  # (the weights it was built from, model)

    def _read_tensors(self) -> MusicTensors | None:
        if self._tensors is None and self.node.graphs is not None:
            from models.graph import load_music_tensors

            self._tensors = load_music_tensors(self.node.graphs.store, self.node.actor)
        return self._tensors

    def __call__(self) -> NodeModel | None:
        state = self.node.state  # replaced whole by each step, so one read is a consistent view
        if state.rounds_done == 0:
            return None
        with self._lock:
            if self._built is not None and self._built[0] is state.weights:
                return self._built[1]
            if "artist_embedding.weight" not in state.weights:
                return None  # not a recommender's weights (e.g. the protocol tests' linear learner)
            tensors = self._read_tensors()
            if tensors is None:
                return None
            membership = state.membership
            try:
                model = NodeModel.from_weights(
                    state.weights,
                    tensors,
                    node=self.node.actor,
                    group=membership.group.iri if membership is not None else None,
                    round=self.node.round if self.node.round is not None else state.rounds_done,
                    num_layers=int(getattr(self.node.ctx.learner, "num_layers", 3)),
                )
            except ValueError as error:  # weights for other rows than the node's graph holds
                log.warning("the web page cannot use %s's weights: %s", self.node.name, error)
                return None
            self._built = (state.weights, model)
            return model


def serve_node_models(app: FastAPI, nodes: Iterable[FungusNode]) -> None:
    """Let the host's web page recommend with each of ``nodes``' current models."""
    registry = web_state(app).models
    for node in nodes:
        registry.provide(node.name, LiveNodeModel(node))
