"""A node's graphs as :class:`~models.data.MusicTensors`, through the named queries ``music-*.rq``.

Interactions (with play counts) come from the node's private graph; artists, tags, artist-tag links
and knowledge-graph triples from its catalogue. Row ids are positions in the *sorted* IRI lists, so
the same graphs always give the same ids and a model's rows trace back to IRIs (``MusicTensors.iri``).

Reading is the slow part on a disk store (decoding IRIs dominates), so the large results travel as
SPARQL TSV text parsed by one regular expression rather than as one Python object per term.
Turning rows into tensors is a pure function (:func:`tensors_from_rows`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from pyoxigraph import NamedNode, QueryResultsFormat, QuerySolutions

import queries
from knowledge.graphs import GraphKind, NodeGraphs
from knowledge.music.rdf import DEFAULT_NODE
from knowledge.store import KnowledgeStore
from models.data import MusicTensors

__all__ = ["GraphRows", "load_music_tensors", "music_tensors", "read_rows", "tensors_from_rows"]

logger = logging.getLogger(__name__)


@dataclass
class GraphRows:
    """What the music queries returned, as plain Python values (IRIs without angle brackets)."""

    artists: list[tuple[str, str]]
    tags: list[tuple[str, str]]
    listenings: list[tuple[str, str, int]]
    artist_tags: list[tuple[str, str]]
    artist_entities: list[tuple[str, str, str]]
    taggings: list[tuple[str, str, str]] | None = None
    dropped: Counter[str] = field(default_factory=Counter)


_IRI = r"<([^>\t]*)>"
_INTEGER = r'"?([+-]?\d+)(?:"\^\^<[^>]*>)?'
_ROW_PATTERNS: dict[str, re.Pattern[str]] = {}


def _tsv(result: object, shape: str) -> list[tuple[str, ...]]:
    """Rows of a SELECT result parsed from SPARQL TSV, one regular expression over the whole text.

    ``shape`` names the columns: ``i`` an IRI, ``n`` an integer (``"ii"``, ``"iin"``, ``"iii"``).
    A row with another kind of term (a blank node or literal where an IRI belongs) is skipped with a
    warning: someone else's triples in the catalogue must not stop a node from training.
    """
    if not isinstance(result, QuerySolutions):
        raise TypeError("expected SELECT results")
    pattern = _ROW_PATTERNS.get(shape)
    if pattern is None:
        columns = "\t".join(_IRI if kind == "i" else _INTEGER for kind in shape)
        pattern = _ROW_PATTERNS[shape] = re.compile(f"^{columns}$", re.MULTILINE)
    text = (result.serialize(format=QueryResultsFormat.TSV) or b"").decode("utf-8")
    body = text.split("\n", 1)[1] if "\n" in text else ""
    rows = pattern.findall(body)
    expected = body.count("\n") + (0 if not body or body.endswith("\n") else 1)
    if len(rows) != expected:
        logger.warning("graph to tensors: skipped %d rows with unexpected terms", expected - len(rows))
    return [row if isinstance(row, tuple) else (row,) for row in rows]


def _strings(result: object) -> list[tuple[str, str]]:
    """(IRI, string) rows through pyoxigraph's terms, which unescape literals exactly."""
    if not isinstance(result, QuerySolutions):
        raise TypeError("expected SELECT results")
    return [(row[0].value, row[1].value if row[1] is not None else "") for row in result]


def read_rows(store: KnowledgeStore, node: str, *, tag_weights: bool = False) -> GraphRows:
    """Run the music queries against ``node``'s catalogue and private graphs in ``store``."""
    graphs = NodeGraphs(NamedNode(node), store)
    catalogue, private = graphs.graph(GraphKind.CATALOGUE), graphs.graph(GraphKind.PRIVATE)

    def run(name: str, graph: NamedNode) -> object:
        return store.query(queries.load(name), default_graph=graph)

    listenings = [(a, b, int(c)) for a, b, c in _tsv(run("music-listenings", private), "iin")]
    taggings = _tsv(run("music-taggings", private), "iii") if tag_weights else None
    return GraphRows(
        artists=_strings(run("music-artists", catalogue)),
        tags=_strings(run("music-tags", catalogue)),
        listenings=listenings,
        artist_tags=_tsv(run("music-artist-tags", catalogue), "ii"),  # type: ignore[arg-type]
        artist_entities=_tsv(run("music-artist-entities", catalogue), "iii"),  # type: ignore[arg-type]
        taggings=taggings,  # type: ignore[arg-type]
    )


