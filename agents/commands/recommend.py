"""``spore recommend``: ranked artists for a listener, or for someone who names artists they like.

The music comes from a node's store (``--store DIR``), read into tensors through the graph->tensors
SPARQL queries. The model is a snapshot file (``--snapshot PATH``, hash-checked and refused when its
rows do not match the store) or, without one, a LightGCN trained on the spot (``--epochs``, a quick
fixed budget without validation) that ``--save-snapshot DIR`` keeps as ``<sha256>.safetensors`` with
its model card beside it. The output is a ``spore:Recommendation``: a table for people, or the RDF
as JSON-LD (SPORE context) or Turtle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # torch-backed types, imported only when a command runs
    from rdflib import Graph

    from models.adjacency import ModelGraph
    from models.data import MusicTensors
    from models.recommend import RankedArtist
    from models.snapshot import Snapshot
    from models.train import TrainConfig

__all__ = ["recommend"]

DEFAULT_STORE = Path("var") / "store"


class UnreadableInput(click.ClickException):
    """The store or snapshot cannot be read: exit status 2, like ``spore validate``."""

    exit_code = 2


@click.command()
@click.option("--listener", metavar="IRI", help="Recommend for this listener of the node.")
@click.option(
    "--artists",
    metavar='"Name, Name"',
    help="Recommend for someone who likes these artists (comma-separated).",
)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SPORE_STORE",
    help="The node's store directory holding the music graphs. Env: SPORE_STORE. Default: var/store.",
)
@click.option("--node", envvar="SPORE_NODE", help="The node IRI whose graphs to read. Env: SPORE_NODE.")
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A model snapshot (<sha256>.safetensors); without it a LightGCN is trained now.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 1000),
    default=60,
    show_default=True,
    help="Epochs of the model trained when no --snapshot is given.",
)
@click.option(
    "--save-snapshot",
    "save_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the model trained now in this directory, with its model card (.ttl).",
)
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="How many artists to recommend.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "jsonld", "turtle"]),
    default="table",
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the model trained now.")
def recommend(
    listener: str | None,
    artists: str | None,
    store_dir: Path | None,
    node: str | None,
    snapshot_path: Path | None,
    epochs: int,
    save_dir: Path | None,
    k: int,
    output_format: str,
    seed: int,
) -> None:
    """Recommend artists as linked data, for --listener IRI or for --artists "Name, Name".

    \b
    Examples:
      spore recommend --store data/ada --listener https://w3id.org/spore/data/lastfm/listener/2
      spore recommend --store data/ada --artists "Radiohead, Portishead" --format turtle
      spore recommend --store data/ada --artists "Björk" --snapshot 3f2a...e9.safetensors
    """
    if (listener is None) == (artists is None):
        raise click.UsageError('give exactly one of --listener IRI or --artists "Name, Name"')
    if store_dir is None:
        raise click.UsageError(
            "give --store DIR (or set SPORE_STORE): the node's store with the music graphs"
        )
    from knowledge.music.names import split_names
    from models.card import snapshot_iri
    from models.recommend import RecommendationEngine, UnknownArtistError, match_artists, recommendation_graph

    tensors = _read_tensors(store_dir, node)
    # Resolve whom the list is for before any training, so a typo costs nothing.
    if listener is not None:
        listener = listener.strip("<>")
        try:
            row = tensors.listener_index(listener)
        except KeyError:
            raise click.ClickException(f"no listener <{listener}> in the store {store_dir}") from None
    else:
        names = split_names(artists or "")
        if not names:
            raise click.UsageError("--artists needs at least one artist name")
        try:
            matches = match_artists(names, tensors)
        except UnknownArtistError as error:
            raise click.ClickException(str(error)) from None
    snapshot, graph = _model(tensors, snapshot_path, epochs, seed, save_dir)
    engine = RecommendationEngine(snapshot.model, graph, tensors)
    made_with = snapshot_iri(snapshot.sha256)
    if listener is not None:
        ranked = engine.for_listener(row, k)
        rdf, _ = recommendation_graph(ranked, made_with=made_with, listener=listener)
        heading = f"for listener <{listener}>"
    else:
        ranked = engine.for_artists([m.index for m in matches], k)
        seeds = tuple(tensors.artists[m.index] for m in matches)
        rdf, _ = recommendation_graph(ranked, made_with=made_with, seed_artists=seeds)
        heading = "for someone who likes " + ", ".join(m.name for m in matches)
    _write(rdf, ranked, heading, snapshot.sha256, output_format)


def _read_tensors(store_dir: Path, node: str | None) -> MusicTensors:
    from knowledge.music.rdf import DEFAULT_NODE
    from knowledge.store import EmbeddedStore, StoreUnavailable
    from models.graph import load_music_tensors

    if not store_dir.is_dir():
        raise UnreadableInput(f"no store directory {store_dir}")
    try:
        store = EmbeddedStore(store_dir, read_only=True)
    except StoreUnavailable as error:
        raise UnreadableInput(str(error.message).splitlines()[0]) from error
    try:
        tensors = load_music_tensors(store, node or DEFAULT_NODE, tag_weights=True)
    finally:
        store.close()
    if tensors.num_interactions == 0:
        raise click.ClickException(
            f"the store {store_dir} holds no listening data; import some with `spore data import` or "
            "`spore data synth`"
        )
    return tensors


def _model(
    tensors: MusicTensors, snapshot_path: Path | None, epochs: int, seed: int, save_dir: Path | None
) -> tuple[Snapshot, ModelGraph]:
    from models.pipeline import build_graph, graph_for_model
    from models.snapshot import SnapshotError, load_snapshot, save_snapshot

    if snapshot_path is not None:
        try:
            snapshot = load_snapshot(snapshot_path, tensors)
        except SnapshotError as error:
            raise UnreadableInput(str(error)) from None
        return snapshot, graph_for_model(snapshot.model, tensors)
    from models.lightgcn import LightGCN
    from models.snapshot import Snapshot, snapshot_bytes
    from models.train import TrainConfig, train_bpr

    model = LightGCN(tensors.num_listeners, tensors.num_artists)
    graph = build_graph("lightgcn", tensors)
    config = TrainConfig(epochs=epochs, seed=seed, eval_every=epochs)
    click.echo(f"training LightGCN for {epochs} epochs on {tensors.describe()}", err=True)
    report = train_bpr(model, graph, tensors.interactions, config, description="LightGCN")
    if save_dir is None:
        import hashlib

        data = snapshot_bytes(model, tensors)
        return Snapshot(
            hashlib.sha256(data).hexdigest(), len(data), model, {"architecture": "lightgcn"}
        ), graph
    snapshot = save_snapshot(model, tensors, save_dir)
    _save_card(snapshot, tensors, config, report.seconds, report.epochs_run)
    click.echo(f"saved {snapshot.path}", err=True)
    return snapshot, graph


def _save_card(
    snapshot: Snapshot, tensors: MusicTensors, config: TrainConfig, seconds: float, epochs: int
) -> None:
    from models.card import model_card

    card = model_card(
        snapshot,
        config=config,
        training_seconds=seconds,
        epochs=epochs,
        data_description=tensors.describe(),
        training_split="all interactions of the store, no held-out part",
    )
    assert snapshot.path is not None
    card.serialize(destination=snapshot.path.with_suffix(".ttl"), format="turtle")


def _write(rdf: Graph, ranked: list[RankedArtist], heading: str, sha256: str, output_format: str) -> None:
    if output_format == "turtle":
        sys.stdout.write(rdf.serialize(format="turtle"))
        return
    if output_format == "jsonld":
        from pyld import jsonld

        from federation.jsonld import SPORE_CONTEXT_URL, frozen_loader

        expanded = json.loads(rdf.serialize(format="json-ld"))
        # Framing nests the ranked items inside the list, in list order, as a reader expects.
        frame = {"@context": SPORE_CONTEXT_URL, "@type": "Recommendation"}
        document = jsonld.frame(expanded, frame, {"documentLoader": frozen_loader, "omitGraph": True})
        if isinstance(document.get("itemListElement"), list):
            document["itemListElement"].sort(key=lambda item: item.get("position", 0))
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return
    click.echo(f"{len(ranked)} artists {heading} (snapshot {sha256[:12]}...)")
    width = max((len(r.name) for r in ranked), default=6)
    click.echo(f"{'#':>3}  {'artist':<{width}}  {'score':>8}  IRI")
    for r in ranked:
        click.echo(f"{r.position:>3}  {r.name:<{width}}  {r.score:>8.4f}  {r.iri}")
