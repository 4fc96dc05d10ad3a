"""A :class:`MusicCorpus` as N-Quads: the public catalogue and a node's private listening graph.

Written as text rather than through an RDF library because text is what the stores bulk-load
fastest (pyoxigraph parses N-Quads in Rust); building 1.5 million term objects in Python first
would take longer than the whole import is allowed to. Every IRI written here comes from a
validated id or a checked web address, and literals are escaped per the N-Triples grammar, which
is what makes it safe for the importer to skip the store's own IRI validation (``lenient``), a
third of the load time.

Shape (see docs/data.md): artists ``schema:MusicGroup``, tags ``skos:Concept``, aggregated
``spore:hasTag`` links (per-pair counts stay in the private taggings: reifying 110k counts would
add a fifth of the import's triples), knowledge-graph triples with an artist's own IRI in place of
its entity, listeners ``schema:Person`` with ``spore:Listening`` and ``spore:Tagging`` resources
and ``schema:knows``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from pyoxigraph import NamedNode

from knowledge.graphs import GraphKind, graph_iri
from knowledge.music import vocab as v
from knowledge.music.corpus import MusicCorpus

__all__ = [
    "DEFAULT_NODE",
    "ChunkStream",
    "TargetGraphs",
    "catalogue_nquads",
    "corpus_nquads",
    "literal",
    "private_nquads",
    "select_listeners",
]

DEFAULT_NODE = "http://127.0.0.1:8000/nodes/local"
"""The node a single-node setup imports into when no node IRI is given (``spore data --node``)."""

CHUNK_RECORDS = 20_000
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class TargetGraphs:
    """The named graphs an import writes into: the public catalogue and the private graph."""

    catalogue: str
    private: str

    @classmethod
    def for_node(cls, node_iri: str) -> TargetGraphs:
        """A node's catalogue and private graphs, named as :class:`knowledge.graphs.NodeGraphs` does."""
        node = NamedNode(node_iri)
        return cls(
            graph_iri(node, GraphKind.CATALOGUE).value,
            graph_iri(node, GraphKind.PRIVATE).value,
        )


def literal(text: str) -> str:
    """An N-Triples string literal; every other character, emoji and combining marks included, stays."""
    return '"' + text.translate(_ESCAPES) + '"'


def select_listeners(
    keys: Iterable[str], *, shard: tuple[int, int] | None = None, subset: Collection[str] | None = None
) -> list[str]:
    """The listeners one node holds: a given subset and/or shard ``i`` of ``n`` (0-based).

    Shards deal listeners round-robin in the given (sorted) order, so ``n`` nodes get sizes that
    differ by at most one and every listener lands on exactly one node.
    """
    chosen = [key for key in keys if subset is None or key in subset]
    if shard is not None:
        index, count = shard
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
        chosen = chosen[index::count]
    return chosen


def _natural(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def _quad(subject: str, predicate: str, obj: str, graph: str) -> str:
    return f"<{subject}> <{predicate}> {obj} <{graph}> .\n"


def _chunks(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, bytes]]:
    """Group (records, text) pieces into byte chunks of about CHUNK_RECORDS records."""
    buffer: list[str] = []
    records = 0
    for count, text in lines:
        buffer.append(text)
        records += count
        if records >= CHUNK_RECORDS:
            yield records, "".join(buffer).encode("utf-8")
            buffer, records = [], 0
    if buffer:
        yield records, "".join(buffer).encode("utf-8")


