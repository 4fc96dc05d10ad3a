"""Recommendations for the web page: a node's current model, artist autocompletion, and the answer.

The node runtime owns training; it hands each node's current model to the page through
:class:`ModelRegistry` (``publish(name, NodeModel(...))``) after every round. Everything else here is
pure: completing a typed name, matching what was typed (case and typo tolerant, with "did you mean"
suggestions from :mod:`knowledge.music.names`), and ranking, so the router only does HTTP.
"""

from __future__ import annotations

import bisect
import difflib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from rdflib import Graph, URIRef

from knowledge.music.names import NameIndex, normalize_name, split_names

if TYPE_CHECKING:  # torch-backed; imported when a recommendation is made, so a host starts without torch
    from torch import Tensor

    from models.data import MusicTensors
    from models.itemgraph import ItemGraph
    from models.recommend import RecommendationEngine

__all__ = [
    "Answer",
    "Correction",
    "ModelRegistry",
    "ModelSource",
    "NodeModel",
    "RankedItem",
    "RecommendationQuery",
    "answer",
    "complete",
    "corrected_artists",
    "recommendation_iri",
]

ARCHITECTURE_NAMES = {
    "lightgcn": "LightGCN",
    "knowledge-lightgcn": "knowledge-aware LightGCN",
    "bpr-mf": "matrix factorisation",
}
MAX_K = 100
MAX_NAME = 200
MAX_ARTISTS = 50


class NodeModel:
    """What one node recommends with now: the engine over its graph, and where the weights came from.

    ``snapshot`` is the snapshot's IRI; ``group`` the learning group whose shared model it is (None
    for a model the node trained alone); ``round`` the protocol round that produced it.
    """

    def __init__(
        self,
        engine: RecommendationEngine,
        snapshot: str,
        *,
        group: str | None = None,
        round: int | None = None,
        architecture: str = "lightgcn",
        blend: str | None = None,
    ) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self.group = group
        self.round = round
        self.architecture = architecture
        self.blend = blend  # how the item graph is blended in, for a person (None: the model alone)

    @classmethod
    def from_weights(
        cls,
        weights: Mapping[str, Tensor],
        tensors: MusicTensors,
        *,
        node: str,
        group: str | None = None,
        round: int | None = None,
        num_layers: int = 3,
        item_graph: ItemGraph | None = None,
        model_weight: float = 1.0,
    ) -> NodeModel:
        """A LightGCN node's model from the protocol's weights (a state dict) over its own graph,
        blended with its group's co-listening ``item_graph`` when it holds one.

        The snapshot IRI is the content address of those weights as a snapshot file would hold them
        (``{node}/snapshots/{sha256}``), so the page names the same snapshot the node publishes.
        """
        import hashlib

        from models.card import snapshot_iri
        from models.pipeline import graph_for_model, new_model
        from models.recommend import RecommendationEngine
        from models.snapshot import snapshot_bytes

        listeners, dimension = weights["listener_embedding.weight"].shape
        artists = weights["artist_embedding.weight"].shape[0]
        if (listeners, artists) != (tensors.num_listeners, tensors.num_artists):
            raise ValueError(
                f"weights for {listeners} listeners and {artists} artists do not fit a graph of "
                f"{tensors.num_listeners} listeners and {tensors.num_artists} artists"
            )
        # The knowledge-aware model's weights carry its tag and entity tables as well.
        architecture = "knowledge-lightgcn" if "tag_embedding.weight" in weights else "lightgcn"
        model = new_model(architecture, tensors, embedding_dim=dimension, num_layers=num_layers)
        try:
            model.load_state_dict(dict(weights))
        except RuntimeError as error:  # torch's message lists the tables that do not fit
            raise ValueError(f"weights do not fit the node's {architecture} model: {error}") from None
        model.eval()
        digest = hashlib.sha256(snapshot_bytes(model, tensors)).hexdigest()
        engine = RecommendationEngine(
            model, graph_for_model(model, tensors), tensors, item_graph=item_graph, model_weight=model_weight
        )
        blend = None
        if item_graph is not None:
            blend = (
                f"blended with the group's co-listening graph (RP3beta, beta {item_graph.beta:g}; "
                f"model weight {model_weight:g}, chosen on the node's validation listens)"
            )
        return cls(
            engine,
            str(snapshot_iri(digest, node)),
            group=group,
            round=round,
            architecture=architecture,
            blend=blend,
        )

    @property
    def tensors(self) -> MusicTensors:
        return self.engine.tensors

    @cached_property
    def names(self) -> NameIndex:
        return NameIndex(zip(self.tensors.artists, self.tensors.artist_names, strict=True))

    @cached_property
    def completion_keys(self) -> tuple[list[str], list[str]]:
        """Normalised names sorted, with their display names: prefix lookups become one bisect."""
        pairs = sorted({(normalize_name(name), name) for name in self.tensors.artist_names})
        return [key for key, _ in pairs], [name for _, name in pairs]

    @cached_property
    def tags(self) -> list[list[str]]:
        """Per artist, its tag labels, most applied first (the weights, where the data has them)."""
        tensors = self.tensors
        labels = tensors.tag_labels or tensors.tags
        weights = tensors.artist_tag_weights
        per_artist: list[list[tuple[float, str]]] = [[] for _ in range(tensors.num_artists)]
        for column, (artist, tag) in enumerate(tensors.artist_tags.t().tolist()):
            weight = float(weights[column]) if weights is not None else 0.0
            per_artist[artist].append((-weight, labels[tag]))
        return [[label for _, label in sorted(entries)] for entries in per_artist]


