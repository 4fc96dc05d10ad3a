"""``spore serve``: run one host of fungus nodes for real, from their blueprints.

    spore serve examples/blueprints/jazz_explorer.ttl examples/blueprints/kg_scout.ttl \\
        --base-url http://127.0.0.1:8001 --port 8001 --data-dir var/a --synth \\
        --peer http://127.0.0.1:8002 --rounds 5 --round-seconds 10

Every option can also come from the environment (``SPORE_BASE_URL``, ``SPORE_PORT``,
``SPORE_HOST_DIR``, ``SPORE_MUSIC``, ``SPORE_PEERS`` and ``SPORE_ALLOW_PEERS`` space-separated,
``SPORE_ROUNDS``, ``SPORE_ROUND_SECONDS``, ``SPORE_ADMIN_TOKEN``, ``SPORE_MAX_NODES``,
``SPORE_AUTOSPAWN``) or from a TOML file (``--config``, keys named as the options with underscores,
``blueprints = [...]``, ``peer = [...]``); flags win over the environment, which wins over the file.
Standard output gets one JSON line per event: ``serving``, ``round`` (per node per round: recall,
group, bytes), ``spawned`` (a child started on this host), ``done``. A second start with the same
``--data-dir`` resumes: keys, store, each node's round and latest model, and the children it spawned (their
blueprints are kept in ``DATA_DIR/spawned``). ``--admin-token`` lets an operator start nodes on the
running host (``spore spawn --host``, docs/federation.md "Spawning on a running host").
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn

if TYPE_CHECKING:
    from knowledge.music.corpus import MusicCorpus

__all__ = ["serve"]


class UnreadableInput(click.ClickException):
    exit_code = 2


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """Read the TOML file into the command's defaults (below flags and environment)."""
    if value is None:
        return
    try:
        settings = tomllib.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UnreadableInput(f"config {value}: {error}") from error
    ctx.default_map = {**(ctx.default_map or {}), **{key.replace("-", "_"): v for key, v in settings.items()}}


def emit(event: str, **fields: Any) -> None:
    """One structured log line on standard output (JSON, flushed: the demo tails it)."""
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


@click.command("serve")
@click.argument("blueprints", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    envvar="SPORE_CONFIG",
    help="TOML file with defaults for every option.",
)
@click.option("--base-url", envvar="SPORE_BASE_URL", help="Public base URL (default http://127.0.0.1:PORT).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, envvar="SPORE_PORT", show_default=True)
@click.option("--bind", "address", default="127.0.0.1", envvar="SPORE_BIND", show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SPORE_HOST_DIR",
    required=True,
    help="Keys, store, delivery queue and node checkpoints.",
)
@click.option("--music", type=click.Path(file_okay=False, exists=True, path_type=Path), envvar="SPORE_MUSIC")
@click.option(
    "--synth", is_flag=True, help="Use the seeded synthetic music graph (the default without --music)."
)
@click.option("--synth-seed", type=int, default=0, show_default=True)
@click.option(
    "--peer", "peers", multiple=True, envvar="SPORE_PEERS", help="Base URL of a peer host (repeatable)."
)
@click.option(
    "--allow-peer",
    "allow_peers",
    multiple=True,
    envvar="SPORE_ALLOW_PEERS",
    help="Accept protocol traffic only from these HOST[:PORT]s (repeatable; default: any).",
)
@click.option(
    "--rounds", type=click.IntRange(min=1), envvar="SPORE_ROUNDS", help="Exit 0 after N more rounds."
)
@click.option("--round-seconds", type=click.FloatRange(min=0.1), default=10.0, envvar="SPORE_ROUND_SECONDS")
@click.option("--discover-seconds", type=click.FloatRange(min=0), default=15.0, show_default=True)
@click.option("--max-seconds", type=click.FloatRange(min=1), help="Give up (exit 1) if not done by then.")
@click.option(
    "--admin-token",
    envvar="SPORE_ADMIN_TOKEN",
    help="Bearer token for the host's writes: POST /admin/spawn (spore spawn --host) and SPARQL Update "
    "(prefer SPORE_ADMIN_TOKEN or the config file: a flag shows in the process list).",
)
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=32,
    envvar="SPORE_MAX_NODES",
    show_default=True,
    help="The host's cap on nodes; spawning beyond it is refused.",
)
@click.option(
    "--autospawn", is_flag=True, envvar="SPORE_AUTOSPAWN", help="Nodes spawn children as their policy says."
)
def serve(
    blueprints: tuple[Path, ...],
    base_url: str | None,
    port: int,
    address: str,
    data_dir: Path,
    music: Path | None,
    synth: bool,
    synth_seed: int,
    peers: tuple[str, ...],
    allow_peers: tuple[str, ...],
    rounds: int | None,
    round_seconds: float,
    discover_seconds: float,
    max_seconds: float | None,
    admin_token: str | None,
    max_nodes: int,
    autospawn: bool,
) -> None:
    """Serve the fungus nodes of BLUEPRINT... over ActivityPub, training with their groups."""
    from agents.node_blueprint import BlueprintError, read_blueprint

    if not blueprints:
        raise click.UsageError("give at least one BLUEPRINT")
    if music is not None and synth:
        raise click.UsageError("--music and --synth exclude each other")
    try:
        parsed = [read_blueprint(Path(path)) for path in blueprints]
    except BlueprintError as error:
        raise UnreadableInput(str(error)) from error
    names = [blueprint.name for blueprint in parsed]
    if len(set(names)) != len(names):
        raise UnreadableInput(f"two blueprints share a node name: {sorted(names)}")
    parsed += _spawned_before(data_dir / "spawned", set(names))
    code = _run(
        parsed,
        base_url=(base_url or f"http://127.0.0.1:{port}").rstrip("/"),
        port=port,
        address=address,
        data_dir=data_dir,
        music=music,
        synth_seed=synth_seed,
        peers=tuple(peer.rstrip("/") for peer in peers),
        allow_peers=allow_peers,
        rounds=rounds,
        round_seconds=round_seconds,
        discover_seconds=discover_seconds if peers else 0.0,
        max_seconds=max_seconds,
        admin_token=admin_token,
        max_nodes=max_nodes,
        autospawn=autospawn,
    )
    sys.exit(code)


