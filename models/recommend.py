r"""Top-K recommendations from a trained model, and their description as linked data.

:class:`RecommendationEngine` propagates the graph once and keeps the final embeddings, so a top-K
for one listener afterwards is one ``[d] x [d, A]`` product, a mask and a ``topk``.

People who are not listeners of the node get recommendations from artists they name: their
embedding is *folded in* as the mean of the final embeddings of those artists. For LightGCN this is
what one propagation step computes for a new listener node linked to exactly those artists (up to
the degree normalisation), so no retraining is needed.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import torch
from rdflib import RDF, XSD, Graph, Literal, URIRef
from rdflib.namespace import PROV

from knowledge.music.names import NameIndex
from models.adjacency import ModelGraph
from models.data import MusicTensors
from models.fusion import standardised
from models.itemgraph import ItemGraph
from models.lightgcn import EmbeddingRecommender
from ontology import PREFIXES, SPORE

__all__ = [
    "ArtistMatch",
    "RankedArtist",
    "RecommendationEngine",
    "UnknownArtistError",
    "match_artists",
    "recommendation_graph",
]

SCHEMA = PREFIXES["schema"]


class UnknownArtistError(LookupError):
    """Named artists that are not in the catalogue, with close matches for each."""

    def __init__(self, unknown: dict[str, list[str]]) -> None:
        self.unknown = unknown
        parts = []
        for name, suggestions in unknown.items():
            hint = f" (did you mean {', '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
            parts.append(f"{name!r}{hint}")
        super().__init__(f"unknown artist{'s' if len(unknown) > 1 else ''}: {'; '.join(parts)}")


@dataclass(frozen=True)
class ArtistMatch:
    query: str
    index: int
    name: str


@dataclass(frozen=True)
class RankedArtist:
    position: int
    index: int
    iri: str
    name: str
    score: float


def match_artists(names: list[str], tensors: MusicTensors, *, suggestions: int = 3) -> list[ArtistMatch]:
    """Find each typed name among the artists (the catalogue's own name matching, see
    :mod:`knowledge.music.names`: Unicode-normalised, case-insensitive, accent-tolerant).

    Names that match nothing raise one :class:`UnknownArtistError` listing, for each, up to
    ``suggestions`` close catalogue names.
    """
    index = NameIndex(zip(tensors.artists, tensors.artist_names, strict=True))
    found = index.match(names, limit=suggestions)
    if found.unmatched:
        raise UnknownArtistError({query: list(close) for query, close in found.unmatched})
    return [ArtistMatch(m.query, tensors.artist_index(m.iri), m.name) for m in found.matched]


class RecommendationEngine:
    """Final embeddings of a trained model over its graph, ready for fast top-K queries.

    With an ``item_graph`` (the group's co-listening graph, ``models.itemgraph``) it ranks by the
    blend the node evaluates and reports: the graph walk from the listened (or named) artists plus
    ``model_weight`` times the model's scores, each standardised (``models.fusion``).
    """

    def __init__(
        self,
        model: EmbeddingRecommender,
        graph: ModelGraph,
        tensors: MusicTensors,
        *,
        item_graph: ItemGraph | None = None,
        model_weight: float = 1.0,
    ) -> None:
        if item_graph is not None and item_graph.transposed.shape[0] != tensors.num_artists:
            raise ValueError(
                f"an item graph over {item_graph.transposed.shape[0]} artists does not fit a catalogue "
                f"of {tensors.num_artists}"
            )
        self.item_graph = item_graph
        self.model_weight = model_weight
        with torch.no_grad():
            listener_out, artist_out = model(graph)
        self.listener_embeddings = listener_out.detach().contiguous()
        self.artist_embeddings = artist_out.detach().contiguous()
        self.tensors = tensors
        order = torch.argsort(tensors.interactions[0], stable=True)
        self._known = tensors.interactions[1, order]
        counts = torch.bincount(tensors.interactions[0], minlength=tensors.num_listeners)
        self._pointer = torch.zeros(tensors.num_listeners + 1, dtype=torch.long)
        self._pointer[1:] = counts.cumsum(0)

    def known_artists(self, listener: int) -> torch.Tensor:
        return self._known[self._pointer[listener] : self._pointer[listener + 1]]

    def for_listener(self, listener: int, k: int = 20) -> list[RankedArtist]:
        """The ``k`` best artists the listener has not listened to yet."""
        scores = self.artist_embeddings @ self.listener_embeddings[listener]
        known = self.known_artists(listener)
        return self._top(self._blended(scores, known), known, k)

    def for_artists(self, artists: list[int], k: int = 20) -> list[RankedArtist]:
        """The ``k`` best artists for someone who likes ``artists`` (fold-in; those are excluded)."""
        if not artists:
            raise ValueError("need at least one liked artist")
        liked = torch.tensor(sorted(set(artists)), dtype=torch.long)
        profile = self.artist_embeddings[liked].mean(dim=0)
        return self._top(self._blended(self.artist_embeddings @ profile, liked), liked, k)

    def _blended(self, model_scores: torch.Tensor, listened: torch.Tensor) -> torch.Tensor:
        if self.item_graph is None:
            return model_scores
        row = torch.zeros(1, self.tensors.num_artists)
        row[0, listened] = 1.0
        walk = standardised(self.item_graph.score(row))
        return (walk + self.model_weight * standardised(model_scores[None]))[0]

    def _top(self, scores: torch.Tensor, exclude: torch.Tensor, k: int) -> list[RankedArtist]:
        scores = scores.clone()
        scores[exclude] = float("-inf")
        best = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        return [
            RankedArtist(
                position=position,
                index=int(index),
                iri=self.tensors.artists[int(index)],
                name=self.tensors.artist_names[int(index)],
                score=float(score),
            )
            for position, (score, index) in enumerate(zip(best.values, best.indices, strict=True), start=1)
        ]


def recommendation_graph(
    ranked: list[RankedArtist],
    *,
    made_with: URIRef,
    listener: str | None = None,
    seed_artists: tuple[str, ...] = (),
    iri: URIRef | None = None,
    generated_at: datetime.datetime | None = None,
) -> tuple[Graph, URIRef]:
    """A ``spore:Recommendation`` (a ``schema:ItemList``) of ``ranked``, valid against its shape.

    Exactly one of ``listener`` and ``seed_artists`` says whom it is for.
    """
    if (listener is None) == (not seed_artists):
        raise ValueError("a recommendation is for one listener or from seed artists, not both or neither")
    graph = Graph()
    for prefix in ("spore", "schema", "prov", "xsd"):
        graph.bind(prefix, PREFIXES[prefix])
    subject = iri or URIRef(f"urn:uuid:{uuid.uuid4()}")
    when = generated_at or datetime.datetime.now(datetime.UTC)
    graph.add((subject, RDF.type, SPORE.Recommendation))
    graph.add((subject, SPORE.madeWith, made_with))
    graph.add((subject, PROV.generatedAtTime, Literal(when.isoformat(), datatype=XSD.dateTime)))
    graph.add((subject, URIRef(SCHEMA + "numberOfItems"), Literal(len(ranked), datatype=XSD.integer)))
    graph.add((subject, URIRef(SCHEMA + "itemListOrder"), URIRef(SCHEMA + "ItemListOrderDescending")))
    if listener is not None:
        graph.add((subject, SPORE.forListener, URIRef(listener)))
    for artist in seed_artists:
        graph.add((subject, SPORE.seedArtist, URIRef(artist)))
    for entry in ranked:
        item = URIRef(f"{subject}#item-{entry.position}")
        graph.add((subject, URIRef(SCHEMA + "itemListElement"), item))
        graph.add((item, RDF.type, SPORE.RecommendedItem))
        graph.add((item, URIRef(SCHEMA + "position"), Literal(entry.position, datatype=XSD.integer)))
        graph.add((item, URIRef(SCHEMA + "item"), URIRef(entry.iri)))
        graph.add((item, URIRef(SCHEMA + "name"), Literal(entry.name)))
        graph.add((item, SPORE.score, Literal(entry.score, datatype=XSD.double)))
    return graph, subject
