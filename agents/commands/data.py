"""``spore data``: import Last.fm-2k (+ KGCN Freebase) or a synthetic music graph into a node's store.

The catalogue (artists, tags, knowledge graph) always goes in whole; the private graph can take a
slice of the listeners (``--shard i/n``, ``--listeners-subset``), which is how listeners are split
across the nodes of a learning group.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from knowledge.music.corpus import MusicCorpus
from knowledge.music.rdf import DEFAULT_NODE
from knowledge.music.tsv import MusicDataError

DEFAULT_STORE = Path("var") / "store"


class UnreadableInput(click.ClickException):
    """Missing or unreadable input (data directory, file, store): exit status 2."""

    exit_code = 2


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, slash, count = value.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise click.BadParameter("write i/n, such as 0/8 (0-based shard i of n)", param_hint="--shard")
    shard = int(index), int(count)
    if shard[1] < 1 or shard[0] >= shard[1]:
        raise click.BadParameter(f"{value}: need 0 <= i < n", param_hint="--shard")
    return shard


def _parse_subset(value: str | None) -> set[str] | None:
    """``1,2,3`` or ``@FILE`` with one listener id per line."""
    if value is None:
        return None
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise UnreadableInput(f"cannot read {value[1:]}: {error.strerror or error}") from None
        items = text.split()
    else:
        items = value.split(",")
    return {item.strip() for item in items if item.strip()}


common_options = [
    click.option(
        "--store",
        "store_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SPORE_STORE",
        help=f"The node's store directory (created if missing). Env: SPORE_STORE. Default: {DEFAULT_STORE}.",
    ),
    click.option(
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write N-Quads to this file instead of loading a store.",
    ),
    click.option(
        "--node",
        envvar="SPORE_NODE",
        default=DEFAULT_NODE,
        show_default=True,
        help="The node IRI; the data goes to {node}/graphs/catalogue and .../private. Env: SPORE_NODE.",
    ),
    click.option("--shard", help="Only listeners of shard i of n (0-based, round-robin by id), e.g. 0/8."),
    click.option("--listeners-subset", help="Only these listener ids: '2,3,5' or @FILE (one id per line)."),
    click.option("--replace", is_flag=True, help="Clear the node's catalogue and private graphs first."),
]


F = TypeVar("F", bound=Callable[..., Any])


def with_common_options(command: F) -> F:
    """The options both import commands share (where the data goes and which listeners)."""
    for option in reversed(common_options):
        command = option(command)
    return command


def _write(
    corpus: MusicCorpus,
    *,
    store_dir: Path | None,
    output: Path | None,
    node: str,
    shard: str | None,
    listeners_subset: str | None,
    replace: bool,
) -> None:
    """The shared tail of both commands: select listeners, load or write, report."""
    from knowledge.music.importer import import_corpus, write_nquads
    from knowledge.music.rdf import TargetGraphs, record_count, select_listeners
    from knowledge.store import StoreError, open_store

    if store_dir is not None and output is not None:
        raise click.UsageError("give --store or --output, not both")
    try:
        graphs = TargetGraphs.for_node(node)
    except ValueError as error:
        raise click.BadParameter(f"not an IRI: {node!r} ({error})", param_hint="--node") from None
    subset = _parse_subset(listeners_subset)
    parts = _parse_shard(shard)
    listeners: Collection[str] | None = None
    if subset is not None or parts is not None:
        listeners = select_listeners(corpus.listener_keys(), shard=parts, subset=subset)
        if subset is not None and not listeners:
            raise click.BadParameter(
                "none of these listeners is in the data", param_hint="--listeners-subset"
            )
    started = time.perf_counter()
    total = record_count(corpus, listeners)

    def bar() -> tqdm:  # type: ignore[type-arg]
        return tqdm(total=total, unit=" records", file=sys.stderr, leave=False)

    if output is not None:
        try:
            with bar() as progress:
                quads = write_nquads(output, corpus, graphs, listeners=listeners, progress=progress.update)
        except OSError as error:
            raise UnreadableInput(f"cannot write {output}: {error.strerror or error}") from None
        where = f"{quads} quads to {output}"
    else:
        directory = store_dir if store_dir is not None else DEFAULT_STORE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open_store(directory) as store, bar() as progress:
                summary = import_corpus(
                    store,
                    corpus,
                    graphs,
                    listeners=listeners,
                    replace=replace,
                    progress=progress.update,
                    phase=progress.set_description,
                )
        except (OSError, StoreError) as error:
            reason = getattr(error, "message", None) or getattr(error, "strerror", None) or error
            raise UnreadableInput(f"cannot write the store in {directory}: {reason}") from None
        where = (
            f"{summary.catalogue_quads} quads into {graphs.catalogue}, "
            f"{summary.private_quads} into {graphs.private} (store {directory})"
        )
    elapsed = time.perf_counter() - started
    counts = corpus.counts()
    if listeners is not None:
        counts["listeners on this node"] = len(listeners)
    click.echo(f"{corpus.title}:")
    for name, count in counts.items():
        click.echo(f"  {name}: {count}")
    for line in corpus.report.lines():
        if "skipped" in line or "re-decoded" in line:
            click.echo(f"  {line}")
    click.echo(f"wrote {where} in {elapsed:.1f} s")


@click.group()
def data() -> None:
    """Music data: import Last.fm-2k or generate a synthetic music graph into a node's store."""


