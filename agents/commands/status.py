"""``spore status``: one table summarising a running fungiverse, then each node's latest decisions.

    spore status                                  # the hosts of the demo in ./.spore-demo
    spore status http://127.0.0.1:8001 http://127.0.0.1:8002
    spore status --state-dir /tmp/fungi --json

Exit 0 when every host answers; 1, after the table, with one line naming the hosts that did not.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from agents import watch
from agents.demo import DemoError, load_plan

__all__ = ["status"]


@click.command("status")
@click.argument("urls", nargs=-1)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".spore-demo"),
    show_default=True,
    help="The demo whose hosts to ask when no URL is given.",
)
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=5.0, show_default=True, help="Per host.")
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON instead of a table.")
def status(urls: tuple[str, ...], state_dir: Path, timeout: float, as_json: bool) -> None:
    """Hosts, nodes, groups, round, Recall@20 and delivery queue of each host at URL (or of the demo)."""
    targets = [url.rstrip("/") for url in urls]
    for url in targets:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="URL")
    if not targets:
        try:
            plan = load_plan(state_dir)
        except DemoError as error:
            raise click.ClickException(str(error)) from error
        if plan is None:
            raise click.ClickException(
                f"no demo in {state_dir}; give host URLs or start one with `spore demo`"
            )
        targets = plan.urls
    results = watch.fetch_all(targets, timeout=timeout)
    decisions = watch.fetch_decisions(targets, timeout=timeout)
    if as_json:
        records = [
            {**asdict(result), "groups": sorted(result.groups)}
            if isinstance(result, watch.HostStatus)
            else {"url": result.url, "unreachable": result.reason}
            for result in results
        ]
        click.echo(json.dumps({"hosts": records, "decisions": [asdict(d) for d in decisions]}, indent=2))
    else:
        click.echo(watch.format_table(watch.STATUS_HEADERS, watch.status_rows(results)))
        summary = watch.summarise(results)
        click.echo(
            f"{summary.reachable}/{summary.hosts} host(s), {summary.nodes} node(s),"
            f" {summary.groups} group(s), round {summary.round}"
        )
        if decisions:
            click.echo("decisions of each node's last reasoning round:")
            for decision in decisions:
                click.echo(f"  {watch.decision_text(decision)}")
    down = [result for result in results if isinstance(result, watch.Unreachable)]
    if down:
        reasons = "; ".join(f"{result.url} ({result.reason})" for result in down)
        raise click.ClickException(f"{len(down)} host(s) unreachable: {reasons}")
