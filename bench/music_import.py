"""Music import benchmark: Last.fm-2k + KGCN Freebase into a node's on-disk store, and back as tensors.

Stages, each the median of repeated runs after a discarded warm-up, every run into a fresh store:

* raw read: the bytes of every input file (the floor any importer pays);
* read: parsing the files into a corpus (``knowledge.music.lastfm``);
* N-Quads: writing the corpus as N-Quads text (``knowledge.music.rdf``);
* import: read + N-Quads + streaming ``bulk_load`` + compaction (what ``spore data import lastfm``
  does; target: under 30 s);
* baseline: the same N-Quads loaded with pyoxigraph's ordinary transactional ``Store.load`` into a
  fresh on-disk store (run once: it is slow), so the import time is a ratio;
* graph -> tensors: ``models.graph.load_music_tensors`` on the imported store.

Without the licensed files (``$SPORE_DATA_DIR``, default ../shared/data) it runs on a synthetic
graph of the same size and says so.

    python bench/music_import.py                     # about 3 minutes
    python bench/music_import.py --repeat 1 --json music_import.json
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyoxigraph

from knowledge.music.corpus import MusicCorpus
from knowledge.music.importer import import_corpus
from knowledge.music.kgcn import KGCN_FILES
from knowledge.music.lastfm import LASTFM_FILES, read_lastfm
from knowledge.music.rdf import DEFAULT_NODE, TargetGraphs, corpus_nquads
from knowledge.music.synth import SynthParams, synthesize
from knowledge.store import EmbeddedStore
from models.graph import load_music_tensors

from common import ROOT, measure, print_table, write_json

GRAPHS = TargetGraphs.for_node(DEFAULT_NODE)


def _cpu() -> float:
    """CPU seconds of this process, all threads (the bulk loader is multi-threaded)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def data_dir() -> Path:
    return Path(os.environ.get("SPORE_DATA_DIR", ROOT.parent / "shared" / "data"))


class FreshStores:
    """A new on-disk store directory per run, removed afterwards."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="spore-bench-music-"))
        self.count = 0
        self.last: Path | None = None

    def new(self) -> Path:
        if self.last is not None:
            shutil.rmtree(self.last, ignore_errors=True)
        self.count += 1
        self.last = self.root / f"store-{self.count}"
        return self.last

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per stage (median reported)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the slow transactional load")
    parser.add_argument("--synthetic", action="store_true", help="use a synthetic graph even if data exists")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    # the reader's one warning per file (1,538 taggings of unknown artists) would repeat every run
    logging.getLogger("knowledge.music").setLevel(logging.ERROR)

    lastfm, kgcn = data_dir() / "lastfm-2k", data_dir() / "kgcn-music"
    real = not args.synthetic and (lastfm / "artists.dat").is_file() and (kgcn / "kg.txt").is_file()
    if real:
        source = f"Last.fm-2k + KGCN Freebase ({data_dir()})"
        files = [lastfm / name for name in LASTFM_FILES] + [kgcn / name for name in KGCN_FILES]

        def read() -> MusicCorpus:
            return read_lastfm(lastfm, freebase=kgcn)
    else:
        why = "as asked" if args.synthetic else "licensed files not found"
        source = f"synthetic graph at Last.fm-2k size ({why})"
        files = []
        params = SynthParams(listeners=1892, artists=17632, seed=0)

        def read() -> MusicCorpus:
            return synthesize(params)

    print(f"data: {source}", file=sys.stderr)
    corpus = read()
    text = b"".join(chunk for _, chunk in corpus_nquads(corpus, GRAPHS))
    quads = text.count(b"\n")
    stores = FreshStores()
    results: dict[str, Any] = {"source": source, "quads": quads, "counts": corpus.counts()}
    rows: list[list[object]] = []

    cpu_seconds: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], object], *, repeat: int = args.repeat, warmup: int = 1) -> float:
        samples: list[float] = []

        def timed() -> None:
            before = _cpu()
            fn()
            samples.append(_cpu() - before)

        timing = measure(timed, repeat=repeat, warmup=warmup)
        cpu = statistics.median(samples[warmup:])
        cpu_seconds[name] = cpu
        results[name] = timing | {"repeat": repeat, "cpu_median_s": cpu, "load_average": os.getloadavg()}
        print(f"  {name}: {timing['median_s']:.2f} s (cpu {cpu:.2f} s)", file=sys.stderr)
        return timing["median_s"]

    try:
        raw = stage("raw read", lambda: [path.read_bytes() for path in files]) if files else None
        parse = stage("read", read)
        write = stage("n-quads", lambda: sum(len(chunk) for _, chunk in corpus_nquads(corpus, GRAPHS)))

        def full_import() -> None:
            with EmbeddedStore(stores.new()) as store:
                import_corpus(store, read(), GRAPHS)

        total = stage("import", full_import)
        imported = stores.last
        assert imported is not None
        keep = stores.root / "imported"
        shutil.move(str(imported), keep)
        stores.last = None

        baseline = None
        if not args.skip_baseline:

            def transactional() -> None:
                store = pyoxigraph.Store(str(stores.new()))
                store.load(text, pyoxigraph.RdfFormat.N_QUADS)
                store.flush()

            baseline = stage("baseline: transactional Store.load", transactional, repeat=1, warmup=0)

        with EmbeddedStore(keep, read_only=True) as store:
            tensors_time = stage("graph -> tensors", lambda: load_music_tensors(store, DEFAULT_NODE))
            results["tensors"] = load_music_tensors(store, DEFAULT_NODE).describe()
    finally:
        stores.close()

    load = os.getloadavg()[0]
    print(f"\n{source}: {quads:,} quads; medians of {args.repeat} after a warm-up; load average {load:.1f}")
    print("(wall seconds suffer when other jobs share the cores; CPU seconds are this process's own)\n")
    if raw is not None:
        rows.append(["raw read of the input files", raw, cpu_seconds["raw read"], ""])
    rows.append(["read files into a corpus", parse, cpu_seconds["read"], ""])
    rows.append(["write N-Quads text", write, cpu_seconds["n-quads"], ""])
    rows.append(
        ["import (read + N-Quads + bulk load + compact)", total, cpu_seconds["import"], "target < 30 s"]
    )
    if baseline is not None:
        name = "baseline: transactional Store.load"
        rows.append(
            [
                "baseline: N-Quads via transactional Store.load",
                baseline,
                cpu_seconds[name],
                f"{baseline / total:.1f}x",
            ]
        )
    rows.append(["graph -> tensors (SPARQL, disk store)", tensors_time, cpu_seconds["graph -> tensors"], ""])
    print_table(["stage", "wall s", "cpu s", "note"], rows)
    print(f"\ntensors: {results['tensors']}")
    write_json(args.json, "music_import", results)


if __name__ == "__main__":
    main()