@data.group(name="import")
def import_group() -> None:
    """Import a published music data set."""


@import_group.command(name="lastfm")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--freebase",
    type=click.Path(path_type=Path),
    help="The KGCN Freebase directory (item_index2entity_id.txt, kg.txt) for the artist knowledge graph.",
)
@with_common_options
def lastfm(path: Path, freebase: Path | None, **options: Any) -> None:
    """Import the HetRec 2011 Last.fm-2k files in PATH (research use only; see docs/data.md).

    \b
    Example:
      spore data import lastfm ../shared/data/lastfm-2k --freebase ../shared/data/kgcn-music \\
          --store var/store
    """
    from knowledge.music.lastfm import read_lastfm

    click.echo(f"reading {path}" + (f" and {freebase}" if freebase else ""), err=True)
    try:
        corpus = read_lastfm(path, freebase=freebase)
    except MusicDataError as error:
        raise UnreadableInput(str(error)) from None
    _write(corpus, **options)


@data.command()
@click.option("--listeners", type=click.IntRange(1), required=True, help="How many listeners.")
@click.option(
    "--artists", type=click.IntRange(2), default=None, help="How many artists [default: 5 x listeners]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same graph.")
@click.option(
    "--communities", type=click.IntRange(1), help="Communities of taste [default: ~sqrt(listeners)/3]."
)
@click.option(
    "--artists-per-listener",
    type=click.FloatRange(1),
    default=40.0,
    show_default=True,
    help="Mean per listener.",
)
@with_common_options
def synth(
    listeners: int,
    artists: int | None,
    seed: int,
    communities: int | None,
    artists_per_listener: float,
    **options: Any,
) -> None:
    """Generate a seeded synthetic music graph with the shape of the Last.fm import.

    \b
    Example:
      spore data synth --listeners 500 --artists 3000 --seed 7 --store var/store
    """
    from knowledge.music.synth import SynthParams, synthesize

    params = SynthParams(
        listeners=listeners,
        artists=artists if artists is not None else 5 * listeners,
        seed=seed,
        communities=communities,
        artists_per_listener=artists_per_listener,
    )
    try:
        corpus = synthesize(params)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _write(corpus, **options)


@data.command()
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SPORE_STORE",
    help=f"The node's store directory. Env: SPORE_STORE. Default: {DEFAULT_STORE}.",
)
@click.option("--node", envvar="SPORE_NODE", default=DEFAULT_NODE, show_default=True, help="The node IRI.")
def describe(store_dir: Path | None, node: str) -> None:
    """Say what a recommender would train on: the node's graphs as tensors (read-only)."""
    from knowledge.store import EmbeddedStore, StoreError
    from models.graph import load_music_tensors

    directory = store_dir if store_dir is not None else DEFAULT_STORE
    try:
        with EmbeddedStore(directory, read_only=True) as store:
            tensors = load_music_tensors(store, node)
    except StoreError as error:
        raise UnreadableInput(f"cannot read the store in {directory}: {error.message}") from None
    click.echo(tensors.describe())