ModelSource = Callable[[], "NodeModel | None"]


class ModelRegistry:
    """Each local node's current :class:`NodeModel`, replaced as rounds pass (thread-safe).

    A runtime either ``publish``es a model after each round, or ``provide``s a source the page asks
    on each request (which should cache, e.g. rebuild only when the node's round changed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, NodeModel] = {}
        self._sources: dict[str, ModelSource] = {}
        self._resolver: Callable[[str], NodeModel | None] | None = None

    def publish(self, node: str, model: NodeModel) -> None:
        with self._lock:
            self._models[node] = model

    def provide(self, node: str, source: ModelSource) -> None:
        with self._lock:
            self._sources[node] = source

    def resolve_with(self, resolver: Callable[[str], NodeModel | None]) -> None:
        """A source for every node, asked by name (a runtime whose nodes come and go)."""
        with self._lock:
            self._resolver = resolver

    def withdraw(self, node: str) -> None:
        with self._lock:
            self._models.pop(node, None)
            self._sources.pop(node, None)

    def get(self, node: str) -> NodeModel | None:
        with self._lock:
            source = self._sources.get(node)
            resolver = self._resolver
            published = self._models.get(node)
        for ask in (source, None if resolver is None else lambda: resolver(node)):
            found = ask() if ask is not None else None
            if found is not None:
                return found
        return published


def complete(model: NodeModel, typed: str, *, limit: int = 8) -> list[str]:
    """Artist names for what someone is typing: prefix matches, then names containing it, then near
    misses (so "radiohed" still offers "Radiohead")."""
    key = normalize_name(typed)
    if not key:
        return []
    keys, names = model.completion_keys
    found: list[str] = []
    start = bisect.bisect_left(keys, key)
    for position in range(start, len(keys)):
        if not keys[position].startswith(key) or len(found) >= limit:
            break
        found.append(names[position])
    if len(found) < limit and len(key) >= 3:
        for position, candidate in enumerate(keys):
            if key in candidate and names[position] not in found:
                found.append(names[position])
                if len(found) >= limit:
                    break
    if len(found) < limit:
        for close in difflib.get_close_matches(key, keys, n=limit - len(found), cutoff=0.7):
            name = names[keys.index(close)]
            if name not in found:
                found.append(name)
    return found[:limit]


@dataclass(frozen=True)
class RecommendationQuery:
    """What a person asked for: liked artists as typed, or a listener of the node; and how many."""

    node: str
    artists: tuple[str, ...] = ()
    listener: str | None = None
    k: int = 20

    @classmethod
    def parse(
        cls, node: str, artists: str | None, listener: str | None, k: str | None
    ) -> RecommendationQuery:
        """Check the form's fields; a ``ValueError`` carries the sentence to show the person."""
        names = tuple(split_names(artists or ""))
        listener = (listener or "").strip().strip("<>") or None
        if not names and listener is None:
            raise ValueError("type at least one artist you like, or pick a listener")
        if names and listener is not None:
            raise ValueError("ask for a listener or for artists, not both")
        if len(names) > MAX_ARTISTS:
            raise ValueError(f"at most {MAX_ARTISTS} artists at a time")
        if any(len(name) > MAX_NAME for name in names):
            raise ValueError(f"an artist's name has at most {MAX_NAME} characters")
        try:
            count = int(k) if k not in (None, "") else 20
        except ValueError:
            raise ValueError(f"how many must be a whole number, not {k!r}") from None
        if not 1 <= count <= MAX_K:
            raise ValueError(f"how many must be between 1 and {MAX_K}")
        return cls(node=node, artists=names, listener=listener, k=count)