def _edges(pairs: Iterable[tuple[int, ...]], rows: int) -> torch.Tensor:
    edges = torch.tensor(list(pairs), dtype=torch.long)
    return edges.reshape(-1, rows).t().contiguous()


def tensors_from_rows(rows: GraphRows) -> MusicTensors:
    """Index rows by sorted IRIs and build the tensors; rows that point outside the catalogue are dropped.

    A listener-artist pair given by several listenings (two imports of different sources, say) becomes
    one interaction with the plays summed, as the contract wants each pair once.
    """
    names = dict(sorted(rows.artists))
    artists = tuple(sorted(names))
    artist_id = {iri: i for i, iri in enumerate(artists)}
    labels = dict(sorted(rows.tags))
    tags = tuple(sorted(labels))
    tag_id = {iri: i for i, iri in enumerate(tags)}

    plays: dict[tuple[str, int], int] = {}
    for listener, artist, count in rows.listenings:
        a = artist_id.get(artist)
        if a is None:
            rows.dropped["listenings of artists not in the catalogue"] += 1
            continue
        plays[(listener, a)] = plays.get((listener, a), 0) + count
    listeners = tuple(sorted({listener for listener, _ in plays}))
    listener_id = {iri: i for i, iri in enumerate(listeners)}
    ordered = sorted((listener_id[listener], a, count) for (listener, a), count in plays.items())

    tag_pairs = sorted(
        {(artist_id[a], tag_id[t]) for a, t in rows.artist_tags if a in artist_id and t in tag_id}
    )
    rows.dropped["artist-tag links outside the catalogue"] += len(rows.artist_tags) - len(tag_pairs)
    weights, taggings = None, None
    if rows.taggings is not None:
        # One row per distinct tagger; a tagger without listenings here keeps a row of its own as -1.
        tagged = sorted(
            (listener_id.get(u, -1), artist_id[a], tag_id[t])
            for u, a, t in set(rows.taggings)
            if a in artist_id and t in tag_id
        )
        taggings = _edges(tagged, 3)
        taggers = Counter((a, t) for _, a, t in tagged)
        weights = torch.tensor([float(taggers[pair]) for pair in tag_pairs], dtype=torch.float32)

    known = [(a, r, e) for a, r, e in rows.artist_entities if a in artist_id]
    rows.dropped["knowledge triples about artists not in the catalogue"] += len(rows.artist_entities) - len(
        known
    )
    entities = tuple(sorted({e for _, _, e in known}))
    relations = tuple(sorted({r for _, r, _ in known}))
    entity_id = {iri: i for i, iri in enumerate(entities)}
    relation_id = {iri: i for i, iri in enumerate(relations)}
    triples = sorted({(artist_id[a], relation_id[r], entity_id[e]) for a, r, e in known})

    for reason, count in sorted(rows.dropped.items()):
        if count:
            logger.warning("graph to tensors: dropped %d %s", count, reason)
    return MusicTensors(
        listeners=listeners,
        artists=artists,
        tags=tags,
        entities=entities,
        relations=relations,
        interactions=_edges(((u, a) for u, a, _ in ordered), 2),
        play_counts=torch.tensor([float(c) for _, _, c in ordered], dtype=torch.float32),
        artist_tags=_edges(tag_pairs, 2),
        artist_entities=_edges(triples, 3),
        artist_names=tuple(names[iri] for iri in artists),
        artist_tag_weights=weights,
        tag_labels=tuple(labels[iri] for iri in tags),
        taggings=taggings,
    )


def load_music_tensors(store: KnowledgeStore, node: str, *, tag_weights: bool = False) -> MusicTensors:
    """The tensors of ``node``'s graphs in ``store``.

    ``tag_weights`` reads the node's listeners' individual taggings as well: per artist-tag edge,
    how many of them applied the tag (0 where only listeners elsewhere did), and who tagged what, so
    that a split can drop the taggings of its held-out pairs (``MusicTensors.without_taggings_of``).
    It reads every tagging, a second or more on Last.fm-2k, so it is off unless a model uses tags.
    """
    return tensors_from_rows(read_rows(store, node, tag_weights=tag_weights))


def music_tensors(
    store: KnowledgeStore, node: str = DEFAULT_NODE, *, tag_weights: bool = False
) -> MusicTensors:
    """:func:`load_music_tensors` for the default single node that ``spore data`` imports into."""
    return load_music_tensors(store, node, tag_weights=tag_weights)
