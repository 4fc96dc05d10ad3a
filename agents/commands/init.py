"""``spore init``: write a new, valid blueprint from a few options."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from agents.blueprint_writer import AGGREGATION_RULES, ARCHITECTURES, BlueprintChoices, new_blueprint


@click.command()
@click.argument("name")
@click.option(
    "--hashtag",
    "hashtags",
    multiple=True,
    required=True,
    help="A learning group to seek, such as '#jazz' (repeatable).",
)
@click.option(
    "--architecture", type=click.Choice(sorted(ARCHITECTURES)), default="lightgcn", show_default=True
)
@click.option(
    "--aggregation", type=click.Choice(sorted(AGGREGATION_RULES)), default="trimmed-mean", show_default=True
)
@click.option("--embedding-dimension", type=click.IntRange(1, 1024), default=64, show_default=True)
@click.option("--layers", type=click.IntRange(0, 8), default=3, show_default=True)
@click.option("--learning-rate", default="0.001", show_default=True)
@click.option("--local-epochs", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--title", help="A human-readable title (default: from the name).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the blueprint (default: NAME.ttl in the current directory; '-' for stdout).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(
    name: str,
    hashtags: tuple[str, ...],
    architecture: str,
    aggregation: str,
    embedding_dimension: int,
    layers: int,
    learning_rate: str,
    local_epochs: int,
    title: str | None,
    output: Path | None,
    force: bool,
) -> None:
    """Write a new blueprint for a fungus node called NAME.

    The blueprint is validated before it is written; edit it afterwards and check it with
    ``spore validate``.

    \b
    Example:
      spore init jazz_cat --hashtag '#jazz' --hashtag '#bebop' --architecture kg-lightgcn
    """
    try:
        if Decimal(learning_rate) <= 0:
            raise click.BadParameter("must be a positive decimal such as 0.001", param_hint="--learning-rate")
    except InvalidOperation:
        raise click.BadParameter("must be a decimal such as 0.001", param_hint="--learning-rate") from None
    choices = BlueprintChoices(
        name=name,
        hashtags=hashtags,
        architecture=architecture,
        aggregation=aggregation,
        embedding_dimension=embedding_dimension,
        layers=layers,
        learning_rate=learning_rate,
        local_epochs=local_epochs,
        title=title,
    )
    graph, report = new_blueprint(choices)
    if not report.conforms:
        raise click.ClickException("; ".join(report.lines()))
    turtle = graph.serialize(format="turtle")
    target = output or Path(f"{name}.ttl")
    if str(target) == "-":
        click.echo(turtle, nl=False)
        return
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    try:
        target.write_text(turtle, encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"cannot write {target}: {error.strerror}") from error
    click.echo(f"wrote {target}")
