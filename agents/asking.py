"""The model side of asking a node from the Fediverse: a node's latest snapshot as an ArtistRecommender.

:mod:`federation.mentions` and :mod:`federation.answering` read asks and write replies without torch;
this module gives them what a node knows: the catalogue's names (:class:`knowledge.music.names.NameIndex`)
and a :class:`models.recommend.RecommendationEngine` over the newest snapshot the node has saved,
reloaded when a newer one appears, so a reply always comes from the model the node has now. A served
node answers from the same in-memory model its web page uses (:func:`recommenders_from_registry`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from federation.mentions import ArtistRecommender, Ranked
from knowledge.music.names import NameIndex
from models.card import snapshot_iri
from models.data import MusicTensors
from models.pipeline import graph_for_model
from models.recommend import RecommendationEngine
from models.snapshot import SNAPSHOT_SUFFIX, Snapshot, SnapshotError, load_snapshot

if TYPE_CHECKING:
    from federation.web import ModelRegistry

__all__ = ["LatestSnapshot", "SnapshotRecommender", "recommenders_by_node", "recommenders_from_registry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotRecommender:
    """Recommendations from one snapshot for people who name artists they like (fold-in)."""

    engine: RecommendationEngine
    names: NameIndex
    snapshot: str

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, tensors: MusicTensors, *, node: str | None = None
    ) -> SnapshotRecommender:
        engine = RecommendationEngine(snapshot.model, graph_for_model(snapshot.model, tensors), tensors)
        names = NameIndex(zip(tensors.artists, tensors.artist_names, strict=True))
        return cls(engine, names, str(snapshot_iri(snapshot.sha256, node)))

    def recommend(self, artist_iris: Sequence[str], k: int) -> list[Ranked]:
        tensors = self.engine.tensors
        ranked = self.engine.for_artists([tensors.artist_index(iri) for iri in artist_iris], k)
        return [Ranked(entry.position, entry.iri, entry.name, entry.score) for entry in ranked]


@dataclass
class LatestSnapshot:
    """The newest ``<sha256>.safetensors`` in a node's snapshot directory, loaded once per file.

    Called for every ask: a directory listing is cheap next to loading a model, so the model is
    rebuilt only when a newer file appears; a file that fails its hash or row check is logged and
    skipped (the previous one keeps answering).
    """

    directory: Path
    tensors: MusicTensors
    node: str | None = None
    _current: tuple[Path, float, SnapshotRecommender] | None = field(default=None, init=False)

    def __call__(self) -> SnapshotRecommender | None:
        files = sorted(
            Path(self.directory).glob(f"*{SNAPSHOT_SUFFIX}"),
            key=lambda path: (path.stat().st_mtime, path.name),
            reverse=True,
        )
        for path in files:
            modified = path.stat().st_mtime
            if self._current is not None and self._current[:2] == (path, modified):
                return self._current[2]
            try:
                recommender = SnapshotRecommender.from_snapshot(
                    load_snapshot(path, self.tensors), self.tensors, node=self.node
                )
            except SnapshotError as error:
                log.warning("not answering asks from %s: %s", path.name, error)
                continue
            self._current = (path, modified, recommender)
            return recommender
        return self._current[2] if self._current is not None else None


def recommenders_by_node(
    sources: Mapping[str, Callable[[], ArtistRecommender | None]],
) -> Callable[[str], ArtistRecommender | None]:
    """``install_asking``'s lookup from a node name to where its current model comes from."""

    def lookup(name: str) -> ArtistRecommender | None:
        source = sources.get(name)
        return source() if source is not None else None

    return lookup


def recommenders_from_registry(models: ModelRegistry) -> Callable[[str], ArtistRecommender | None]:
    """``install_asking``'s lookup over the web page's :class:`~federation.web.ModelRegistry`.

    One source of truth: a served node answers asks with the model its page shows, rebuilt from its
    current weights after each round (``agents.web_models``), never from a snapshot file that may lag.
    A node without a model yet gives None, which the asking service answers with a polite "not yet".
    """

    def lookup(name: str) -> ArtistRecommender | None:
        try:
            model = models.get(name)
        except Exception:  # a broken model must still get the asker a polite reply, not silence
            log.exception("node %s cannot answer asks: its model failed to build", name)
            return None
        return None if model is None else SnapshotRecommender(model.engine, model.names, model.snapshot)

    return lookup