def _catalogue_lines(corpus: MusicCorpus, g: str) -> Iterator[tuple[int, str]]:
    scheme = corpus.scheme
    entity_artist = {entity: artist for artist, entity in corpus.artist_entities.items()}

    def node(entity: str) -> str:
        artist = entity_artist.get(entity)
        return scheme.artist(artist) if artist is not None else scheme.entity(entity)

    tag_scheme = scheme.tag_scheme()
    entity_type = f"<{v.KNOWLEDGE_ENTITY_CLASS}>"
    yield 0, _quad(tag_scheme, v.RDF_TYPE, f"<{v.CONCEPT_SCHEME}>", g)
    yield 0, _quad(tag_scheme, v.TITLE, literal(f"Tags of {corpus.title}"), g)
    for artist in corpus.artists:
        iri = scheme.artist(artist.key)
        text = _quad(iri, v.RDF_TYPE, f"<{v.MUSIC_GROUP}>", g) + _quad(iri, v.NAME, literal(artist.name), g)
        if artist.url:
            text += _quad(iri, v.URL, f"<{artist.url}>", g)
        if artist.image:
            text += _quad(iri, v.IMAGE, f"<{artist.image}>", g)
        entity = corpus.artist_entities.get(artist.key)
        if entity is not None:
            text += _quad(iri, v.KNOWLEDGE_ENTITY, f"<{scheme.entity(entity)}>", g)
            text += _quad(scheme.entity(entity), v.RDF_TYPE, entity_type, g)
        yield 1, text
    for tag in corpus.tags:
        iri = scheme.tag(tag.key)
        yield (
            1,
            (
                _quad(iri, v.RDF_TYPE, f"<{v.CONCEPT}>", g)
                + _quad(iri, v.PREF_LABEL, literal(tag.label), g)
                + _quad(iri, v.IN_SCHEME, f"<{tag_scheme}>", g)
            ),
        )
    # Public aggregate of the individual taggings, as Last.fm publishes an artist's top tags.
    for artist_key, tag_key in sorted({(row.artist, row.tag) for row in corpus.taggings}):
        yield 1, _quad(scheme.artist(artist_key), v.HAS_TAG, f"<{scheme.tag(tag_key)}>", g)
    for name in sorted({triple.relation for triple in corpus.knowledge}):
        iri = scheme.relation(name)
        yield (
            0,
            (
                _quad(iri, v.RDF_TYPE, f"<{v.RDF_PROPERTY}>", g)
                + _quad(iri, v.RDFS_LABEL, literal(name), g)
                + _quad(iri, v.RDFS_SUBPROPERTY_OF, f"<{v.KNOWLEDGE_RELATION}>", g)
            ),
        )
    others = {triple.tail for triple in corpus.knowledge if triple.tail not in entity_artist}
    for entity in sorted(others, key=_natural):
        yield 0, _quad(scheme.entity(entity), v.RDF_TYPE, entity_type, g)
    for entity, label in sorted(corpus.entity_labels.items()):
        yield 0, _quad(node(entity), v.RDFS_LABEL, literal(label), g)
    for head, relation, tail in corpus.knowledge:
        yield 1, _quad(node(head), scheme.relation(relation), f"<{node(tail)}>", g)


