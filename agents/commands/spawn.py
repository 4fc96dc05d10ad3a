"""``spore spawn BLUEPRINT|NODE``: write a mutated child of a node's blueprint, within caps, and start it.

    spore spawn http://127.0.0.1:8001/nodes/ada --host http://127.0.0.1:8001 --token $TOKEN
    spore spawn examples/blueprints/jazz_explorer.ttl --host http://127.0.0.1:8001 --as-is
    spore spawn examples/blueprints/jazz_explorer.ttl --out-dir var/blueprints
    spore spawn https://host.example/nodes/ada --store var/a/store
    spore spawn var/blueprints/jazz_explorer.ttl --serve -- --port 8003 --data-dir var/c --synth \\
        --peer http://127.0.0.1:8001

``--host URL`` starts the child on that running ``spore serve`` host through its admin route
(``POST /admin/spawn``, the bearer token of ``spore serve --admin-token``; here ``--token`` or
``SPORE_ADMIN_TOKEN``): a NODE of that host gets a mutated child within its caps and the host's, the
decision recorded in the parent's decisions graph; a BLUEPRINT file's mutated child (or, with
``--as-is``, the blueprint itself) is sent to the host, which checks it against the shapes and its
cap. The child announces itself, joins the groups it seeks and learns at once.

Without ``--host``: from a blueprint file the child is written next to it (or into ``--out-dir``, the
folder of blueprints one host serves); from a node IRI the child's blueprint and description go into
the store and the decision into the parent's decisions graph. ``--serve`` then starts the child with
``spore serve`` (the arguments after ``--``). A refused spawn (caps, shapes, a wrong token) exits 1
with the reason.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import click

__all__ = ["spawn"]


class UnreadableInput(click.ClickException):
    exit_code = 2


def _default_host_cap() -> int:
    from agents.spawn import DEFAULT_MAX_NODES_PER_HOST

    value = os.environ.get("SPORE_MAX_NODES_PER_HOST", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_NODES_PER_HOST


@click.command("spawn", context_settings={"ignore_unknown_options": False})
@click.argument("source")
@click.argument("serve_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--store", "store_location", help="Store directory or SPARQL endpoint URL (for a NODE).")
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the child blueprint goes."
)
@click.option("--name", help="The child's node name (default: PARENT_cN).")
@click.option("--host", "host_url", help="Base URL of a running spore serve host to start the child on.")
@click.option(
    "--token", envvar="SPORE_ADMIN_TOKEN", help="The host's admin token (env SPORE_ADMIN_TOKEN), with --host."
)
@click.option(
    "--as-is", "as_is", is_flag=True, help="With --host: start BLUEPRINT itself, not a mutated child."
)
@click.option(
    "--host-iri", "host_iri", help="With --store: IRI of the host the child runs on (default: its parent's)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the mutation.")
@click.option(
    "--max-nodes-per-host",
    type=click.IntRange(min=1),
    default=_default_host_cap,
    help="The host's cap on nodes (env SPORE_MAX_NODES_PER_HOST; default 32).",
)
@click.option(
    "--serve", "serve_child", is_flag=True, help="Start the child with spore serve (args after --)."
)
def spawn(
    source: str,
    serve_args: tuple[str, ...],
    store_location: str | None,
    out_dir: Path | None,
    name: str | None,
    host_url: str | None,
    token: str | None,
    as_is: bool,
    host_iri: str | None,
    seed: int,
    max_nodes_per_host: int,
    serve_child: bool,
) -> None:
    """Spawn a mutated child of SOURCE (a blueprint file or a node IRI), within caps.

    \b
    With --host, start it on that running `spore serve` host (its --admin-token as --token):
      spore spawn http://127.0.0.1:8001/nodes/ada --host http://127.0.0.1:8001 --token T
      spore spawn my_blueprint.ttl --host http://127.0.0.1:8001 [--as-is]

    Without --host, write the child's blueprint: a file's next to it (or into --out-dir), a NODE's
    into its --store; --serve then starts it with spore serve (the arguments after --).
    """
    from agents.spawn import SpawnError, spawn_from_file, spawn_in_store

    if host_url is not None:
        if store_location is not None or serve_child or out_dir is not None:
            raise click.UsageError(
                "--host starts the child on a running host: no --store, --out-dir or --serve"
            )
        from agents.spawn_remote import RemoteSpawnRefused, spawn_on_host

        try:
            click.echo(spawn_on_host(source, host_url, token=token, name=name, seed=seed, as_is=as_is))
        except SpawnError as error:
            raise UnreadableInput(str(error)) from error
        except RemoteSpawnRefused as error:
            raise click.ClickException(str(error)) from error
        return
    if as_is:
        raise click.UsageError("--as-is needs --host")
    if serve_args and not serve_child:
        raise click.UsageError(f"unexpected arguments {' '.join(serve_args)} (give --serve to pass them on)")
    try:
        if source.startswith(("http://", "https://")):
            if store_location is None:
                raise click.UsageError("spawning from a node IRI needs --store")
            if serve_child:
                raise click.UsageError(
                    "--serve starts a child written to a file; spawn from its blueprint file"
                )
            from knowledge.store import StoreError, open_store

            try:
                store = open_store(store_location)
            except StoreError as error:
                raise click.ClickException(f"cannot open the store: {error}") from error
            with store:
                outcome = spawn_in_store(
                    store,
                    source,
                    name=name,
                    host=host_iri,
                    seed=seed,
                    now=datetime.datetime.now(datetime.UTC),
                    max_nodes_per_host=max_nodes_per_host,
                )
            written = None
        else:
            path = Path(source)
            if not path.is_file():
                raise UnreadableInput(f"{source}: no such blueprint file (or give a node IRI and --store)")
            outcome, written = spawn_from_file(
                path, out_dir=out_dir, name=name, seed=seed, max_nodes_per_host=max_nodes_per_host
            )
    except SpawnError as error:
        raise UnreadableInput(str(error)) from error
    if not outcome.spawned:
        raise click.ClickException(f"spawn refused: {outcome.reason}")
    click.echo(f"{outcome.reason}" + (f" -> {written}" if written is not None else f" -> {outcome.child}"))
    if serve_child and written is not None:
        from agents.commands.serve import serve

        serve.main(args=[str(written), *serve_args], prog_name="spore serve", standalone_mode=False)
