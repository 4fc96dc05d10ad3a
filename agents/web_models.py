"""Hooking the web page to a host's fungus nodes: each node recommends with the weights it has now.

The page (``federation.web``) knows nothing of the protocol; it asks a :class:`ModelRegistry` for a
node's :class:`NodeModel`. Here each :class:`~agents.node.FungusNode` gets a source that rebuilds
that model from the node's current weights when they change (after a round's merge), over the
tensors read once from the node's own graphs, the same rows its learner trains on, blended with
its group's co-listening graph as the node chose on validation (what its reported metrics measure),
so the page and the Fediverse answers recommend what was evaluated. The round
lines the host reports feed the node's chart where its graphs hold no evaluations.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from agents.protocol.recommender import BlendChoice, LightGCNLearner
from agents.protocol.statistics import group_statistics
from federation.web import NodeModel, web_state

if TYPE_CHECKING:
    from agents.hosting import NodeHost
    from agents.node import FungusNode
    from models.data import MusicTensors
    from models.itemgraph import ItemGraph

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
        self._built: tuple[tuple[object, ...], NodeModel] | None = None  # (what it was built from, model)

    def _read_tensors(self) -> MusicTensors | None:
        if self._tensors is None and self.node.graphs is not None:
            from models.graph import load_music_tensors

            # with tag weights, so the page lists the tags most listeners applied first (read once)
            self._tensors = load_music_tensors(self.node.graphs.store, self.node.actor, tag_weights=True)
        return self._tensors

    def __call__(self) -> NodeModel | None:
        state = self.node.state  # replaced whole by each step, so one read is a consistent view
        if state.rounds_done == 0:
            return None
        with self._lock:
            # Both are replaced whole when they change, so identity says whether to rebuild.
            key = (state.weights, state.statistics, state.membership)
            if self._built is not None and all(a is b for a, b in zip(self._built[0], key, strict=True)):
                return self._built[1]
            if "artist_embedding.weight" not in state.weights:
                return None  # not a recommender's weights (e.g. the protocol tests' linear learner)
            tensors = self._read_tensors()
            if tensors is None:
                return None
            membership = state.membership
            item_graph, model_weight = self._item_graph(group_statistics(self.node.ctx, state))
            try:
                model = NodeModel.from_weights(
                    state.weights,
                    tensors,
                    node=self.node.actor,
                    group=membership.group.iri if membership is not None else None,
                    round=self.node.round if self.node.round is not None else state.rounds_done,
                    num_layers=int(getattr(self.node.ctx.learner, "num_layers", 3)),
                    item_graph=item_graph,
                    model_weight=model_weight,
                )
            except ValueError as error:  # weights for other rows than the node's graph holds
                log.warning("the web page cannot use %s's weights: %s", self.node.name, error)
                return None
            self._built = (key, model)
            return model

    def _item_graph(self, statistics: list[bytes]) -> tuple[ItemGraph | None, float]:
        """The group's item graph and the model's weight, as the node chose them at its last
        evaluation (what its reported metrics measured), or none while it holds no statistics."""
        learner = self.node.ctx.learner
        if not statistics or not isinstance(learner, LightGCNLearner):
            return None, 1.0
        choice = learner.last_choice or BlendChoice(learner.graph_beta, learner.blend_weight)
        return learner.item_graph(statistics, beta=choice.beta), choice.weight


def serve_node_models(app: FastAPI, host: NodeHost) -> None:
    """Let the host's web page recommend with each node's current model and chart its rounds.

    Nodes added to ``host`` later (spawned children) are found by name when the page asks; each
    round line the host reports is kept for the node's chart, and passed on to the listener the
    host already had.
    """
    state = web_state(app)
    live: dict[str, LiveNodeModel] = {}

    def model_of(name: str) -> NodeModel | None:
        node = next((candidate for candidate in list(host.nodes.values()) if candidate.name == name), None)
        if node is None:
            return None
        if name not in live or live[name].node is not node:
            live[name] = LiveNodeModel(node)
        return live[name]()

    previous = host.on_round

    def on_round(line: dict[str, Any]) -> None:
        if isinstance(line.get("node"), str):
            state.rounds.record(line["node"], line)
        if previous is not None:
            previous(line)

    state.models.resolve_with(model_of)
    host.on_round = on_round