def _private_lines(
    corpus: MusicCorpus, g: str, listeners: Collection[str] | None
) -> Iterator[tuple[int, str]]:
    scheme = corpus.scheme
    keep = None if listeners is None else set(listeners)
    chosen = [key for key in corpus.listener_keys() if keep is None or key in keep]
    person = f"<{v.PERSON}>"
    for key in chosen:
        yield 1, _quad(scheme.listener(key), v.RDF_TYPE, person, g)
    # The two loops below write 1.3 million quads for Last.fm-2k; one f-string per record with the
    # fixed parts precomputed is about twice as fast as assembling quads term by term.
    end = f" <{g}> .\n"
    a, listener_p, artist_p = f" <{v.RDF_TYPE}> ", f" <{v.LISTENER}> ", f" <{v.ARTIST}> "
    plays_p, tag_p, date_p = f" <{v.PLAY_COUNT}> ", f" <{v.TAG}> ", f" <{v.DATE}> "
    listening_type, tagging_type = f"<{v.LISTENING}>", f"<{v.TAGGING}>"
    integer, date = f"^^<{v.XSD_INTEGER}>", f"^^<{v.XSD_DATE}>"
    for row in corpus.listenings:
        if keep is not None and row.listener not in keep:
            continue
        iri, who, what = (
            scheme.listening(row.listener, row.artist),
            scheme.listener(row.listener),
            scheme.artist(row.artist),
        )
        yield (
            1,
            (
                f"<{iri}>{a}{listening_type}{end}<{iri}>{listener_p}<{who}>{end}"
                f'<{iri}>{artist_p}<{what}>{end}<{iri}>{plays_p}"{row.plays}"{integer}{end}'
            ),
        )
    for tagging in corpus.taggings:
        if keep is not None and tagging.listener not in keep:
            continue
        iri = scheme.tagging(tagging.listener, tagging.artist, tagging.tag)
        who, what = scheme.listener(tagging.listener), scheme.artist(tagging.artist)
        tag = scheme.tag(tagging.tag)
        yield (
            1,
            (
                f"<{iri}>{a}{tagging_type}{end}<{iri}>{listener_p}<{who}>{end}<{iri}>{artist_p}<{what}>{end}"
                f'<{iri}>{tag_p}<{tag}>{end}<{iri}>{date_p}"{tagging.date.isoformat()}"{date}{end}'
            ),
        )
    for friendship in corpus.friendships:
        if keep is None or friendship.listener in keep:
            who, friend = scheme.listener(friendship.listener), scheme.listener(friendship.friend)
            yield 1, _quad(who, v.KNOWS, f"<{friend}>", g)


def catalogue_nquads(corpus: MusicCorpus, graph: str) -> Iterator[tuple[int, bytes]]:
    """(records, N-Quads bytes) chunks of the public catalogue graph."""
    return _chunks(_catalogue_lines(corpus, graph))


def private_nquads(
    corpus: MusicCorpus, graph: str, listeners: Collection[str] | None = None
) -> Iterator[tuple[int, bytes]]:
    """(records, N-Quads bytes) chunks of the private graph, for ``listeners`` only when given."""
    return _chunks(_private_lines(corpus, graph, listeners))


def corpus_nquads(
    corpus: MusicCorpus, graphs: TargetGraphs, listeners: Collection[str] | None = None
) -> Iterator[tuple[int, bytes]]:
    """The catalogue (always whole) followed by the private graph (optionally one slice of listeners)."""
    yield from catalogue_nquads(corpus, graphs.catalogue)
    yield from private_nquads(corpus, graphs.private, listeners)


def record_count(corpus: MusicCorpus, listeners: Collection[str] | None = None) -> int:
    """How many records :func:`corpus_nquads` reports, for a progress bar's total."""
    pairs = len({(row.artist, row.tag) for row in corpus.taggings})
    catalogue = len(corpus.artists) + len(corpus.tags) + pairs + len(corpus.knowledge)
    if listeners is None:
        private = len(corpus.listener_keys()) + len(corpus.listenings) + len(corpus.taggings)
        return catalogue + private + len(corpus.friendships)
    keep = set(listeners)
    private = len(keep & set(corpus.listener_keys()))
    private += sum(1 for row in corpus.listenings if row.listener in keep)
    private += sum(1 for row in corpus.taggings if row.listener in keep)
    private += sum(1 for row in corpus.friendships if row.listener in keep)
    return catalogue + private


class ChunkStream(io.RawIOBase):
    """A readable binary stream over (records, bytes) chunks, so a store can bulk-load a generator.

    ``on_chunk`` is called with each chunk's record count as the store pulls it, which is what
    makes a progress bar follow the actual load rather than the text generation.
    """

    def __init__(self, chunks: Iterable[tuple[int, bytes]], on_chunk: Callable[[int], object] | None = None):
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._on_chunk = on_chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                records, data = next(self._chunks)
            except StopIteration:
                return 0
            if self._on_chunk is not None:
                self._on_chunk(records)
            self._pending = memoryview(data)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
