"""Loading a :class:`MusicCorpus` into a node's store, or writing it to an N-Quads file.

This is the I/O edge of the music package: everything before it (readers, generator, N-Quads
text) is pure. The embedded store gets pyoxigraph's ``bulk_load`` fed from a stream, which is
several times faster than a transactional load on disk and never holds the whole text in memory;
any other store gets the same chunks through the interface's ``load``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyoxigraph import NamedNode, RdfFormat

from knowledge.music.corpus import MusicCorpus
from knowledge.music.rdf import ChunkStream, TargetGraphs, catalogue_nquads, corpus_nquads, private_nquads
from knowledge.store import EmbeddedStore, KnowledgeStore

__all__ = ["ImportSummary", "import_corpus", "write_nquads"]

Progress = Callable[[int], object]


@dataclass(frozen=True)
class ImportSummary:
    """Quads written into each target graph (duplicates of triples already there included).

    Counted from the text as it streams past rather than by querying the store afterwards, which
    would cost a scan of both graphs.
    """

    catalogue_quads: int
    private_quads: int


class _LineCounter:
    """Counts N-Quads lines in the chunks it passes on, and reports records to ``progress``."""

    def __init__(self, progress: Progress | None):
        self.lines = 0
        self._progress = progress

    def __call__(self, chunks: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        for records, data in chunks:
            self.lines += data.count(b"\n")
            if self._progress is not None:
                self._progress(records)
            yield records, data


def import_corpus(
    store: KnowledgeStore,
    corpus: MusicCorpus,
    graphs: TargetGraphs,
    *,
    listeners: Collection[str] | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    phase: Callable[[str], object] | None = None,
) -> ImportSummary:
    """Add the catalogue and (a slice of) the private data to ``store``; ``replace`` clears both first.

    ``progress`` gets record counts as the store reads them; ``phase`` is told when the work moves on
    ("catalogue", "private", "compacting"), since indexing continues after the last record is read.
    """
    if replace:
        store.clear(NamedNode(graphs.catalogue))
        store.clear(NamedNode(graphs.private))
    written = []
    parts = {
        "catalogue": catalogue_nquads(corpus, graphs.catalogue),
        "private": private_nquads(corpus, graphs.private, listeners),
    }
    for name, chunks in parts.items():
        if phase is not None:
            phase(name)
        counter = _LineCounter(progress)
        _load(store, counter(chunks))
        written.append(counter.lines)
    if isinstance(store, EmbeddedStore):
        # Bulk loading leaves many small files behind; compacting them now makes the first reads
        # (graph -> tensors) two to three times faster, for a few seconds here.
        if phase is not None:
            phase("compacting")
        store.native.optimize()
        store.flush()
    return ImportSummary(*written)


def _load(store: KnowledgeStore, chunks: Iterator[tuple[int, bytes]]) -> None:
    if isinstance(store, EmbeddedStore):
        stream = io.BufferedReader(ChunkStream(chunks), buffer_size=1 << 20)
        # lenient: the writer validated every IRI (see knowledge.music.rdf); saves a third of the time
        store.native.bulk_load(stream, RdfFormat.N_QUADS, lenient=True)
    else:
        for _, data in chunks:
            store.load(data, format=RdfFormat.N_QUADS)


def write_nquads(
    path: Path,
    corpus: MusicCorpus,
    graphs: TargetGraphs,
    *,
    listeners: Collection[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the corpus as one N-Quads file; return the number of quads (lines) written."""
    counter = _LineCounter(progress)
    with open(path, "wb") as out:
        for _, data in counter(corpus_nquads(corpus, graphs, listeners)):
            out.write(data)
    return counter.lines
