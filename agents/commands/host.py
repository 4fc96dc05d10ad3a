"""``spore host``: serve fungus nodes and learning groups as ActivityPub actors from one process.

    spore host --base-url http://127.0.0.1:8001 --data-dir var/host-a --node alice --node bob \\
               --group jazz=#jazz --allow-loopback

Keys are created in ``DATA_DIR/keys`` on the first start and reused after; received activities go to
the store (``--store``: a directory, or a SPARQL endpoint URL; default ``DATA_DIR/store``).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["host"]


class UnreadableInput(click.ClickException):
    exit_code = 2


def _group(value: str) -> tuple[str, str]:
    name, equals, hashtag = value.partition("=")
    if not equals or not name or not hashtag.startswith("#"):
        raise click.BadParameter(f"{value!r} is not NAME=#hashtag", param_hint="--group")
    return name, hashtag


def _bind(value: str) -> tuple[str, int]:
    address, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not ADDRESS:PORT", param_hint="--bind")
    return address or "127.0.0.1", int(port)


@click.command("host")
@click.option(
    "--base-url", required=True, help="Public base URL, e.g. https://spore.example (never guessed)."
)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--node", "nodes", multiple=True, help="A node actor to serve (repeatable).")
@click.option("--group", "groups", multiple=True, help="A learning group as NAME=#hashtag (repeatable).")
@click.option("--bind", "bind", default=None, help="ADDRESS:PORT to listen on (default: from --base-url).")
@click.option("--store", "store_location", default=None, help="Store directory or SPARQL endpoint URL.")
@click.option(
    "--allow-loopback", is_flag=True, help="Allow fetches from loopback peers (a local fungiverse)."
)
@click.option("--allow-private", is_flag=True, help="Allow fetches from private-network peers.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="PEM certificate for HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM key for HTTPS.")
def host(
    base_url: str,
    data_dir: Path,
    nodes: tuple[str, ...],
    groups: tuple[str, ...],
    bind: str | None,
    store_location: str | None,
    allow_loopback: bool,
    allow_private: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve NODEs and GROUPs over ActivityPub until interrupted."""
    import uvicorn

    from federation.config import GroupSpec, HostConfig, NodeSpec
    from federation.host import build_host
    from knowledge.store import StoreError, open_store

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    group_specs = [_group(value) for value in groups]
    try:
        config = HostConfig(
            base_url=base_url,
            data_dir=data_dir,
            nodes=tuple(NodeSpec(name) for name in nodes),
            groups=tuple(GroupSpec(name, hashtag) for name, hashtag in group_specs),
            allow_loopback=allow_loopback,
            allow_private=allow_private,
        )
    except ValueError as error:
        raise UnreadableInput(str(error)) from error
    address, port = (
        _bind(bind) if bind else _bind(config.domain if ":" in config.domain else f"{config.domain}:80")
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = open_store(store_location or data_dir / "store")
    except StoreError as error:
        raise click.ClickException(f"cannot open the store: {error}") from error
    app = build_host(config, store=store)
    click.echo(f"serving {len(nodes)} node(s) and {len(groups)} group(s) at {config.base_url}", err=True)
    uvicorn.run(app, host=address, port=port, log_level="warning", ssl_certfile=tls_cert, ssl_keyfile=tls_key)
