"""The tensors a recommender trains on, with the IRIs every row stands for.

This is the contract between the graph side (``models/graph.py`` turns a node's RDF graphs into a
:class:`MusicTensors` through SPARQL) and the model side (models, splits, metrics, snapshots). Models
never see IRIs; anything that leaves the model side (a recommendation, a model card) maps row ids back
to IRIs through the lookups here. The position of an IRI in its tuple *is* its row id, and producers
sort IRIs so that the same graph always yields the same ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["MusicTensors", "MusicTensorsError"]


class MusicTensorsError(ValueError):
    """The tensors disagree with the IRI tables (bad shape, dtype, or an index out of range)."""


def _index_of(iris: tuple[str, ...]) -> dict[str, int]:
    return {iri: position for position, iri in enumerate(iris)}


@dataclass(frozen=True, eq=False)
class MusicTensors:
    """Listener–artist interactions plus artist side information, indexed by row ids.

    Shapes (``E`` interactions, ``T`` artist–tag edges, ``K`` artist–entity triples):

    * ``interactions``: ``LongTensor [2, E]``, row 0 listener index, row 1 artist index; each
      (listener, artist) pair at most once.
    * ``play_counts``: ``Tensor [E]`` (float), plays of ``interactions[:, e]``.
    * ``artist_tags``: ``LongTensor [2, T]``, row 0 artist index, row 1 tag index.
    * ``artist_tag_weights``: optional ``Tensor [T]`` (e.g. how many listeners applied the tag).
    * ``artist_entities``: ``LongTensor [3, K]``: artist index, relation index, entity index
      (knowledge-graph triples whose subject is an artist; an artist can also be an entity, under
      its own IRI, when it is the object of a relation).
    * ``artist_names``: one display name per artist, same order as ``artists``.
    * ``tag_labels``: optional, one label per tag.
    * ``taggings``: optional ``LongTensor [3, N]``: who tagged what, (listener, artist, tag) with
      ``-1`` as the listener for a tagger who has no listening here. ``artist_tags`` and its weights
      are then derived from these rows, and a split drops the taggings of its held-out pairs
      (:meth:`without_taggings_of`), so a model never learns from how a listener tagged an artist
      it is being tested on.

    Construction validates dtypes, shapes and index ranges so that a bad producer fails here with
    a message instead of deep inside a sparse matrix multiply.
    """

    listeners: tuple[str, ...]
    artists: tuple[str, ...]
    tags: tuple[str, ...]
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    interactions: torch.Tensor
    play_counts: torch.Tensor
    artist_tags: torch.Tensor
    artist_entities: torch.Tensor
    artist_names: tuple[str, ...]
    artist_tag_weights: torch.Tensor | None = None
    tag_labels: tuple[str, ...] | None = None
    taggings: torch.Tensor | None = None
    _lookup: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_edges("interactions", self.interactions, (self.num_listeners, self.num_artists))
        self._check_edges("artist_tags", self.artist_tags, (self.num_artists, self.num_tags))
        self._check_edges(
            "artist_entities",
            self.artist_entities,
            (self.num_artists, len(self.relations), self.num_entities),
        )
        if self.taggings is not None:
            self._check_edges(
                "taggings",
                self.taggings + torch.tensor([[1], [0], [0]]),
                (self.num_listeners + 1, self.num_artists, self.num_tags),
            )
        if self.play_counts.shape != (self.interactions.shape[1],):
            raise MusicTensorsError(
                f"play_counts has shape {tuple(self.play_counts.shape)}, "
                f"expected ({self.interactions.shape[1]},) to match interactions"
            )
        if self.artist_tag_weights is not None and self.artist_tag_weights.shape != (
            self.artist_tags.shape[1],
        ):
            raise MusicTensorsError("artist_tag_weights must have one weight per artist_tags column")
        if len(self.artist_names) != self.num_artists:
            raise MusicTensorsError(f"{len(self.artist_names)} artist names for {self.num_artists} artists")
        if self.tag_labels is not None and len(self.tag_labels) != self.num_tags:
            raise MusicTensorsError(f"{len(self.tag_labels)} tag labels for {self.num_tags} tags")
        lookup = {
            "listener": _index_of(self.listeners),
            "artist": _index_of(self.artists),
            "tag": _index_of(self.tags),
            "entity": _index_of(self.entities),
            "relation": _index_of(self.relations),
        }
        for kind, table in lookup.items():
            if len(table) != len(getattr(self, _PLURAL[kind])):
                raise MusicTensorsError(f"duplicate IRIs among {_PLURAL[kind]}")
        object.__setattr__(self, "_lookup", lookup)

    @staticmethod
    def _check_edges(name: str, edges: torch.Tensor, bounds: Sequence[int]) -> None:
        if edges.dtype != torch.long:
            raise MusicTensorsError(f"{name} must be a LongTensor, got {edges.dtype}")
        if edges.dim() != 2 or edges.shape[0] != len(bounds):
            raise MusicTensorsError(f"{name} must have shape [{len(bounds)}, N], got {tuple(edges.shape)}")
        if edges.shape[1] == 0:
            return
        for row, bound in enumerate(bounds):
            low, high = int(edges[row].min()), int(edges[row].max())
            if low < 0 or high >= bound:
                raise MusicTensorsError(
                    f"{name} row {row} holds indices {low}..{high}, outside 0..{bound - 1}"
                )

    # sizes -------------------------------------------------------------------------------------

    @property
    def num_listeners(self) -> int:
        return len(self.listeners)

    @property
    def num_artists(self) -> int:
        return len(self.artists)

    @property
    def num_tags(self) -> int:
        return len(self.tags)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def num_interactions(self) -> int:
        return int(self.interactions.shape[1])

    # id <-> IRI --------------------------------------------------------------------------------

    def index(self, kind: str, iri: str) -> int:
        """Row id of ``iri`` among ``kind`` (listener, artist, tag, entity, relation).

        Raises ``KeyError`` naming the IRI when it is unknown.
        """
        try:
            table = self._lookup[kind]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(self._lookup)}") from None
        try:
            return table[iri]
        except KeyError:
            raise KeyError(f"no {kind} <{iri}> in these tensors") from None

    def iri(self, kind: str, index: int) -> str:
        """IRI of row ``index`` among ``kind``."""
        if kind not in _PLURAL:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(_PLURAL)}")
        return getattr(self, _PLURAL[kind])[index]

    def listener_index(self, iri: str) -> int:
        return self.index("listener", iri)

    def artist_index(self, iri: str) -> int:
        return self.index("artist", iri)

    def listener_iri(self, index: int) -> str:
        return self.listeners[index]

    def artist_iri(self, index: int) -> str:
        return self.artists[index]

    # derived views -----------------------------------------------------------------------------

    def with_interactions(self, interactions: torch.Tensor, play_counts: torch.Tensor) -> MusicTensors:
        """The same catalogue with another interaction set (a split's training part, say)."""
        return MusicTensors(
            listeners=self.listeners,
            artists=self.artists,
            tags=self.tags,
            entities=self.entities,
            relations=self.relations,
            interactions=interactions,
            play_counts=play_counts,
            artist_tags=self.artist_tags,
            artist_entities=self.artist_entities,
            artist_names=self.artist_names,
            artist_tag_weights=self.artist_tag_weights,
            tag_labels=self.tag_labels,
            taggings=self.taggings,
        )

    def without_taggings_of(self, held_out: torch.Tensor) -> MusicTensors:
        """The same tensors with every tagging of a held-out (listener, artist) pair removed.

        Artist-tag edges and their weights (taggers per edge) are recounted from the taggings that
        remain. An edge whose known taggings were all held out disappears; an edge the catalogue
        holds without any tagging here (applied by listeners of other nodes) stays with weight 0,
        since nothing this node evaluates on produced it. Without ``taggings`` nothing changes.
        """
        if self.taggings is None:
            return self
        listener, artist, tag = self.taggings
        keys = listener * self.num_artists + artist
        held_keys = held_out[0] * self.num_artists + held_out[1]
        kept = self.taggings[:, ~((listener >= 0) & torch.isin(keys, held_keys))]
        known = self.taggings[1] * self.num_tags + self.taggings[2]
        edge_keys = self.artist_tags[0] * self.num_tags + self.artist_tags[1]
        counts = _counts_at(kept[1] * self.num_tags + kept[2], edge_keys)
        # An edge stays if a remaining tagging supports it, or if no tagging here ever did.
        keep = (counts > 0) | ~torch.isin(edge_keys, known)
        return dataclasses.replace(
            self,
            artist_tags=self.artist_tags[:, keep],
            artist_tag_weights=counts[keep].float(),
            taggings=kept,
        )

    def describe(self) -> str:
        """A one-line summary, used in model cards as the data description."""
        return (
            f"{self.num_listeners} listeners, {self.num_artists} artists, "
            f"{self.num_interactions} listener-artist interactions, {self.num_tags} tags "
            f"({self.artist_tags.shape[1]} artist-tag edges), {self.num_entities} entities and "
            f"{self.num_relations} relations ({self.artist_entities.shape[1]} artist-entity triples)"
        )


def _counts_at(keys: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """How often each value of ``at`` occurs in ``keys`` (without a table the size of the key space)."""
    unique, counts = torch.unique(keys, return_counts=True)
    if unique.numel() == 0:
        return torch.zeros(at.shape, dtype=torch.long)
    position = torch.searchsorted(unique, at).clamp(max=unique.numel() - 1)
    return torch.where(unique[position] == at, counts[position], 0)


_PLURAL = {
    "listener": "listeners",
    "artist": "artists",
    "tag": "tags",
    "entity": "entities",
    "relation": "relations",
}