def _spawned_before(directory: Path, served: set[str]) -> list[Any]:
    """The children this host spawned in an earlier run (agents/host_spawning.py writes their
    blueprints here): served again, resumed from their checkpoints like the other nodes."""
    from agents.node_blueprint import BlueprintError, read_blueprint

    children = []
    for path in sorted(directory.glob("*.ttl")) if directory.is_dir() else []:
        try:
            child = read_blueprint(path)
        except BlueprintError as error:  # one unreadable child must not keep the host from starting
            emit("skipped", blueprint=str(path), reason=str(error))
            continue
        if child.name not in served:
            children.append(child)
            served.add(child.name)
    return children


def _run(
    parsed: list[Any], *, base_url: str, port: int, address: str, data_dir: Path, **settings: Any
) -> int:
    """Build the host, serve it until done or stopped; returns the exit status."""
    import socket
    from urllib.parse import urlsplit

    from knowledge.music.tsv import MusicDataError

    try:
        corpus = load_corpus(settings["music"], synth_seed=settings["synth_seed"])
    except (MusicDataError, ValueError) as error:
        raise UnreadableInput(f"music data: {error}") from error
    # Imported once the data is read: torch and its geometric library take seconds to load.
    from agents.fungus_host import attach_nodes
    from agents.host_spawning import ChildBuilder, install_spawning
    from agents.hosting import HostOptions
    from agents.node import load_checkpoint
    from agents.node_setup import CatalogueQuads, NodeRoles, RoundTiming, assign_roles, build_node
    from federation.config import HostConfig, NodeSpec
    from federation.host import build_host
    from knowledge.store import EmbeddedStore, StoreError

    hostname = urlsplit(base_url).hostname or ""
    loopback = hostname in ("127.0.0.1", "localhost", "::1") or any(
        urlsplit(peer).hostname in ("127.0.0.1", "localhost") for peer in settings["peers"]
    )
    try:
        config = HostConfig(
            base_url=base_url,
            data_dir=data_dir,
            nodes=tuple(NodeSpec(b.name, summary=f"Fungus node from {b.source.name}") for b in parsed),
            allow_loopback=loopback,
            sparql_update_token=settings["admin_token"],
        )
    except ValueError as error:
        raise UnreadableInput(str(error)) from error
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = EmbeddedStore(data_dir / "store")
    except (OSError, StoreError) as error:
        raise click.ClickException(f"cannot open the store in {data_dir}: {error}") from error

    checkpoints = data_dir / "nodes"
    rounds: int | None = settings["rounds"]
    by_actor = {f"{base_url}/nodes/{b.name}": b for b in parsed}
    catalogue = CatalogueQuads(corpus)  # shared with the children spawned later

    def build(known: dict[str, tuple[str, ...]]) -> list[Any]:
        """The nodes, once peers are known (roles depend on every known node); resumes checkpoints."""
        roles = assign_roles(known)
        nodes = []
        for actor, blueprint in by_actor.items():
            checkpoint = load_checkpoint(checkpoints / blueprint.name)
            role = roles[actor]
            if checkpoint is not None:
                role = NodeRoles(founds=checkpoint.founded, shard=role.shard)
            start = checkpoint.round if checkpoint is not None else 0
            timing = RoundTiming(settings["round_seconds"], None if rounds is None else start + rounds)
            node = build_node(blueprint, actor, store=store, catalogue=catalogue, roles=role, timing=timing)
            if checkpoint is not None:
                node.state = checkpoint.resume(node.state)
            emit(
                "node",
                node=blueprint.name,
                actor=actor,
                founds=role.founds,
                resumed_at=start,
                seeks=node.state.seeks,
            )
            nodes.append(node)
        return nodes

    app = build_host(config, store=store)
    server = QuietServer(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    outcome = {"code": 0}

    def finish(code: int, reason: str, linger: float) -> None:
        def stop() -> None:
            outcome["code"] = code
            emit("done" if code == 0 else "gave-up", reason=reason, host=base_url)
            server.should_exit = True

        # Linger so that peers can still fetch this round's artifacts and deliveries drain.
        threading.Timer(linger, stop).start()

    host = attach_nodes(
        app,
        [],
        options=HostOptions(
            peers=settings["peers"],
            allow_peers=settings["allow_peers"],
            checkpoint_dir=checkpoints,
            discover_seconds=settings["discover_seconds"],
            poll_seconds=max(2.0, min(10.0, settings["round_seconds"])),
            max_nodes=settings["max_nodes"],
            autospawn=settings["autospawn"],
        ),
        on_round=lambda line: emit(**line),
        planned={actor: blueprint.hashtags for actor, blueprint in by_actor.items()},
        build=build,
        on_finished=lambda: finish(0, f"{rounds} rounds", linger=max(3.0, settings["round_seconds"])),
        on_error=lambda reason: finish(1, reason, linger=0.0),
    )
    timing = RoundTiming(settings["round_seconds"], rounds)
    install_spawning(
        app,
        host,
        ChildBuilder(store, catalogue, timing, data_dir / "spawned"),
        on_spawn=lambda e: emit("spawned", **e),
    )
    if settings["max_seconds"] is not None:
        timer = threading.Timer(
            settings["max_seconds"],
            lambda: None if host.finished.is_set() else finish(1, "--max-seconds passed", linger=0.0),
        )
        timer.daemon = True
        timer.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        raise click.ClickException(f"cannot listen on {address}:{port}: {error.strerror}") from error
    sock.listen(1024)
    emit("serving", host=base_url, nodes=sorted(by_actor), peers=list(settings["peers"]))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    if server.signalled is not None:
        emit("stopped", signal=signal.Signals(server.signalled).name, host=base_url)
    return outcome["code"]


def load_corpus(music: Path | None, *, synth_seed: int = 0) -> MusicCorpus:
    """Last.fm-2k from ``music`` when given, else the seeded synthetic corpus."""
    if music is not None:
        from knowledge.music.lastfm import read_lastfm

        # The data directory (holding lastfm-2k/) or the Last.fm directory itself.
        nested = music / "lastfm-2k"
        return read_lastfm(nested if (nested / "user_artists.dat").is_file() else music)
    from knowledge.music.synth import SynthParams, synthesize

    return synthesize(SynthParams(seed=synth_seed))


class QuietServer(uvicorn.Server):
    """uvicorn's server without re-raising SIGINT/SIGTERM after its graceful shutdown.

    uvicorn re-raises the signal once it has shut down so that the process dies of it; a host that
    has checkpointed its nodes and run its lifespan's shutdown has stopped cleanly and exits 0.
    """

    signalled: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(signum: int, _frame: object) -> None:
            if self.should_exit:
                self.force_exit = True  # a second Ctrl-C does not wait for the lifespan
            self.signalled = signum
            self.should_exit = True

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
