"""``spore validate``: check blueprints and other SPORE data against the shapes."""

from __future__ import annotations

import json
import sys

import click

from knowledge.documents import UnreadableDocument, load_document
from shapes.validation import Entailment, default_validator

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="PATH|URL...")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "turtle", "json"]),
    default="text",
    show_default=True,
    help="text: one line per violation; turtle/json: the SHACL validation report.",
)
@click.option(
    "--entailment",
    type=click.Choice([e.value for e in Entailment]),
    default=Entailment.RDFS.value,
    show_default=True,
    help="Ontology consequences to apply before validating (rdfs is exact for SPORE's shapes).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only problems, not the OK lines.")
def validate(sources: tuple[str, ...], output_format: str, entailment: str, quiet: bool) -> None:
    """Validate blueprints (and any SPORE data) against the SPORE shapes.

    Exit status: 0 when every document is valid, 1 when any is invalid, 2 when any could not be read
    or parsed.

    \b
    Examples:
      spore validate examples/blueprints/*.ttl
      spore validate --format turtle my-node.ttl
      spore validate http://127.0.0.1:8000/nodes/jazz/blueprint
    """
    validator = default_validator()
    status = EXIT_VALID
    reports = []
    for source in sources:
        try:
            document = load_document(source)
        except UnreadableDocument as error:
            click.echo(f"spore: error: {error}", err=True)
            status = max(status, EXIT_UNREADABLE)
            continue
        report = validator.validate(
            document.graph, entailment=Entailment(entailment), base_iri=document.base_iri
        )
        reports.append((source, report))
        if not report.conforms:
            status = max(status, EXIT_INVALID)
        if output_format != "text":
            continue
        if report.conforms:
            if not quiet:
                click.echo(f"{source}: OK")
        else:
            for line in report.lines():
                click.echo(f"{source}: {line}")
    if output_format == "turtle":
        for source, report in reports:
            click.echo(f"# {source}")
            click.echo(report.graph.serialize(format="turtle"))
    elif output_format == "json":
        documents = [
            {"source": source, "report": json.loads(report.graph.serialize(format="json-ld"))}
            for source, report in reports
        ]
        json.dump(documents, sys.stdout, indent=2)
        click.echo()
    sys.exit(status)
