"""``spore demo``: a small fungiverse on 127.0.0.1, with live progress and the URLs to open.

    spore demo                        # 6 nodes on 2 hosts, until Ctrl-C
    spore demo --rounds 3             # stop after three rounds and exit 0
    spore demo --nodes 12 --hosts 3 --port 8101 --state-dir /tmp/fungi

A second run with the same ``--state-dir`` resumes: the same hosts on the same ports, continuing
from their stored rounds.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click

from agents import demo as orchestration
from agents import watch
from agents.demo import DemoPlan, Fungiverse

__all__ = ["demo"]

_STRAGGLER_SECONDS = 60.0  # after the last round, how long to wait for nodes still outside a group


class UnreadableInput(click.ClickException):
    exit_code = 2


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM both stop the demo the same way: every host first, then the demo."""
    raise KeyboardInterrupt


def _explicit(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


@click.command("demo")
@click.option("--nodes", type=click.IntRange(1, 500), default=6, show_default=True, help="Fungus nodes.")
@click.option("--hosts", type=click.IntRange(1, 64), default=2, show_default=True, help="Host processes.")
@click.option("--rounds", type=click.IntRange(1), default=None, help="Stop after this many rounds (exit 0).")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where Last.fm-2k lives (default: $SPORE_DATA_DIR or ../shared/data); synthetic data without it.",
)
@click.option(
    "--synthetic", is_flag=True, help="Use the synthetic music graph even when Last.fm-2k is there."
)
@click.option("--port", type=int, default=8001, show_default=True, help="First host's port (then +1 each).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".spore-demo"),
    show_default=True,
    help="Blueprints, stores and keys; reuse it to resume.",
)
@click.option(
    "--round-seconds",
    type=click.FloatRange(0.1),
    default=5.0,
    show_default=True,
    help="Each host's round period (spore serve --round-seconds).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    nodes: int,
    hosts: int,
    rounds: int | None,
    data_dir: Path | None,
    synthetic: bool,
    port: int,
    state_dir: Path,
    round_seconds: float,
) -> None:
    """Start a local fungiverse: hosts serving fungus nodes that find each other, train and federate."""
    state_dir = state_dir.resolve()
    try:
        plan = orchestration.load_plan(state_dir)
        if plan is None:
            music = None
            if not synthetic:
                where = data_dir or orchestration.default_data_dir()
                if data_dir is not None and not data_dir.is_dir():
                    raise UnreadableInput(f"--data {data_dir} is not a directory")
                music = orchestration.lastfm_dir(where)
            derived = orchestration.derive_blueprints(orchestration.example_choices(), nodes, hosts=hosts)
            plan = orchestration.plan_demo(
                state_dir,
                [name for name, _ in derived],
                hosts=hosts,
                port=port,
                music=music,
                round_seconds=round_seconds,
            )
            orchestration.write_blueprints(state_dir, derived)
            orchestration.save_plan(state_dir, plan)
            click.echo(f"new fungiverse in {state_dir}")
        else:
            stored = {"nodes": plan.nodes, "hosts": len(plan.hosts), "port": plan.hosts[0].port}
            asked = {"nodes": nodes, "hosts": hosts, "port": port}
            clash = [
                f"--{key} {asked[key]}" for key in stored if _explicit(ctx, key) and asked[key] != stored[key]
            ]
            if clash:
                raise click.ClickException(
                    f"{state_dir} holds a fungiverse of {plan.nodes} nodes on {len(plan.hosts)} host(s) from"
                    f" port {stored['port']}, not {', '.join(clash)}; use another --state-dir"
                )
            click.echo(f"resuming the fungiverse in {state_dir}")
    except orchestration.DemoError as error:
        raise click.ClickException(str(error)) from error

    data_note = f"Last.fm-2k from {plan.music}" if plan.music else "the synthetic music graph"
    click.echo(f"{plan.nodes} fungus nodes on {len(plan.hosts)} host(s), on {data_note}")
    # Explicitly: a demo started from a script may inherit SIGINT ignored, and Ctrl-C must still stop it.
    previous = signal.signal(signal.SIGTERM, _interrupt), signal.signal(signal.SIGINT, _interrupt)
    fungiverse = Fungiverse(plan)
    started = time.monotonic()
    try:
        try:
            fungiverse.start()
            fungiverse.wait_ready()
            _show_urls(plan)
            final = _follow(fungiverse, state_dir, rounds, started)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
            click.echo(f"\nstopping {len(plan.hosts)} host(s)...", err=True)
            fungiverse.stop()
            click.echo(f"stopped; resume with: spore demo --state-dir {state_dir}", err=True)
            raise click.exceptions.Exit(130) from None
        except orchestration.DemoError as error:
            fungiverse.stop()
            raise click.ClickException(f"{error} (logs: {state_dir}/hosts/*/serve.log)") from error
        fungiverse.stop()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    click.echo(watch.format_table(watch.STATUS_HEADERS, watch.status_rows(final)))
    click.echo(
        f"stopped after round {watch.summarise(final).round}; resume with: spore demo --state-dir {state_dir}"
    )


def _show_urls(plan: DemoPlan) -> None:
    click.echo("open:")
    for host in plan.hosts:
        first = Path(host.blueprints[0]).stem if host.blueprints else None
        node = f"  node {host.base_url}/nodes/{first}" if first else ""
        click.echo(f"  {host.base_url}/{node}  status {host.base_url}/status  SPARQL {host.base_url}/sparql")
    click.echo("Ctrl-C stops every host; `spore status` (in another terminal) shows a table.")


def _follow(
    fungiverse: Fungiverse, state_dir: Path, rounds: int | None, started: float
) -> list[watch.HostStatus | watch.Unreachable]:
    """Poll the hosts, print a line per round and the decisions nodes made since, return the last
    statuses once ``rounds`` more are done."""
    urls = fungiverse.plan.urls
    first_round = orchestration.load_progress(state_dir)
    if first_round:
        click.echo(f"resuming at round {first_round}")
    shown: tuple[int, int, int] | None = None
    reached_at: float | None = None
    last_line = 0.0
    told: set[str] = set()  # decisions already printed
    while True:
        fungiverse.check_alive()
        results = watch.fetch_all(urls)
        summary = watch.summarise(results)
        now = time.monotonic()
        key = (summary.round, summary.groups, summary.grouped)
        if key != shown or now - last_line > 30:
            click.echo(watch.progress_line(summary, now - started))
            if key[0] != (shown or (None,))[0]:  # a new round: what the nodes decided after it
                tell_decisions(urls, told)
            shown, last_line = key, now
            if summary.reachable == len(urls) and summary.round > first_round:
                orchestration.save_progress(state_dir, summary.round)
        done = rounds is not None and summary.round >= first_round + rounds
        if done and summary.reachable == len(urls):
            # Founders run rounds before every member has joined; wait for the stragglers, but not
            # for ever: a node its peers blocked stays out of every group.
            reached_at = reached_at or now
            if summary.grouped == summary.nodes or now - reached_at > _STRAGGLER_SECONDS:
                if summary.grouped < summary.nodes:
                    click.echo(f"{summary.nodes - summary.grouped} node(s) did not join a group")
                tell_decisions(urls, told)  # the last round's, reasoned after the last poll
                return list(results)
        time.sleep(1.0)


def tell_decisions(urls: list[str], told: set[str]) -> None:
    """Print the nodes' last-round decisions not printed yet (``told`` remembers them)."""
    for decision in watch.fetch_decisions(urls):
        if decision.iri not in told:
            told.add(decision.iri)
            click.echo(f"  {watch.decision_text(decision)}")