@dataclass(frozen=True)
class Correction:
    """A typed name that matched no artist, with the closest names (best first)."""

    typed: str
    suggestions: tuple[str, ...]


@dataclass(frozen=True)
class RankedItem:
    position: int
    iri: str
    name: str
    score: float
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    """The ranked list and what it is based on; ``items`` is empty when nothing typed was recognised."""

    query: RecommendationQuery
    seeds: tuple[str, ...]  # display names of the recognised artists
    seed_iris: tuple[str, ...]
    corrections: tuple[Correction, ...]
    items: tuple[RankedItem, ...]
    snapshot: str
    group: str | None
    round: int | None
    architecture: str
    iri: str = ""
    blend: str | None = None  # how the item graph was blended in (NodeModel.blend)
    rdf: Graph = field(default_factory=Graph, compare=False)


def recommendation_iri(base_url: str, query: RecommendationQuery, seeds: tuple[str, ...]) -> str:
    """The Recommendation's IRI: the page URL that answers the same question (so it dereferences).

    Seeds are written as recognised (display names), so "radiohead, portishead" and "Radiohead,
    Portishead" name the same resource.
    """
    params: dict[str, str] = {"node": query.node}
    if query.listener is not None:
        params["listener"] = query.listener
    else:
        params["artists"] = ", ".join(seeds)
    params["k"] = str(query.k)
    return f"{base_url}/recommend?{urlencode(params)}"


def answer(model: NodeModel, query: RecommendationQuery, base_url: str) -> Answer:
    """Rank artists for ``query``; a ``LookupError`` means the listener is not one of the node's."""
    from models.recommend import recommendation_graph

    tensors = model.tensors
    tags = model.tags
    corrections: list[Correction] = []
    seeds: tuple[str, ...] = ()
    seed_iris: tuple[str, ...] = ()
    if query.listener is not None:
        try:
            row = tensors.listener_index(query.listener)
        except KeyError:
            raise LookupError(f"{query.listener} is not a listener of this node") from None
        ranked = model.engine.for_listener(row, query.k)
    else:
        matches = model.names.match(query.artists, limit=3)
        corrections = [Correction(typed, tuple(close)) for typed, close in matches.unmatched]
        seeds = tuple(match.name for match in matches.matched)
        seed_iris = tuple(match.iri for match in matches.matched)
        indices = [tensors.artist_index(iri) for iri in seed_iris]
        ranked = model.engine.for_artists(indices, query.k) if indices else []
    items = tuple(RankedItem(r.position, r.iri, r.name, r.score, tuple(tags[r.index][:3])) for r in ranked)
    iri = recommendation_iri(base_url, query, seeds)
    rdf = Graph()
    if ranked:
        rdf, _ = recommendation_graph(
            ranked,
            made_with=URIRef(model.snapshot),
            listener=query.listener,
            seed_artists=seed_iris,
            iri=URIRef(iri),
        )
    return Answer(
        query=query,
        seeds=seeds,
        seed_iris=seed_iris,
        corrections=tuple(corrections),
        items=items,
        snapshot=model.snapshot,
        group=model.group,
        round=model.round,
        architecture=ARCHITECTURE_NAMES.get(model.architecture, model.architecture),
        iri=iri,
        blend=model.blend,
        rdf=rdf,
    )


def corrected_artists(query: RecommendationQuery, correction: Correction, suggestion: str) -> str:
    """The artists field with one typo replaced by a suggestion (the "did you mean" link's value)."""
    return ", ".join(suggestion if typed == correction.typed else typed for typed in query.artists)
