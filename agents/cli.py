"""The ``spore`` command line.

Subcommands live one per module in :mod:`agents.commands` and are imported only when invoked, so
``spore --help`` and ``spore validate`` start without importing torch or FastAPI.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

# name -> "module:attribute" of a click command; the only place a subcommand is registered.
COMMANDS: dict[str, str] = {
    "data": "agents.commands.data:data",
    "init": "agents.commands.init:init",
    "validate": "agents.commands.validate:validate",
    "query": "agents.commands.query:query",
    "recommend": "agents.commands.recommend:recommend",
    "host": "agents.commands.host:host",
    "serve": "agents.commands.serve:serve",
    "demo": "agents.commands.demo:demo",
    "status": "agents.commands.status:status",
    "explain": "agents.commands.explain:explain",
    "spawn": "agents.commands.spawn:spawn",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show details and tracebacks on errors.")
@click.version_option(package_name="spore")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """SPORE: fungus nodes that learn music recommendation together over ActivityPub."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every failure ends as one line on stderr and a non-zero exit, never a traceback.

    ``click.ClickException`` carries its own exit code (2 for usage and read errors by click's
    convention, which ``spore validate`` also uses for unreadable input). Anything unexpected exits 1
    with its message; ``--verbose`` re-raises it so the traceback is visible.
    """
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        result = cli.main(args=args, prog_name="spore", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("spore: aborted", err=True)
        sys.exit(130)
    except click.UsageError as error:
        error.show()
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"spore: error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # the one place unexpected errors become a one-line reason
        if verbose:
            raise
        click.echo(f"spore: error: {type(error).__name__}: {error}", err=True)
        sys.exit(1)
    # standalone_mode=False hands back a command's ctx.exit(code) as the return value.
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
