"""``spore query``: run a named query, a ``.rq`` file or query text against a node's store."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import click
from pyoxigraph import (
    BlankNode,
    Literal,
    NamedNode,
    QueryResultsFormat,
    QuerySolutions,
    RdfFormat,
    Triple,
    parse,
    serialize,
)

import queries
from knowledge.store import (
    EmbeddedStore,
    KnowledgeStore,
    QueryError,
    QueryResult,
    StoreError,
    StoreUnavailable,
    Term,
)
from knowledge.store.remote import SparqlEndpointStore

_PLAIN_DATATYPES = {
    "http://www.w3.org/2001/XMLSchema#" + name
    for name in ("string", "integer", "decimal", "double", "boolean")
}
# What CONSTRUCT/DESCRIBE results are written as, per --format.
_GRAPH_FORMATS = {"table": RdfFormat.TURTLE, "csv": RdfFormat.N_TRIPLES, "json": RdfFormat.JSON_LD}


class UnreadableInput(click.ClickException):
    """The query, a binding, or the store could not be read: exit status 2, like ``spore validate``."""

    exit_code = 2


def _named_queries_epilog() -> str:
    lines = ["\b", "Named queries:"]
    for name in queries.names():
        named = queries.describe(name)
        needs = "".join(f" --bind {b}=..." for b in named.required)
        lines.append(f"  {name}{needs}: {named.purpose}")
    return "\n".join(lines)


@click.command(epilog=_named_queries_epilog())
@click.argument("query_source", metavar="QUERY")
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SPORE_STORE",
    help="A node's store directory (embedded; opened read-only unless --update). Env: SPORE_STORE.",
)
@click.option(
    "--endpoint", envvar="SPORE_ENDPOINT", help="A SPARQL 1.1 query URL instead. Env: SPORE_ENDPOINT."
)
@click.option("--update-url", help="The endpoint's update URL for --update (default: --endpoint).")
@click.option("--user", envvar="SPORE_ENDPOINT_USER", help="HTTP basic user. Env: SPORE_ENDPOINT_USER.")
@click.option("--password", envvar="SPORE_ENDPOINT_PASSWORD", help="Env: SPORE_ENDPOINT_PASSWORD.")
@click.option("--token", envvar="SPORE_ENDPOINT_TOKEN", help="Bearer token. Env: SPORE_ENDPOINT_TOKEN.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per HTTP request.")
@click.option(
    "--bind",
    "bind_options",
    multiple=True,
    metavar='NAME=<iri>|"literal"',
    help='Bind ?NAME: <iri>, "text", "text"@en, "5"^^xsd:integer, 42, true or prefix:name. Repeatable.',
)
@click.option("--default-graph", multiple=True, metavar="IRI", help="Query over the union of these graphs.")
@click.option("--named-graph", multiple=True, metavar="IRI", help="Only these graphs are visible to GRAPH.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="SELECT: aligned table, SPARQL CSV or SPARQL JSON results. "
    "CONSTRUCT: Turtle, N-Triples or JSON-LD. ASK: true/false.",
)
@click.option(
    "--update", "is_update", is_flag=True, help="QUERY is a SPARQL update; opens the store for writing."
)
@click.option(
    "--fungiverse",
    is_flag=True,
    help="Run QUERY over every node the asking node knows (its --endpoint fans out, or the CLI fans "
    "out from --store); rows gain ?answeredBy and stderr says which peers answered.",
)
@click.option(
    "--peer-timeout", type=float, default=None, help="Seconds each peer gets with --fungiverse (default 10)."
)
def query(
    query_source: str,
    store_dir: Path | None,
    endpoint: str | None,
    update_url: str | None,
    user: str | None,
    password: str | None,
    token: str | None,
    timeout: float,
    bind_options: tuple[str, ...],
    default_graph: tuple[str, ...],
    named_graph: tuple[str, ...],
    output_format: str,
    is_update: bool,
    fungiverse: bool = False,
    peer_timeout: float | None = None,
) -> None:
    """Run QUERY against a node's store or a SPARQL endpoint and print the results.

    QUERY is the name of a shipped query (listed below), a path to a .rq file, or SPARQL text.
    Values are passed with --bind and joined into the query as BIND clauses, never pasted as text.

    Exit status: 0 on success, 2 when the query, a binding or the store cannot be read (the parser's
    message is shown), 1 for other failures such as an unreachable endpoint.

    \b
    Examples:
      spore query graph-sizes --store data/ada
      spore query describe-resource --store data/ada --bind resource=<https://host.example/nodes/ada>
      spore query node-summary --endpoint http://127.0.0.1:7878/query --format json
      spore query 'SELECT ?s WHERE { ?s a ?type } LIMIT 5' --store data/ada --bind type=schema:MusicGroup
      spore query fix.rq --update --endpoint http://127.0.0.1:7878/query --update-url http://127.0.0.1:7878/update
    """
    text, named = read_query(query_source)
    added_lines = text.count("\n") - query_source.count("\n") if named is None and text != query_source else 0
    bindings = dict(parse_binding(option) for option in bind_options)
    if named is not None:
        missing = [name for name in named.required if name not in bindings]
        if missing:
            raise UnreadableInput(
                f"{named.name} needs "
                + " ".join(f"--bind {name}=..." for name in missing)
                + f" ({named.bindings[missing[0]]})"
            )
    if fungiverse:
        run_fungiverse(
            text, bindings, store_dir, endpoint, token, timeout, peer_timeout, is_update, output_format
        )
        return
    store = open_target(store_dir, endpoint, update_url, user, password, token, timeout, writable=is_update)
    try:
        if is_update:
            store.update(text, bindings=bindings)
            return
        result = store.query(
            text,
            bindings=bindings,
            default_graph=[iri(g, "--default-graph") for g in default_graph] or None,
            named_graphs=[iri(g, "--named-graph") for g in named_graph] or None,
        )
        write_result(result, output_format)
    except QueryError as error:
        raise UnreadableInput(shift_position(first_line(error.message), added_lines)) from error
    except StoreError as error:
        raise click.ClickException(first_line(error.message)) from error
    finally:
        store.close()


def run_fungiverse(
    text: str,
    bindings: dict[str, Term],
    store_dir: Path | None,
    endpoint: str | None,
    token: str | None,
    timeout: float,
    peer_timeout: float | None,
    is_update: bool,
    output_format: str,
) -> None:
    """``--fungiverse``: fan the query out (see agents/fungiverse_query.py) and print the merged result."""
    from agents.fungiverse_query import ask_endpoint, ask_from_store, report_lines
    from knowledge.store.bindings import BindingError, bind

    if is_update:
        raise click.UsageError("--fungiverse runs queries only; updates stay on one store")
    if (store_dir is None) == (endpoint is None):
        raise click.UsageError(
            "--fungiverse needs exactly one of --store DIR or --endpoint URL (the asking node)"
        )
    try:
        text = bind(text, bindings)
        if endpoint is not None:
            result, answered, failed = ask_endpoint(
                endpoint, text, timeout=timeout, peer_timeout=peer_timeout, token=token
            )
        else:
            assert store_dir is not None
            if not store_dir.is_dir():
                raise UnreadableInput(f"no store directory {store_dir}")
            result, answered, failed = ask_from_store(store_dir, text, timeout=peer_timeout or 10.0)
    except (BindingError, QueryError, SyntaxError) as error:
        raise UnreadableInput(first_line(str(getattr(error, "message", error)))) from error
    except StoreError as error:
        raise click.ClickException(first_line(error.message)) from error
    write_result(result, output_format)
    for line in report_lines(answered, failed):
        click.echo(line, err=True)


def read_query(source: str) -> tuple[str, queries.NamedQuery | None]:
    """The query text, and its header when ``source`` names a shipped query."""
    if source in queries.names():
        named = queries.describe(source)
        return named.text, named
    path = Path(source)
    if source.endswith(".rq") or (len(source) < 4096 and "{" not in source and path.exists()):
        try:
            return path.read_text(encoding="utf-8"), None
        except OSError as error:
            raise UnreadableInput(f"cannot read {source}: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise UnreadableInput(f"cannot read {source}: not UTF-8 ({error.reason})") from error
    if "{" in source or any(word in source.upper() for word in ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE")):
        # Typed on a command line: the SPORE prefixes come for free (a PREFIX in the text overrides
        # them), on one line of their own that error positions are corrected for.
        from ontology import PREFIXES

        return "".join(f"PREFIX {p}: <{ns}> " for p, ns in PREFIXES.items()) + "\n" + source, None
    known = ", ".join(queries.names())
    raise UnreadableInput(
        f"{source!r} is not a named query, a .rq file or SPARQL text; named queries: {known}"
    )


def parse_binding(option: str) -> tuple[str, Term]:
    """``name=value`` -> (name, term); the value is read as one Turtle term, nothing else."""
    name, sep, value = option.partition("=")
    name = name.strip().lstrip("?$")
    if not sep or not name.isidentifier():
        raise UnreadableInput(f'--bind {option!r}: write NAME=<iri> or NAME="literal"')
    from ontology import PREFIXES

    prefixes = "".join(f"@prefix {p}: <{ns}> .\n" for p, ns in PREFIXES.items())
    subject = "<urn:spore:binding>"
    try:
        quads = list(parse(f"{prefixes}{subject} {subject} {value} .", RdfFormat.TURTLE))
    except SyntaxError:
        quads = []
    # Exactly one triple about our placeholder: a value cannot smuggle in a second statement.
    if len(quads) != 1 or isinstance(quads[0].object, BlankNode | Triple):
        raise UnreadableInput(
            f'--bind {name}={value}: not one RDF term; write <iri>, "text", "text"@en, '
            '"5"^^xsd:integer, 42, true or prefix:name'
        )
    return name, quads[0].object


def iri(value: str, option: str) -> NamedNode:
    try:
        return NamedNode(value.strip("<>"))
    except ValueError as error:
        raise UnreadableInput(f"{option} {value}: not an IRI ({error})") from error


def open_target(
    store_dir: Path | None,
    endpoint: str | None,
    update_url: str | None,
    user: str | None,
    password: str | None,
    token: str | None,
    timeout: float,
    *,
    writable: bool,
) -> KnowledgeStore:
    if (store_dir is None) == (endpoint is None):
        raise click.UsageError("give exactly one of --store DIR or --endpoint URL")
    if store_dir is not None:
        if not store_dir.is_dir():
            raise UnreadableInput(f"no store directory {store_dir}")
        try:
            return EmbeddedStore(store_dir, read_only=not writable)
        except StoreUnavailable as error:
            raise UnreadableInput(first_line(error.message)) from error
    assert endpoint is not None
    try:
        return SparqlEndpointStore(
            endpoint, update_url=update_url, user=user, password=password, token=token, timeout=timeout
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error


def write_result(result: QueryResult, output_format: str) -> None:
    out = sys.stdout.buffer
    if isinstance(result, bool):
        if output_format == "json":
            out.write(b'{"head":{},"boolean":%s}\n' % (b"true" if result else b"false"))
        else:
            click.echo("true" if result else "false")
    elif isinstance(result, QuerySolutions):
        if output_format == "table":
            click.echo(render_table([v.value for v in result.variables], result))
        else:
            results_format = QueryResultsFormat.JSON if output_format == "json" else QueryResultsFormat.CSV
            out.write(result.serialize(format=results_format) or b"")
            if output_format == "json":
                out.write(b"\n")
    else:
        from ontology import PREFIXES

        out.write(serialize(result, format=_GRAPH_FORMATS[output_format], prefixes=PREFIXES) or b"")
        if output_format == "json":
            out.write(b"\n")
    out.flush()


def render_table(variables: Sequence[str], solutions: Iterable[object]) -> str:
    """Aligned columns for people: IRIs shortened with the SPORE prefixes, literals by their value."""
    from ontology import PREFIXES

    namespaces = sorted(PREFIXES.items(), key=lambda item: -len(item[1]))
    rows = [[show(row[name], namespaces) for name in variables] for row in solutions]  # type: ignore[index]
    if not rows:
        return "  ".join(variables) + "\n(no results)"
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(variables)]
    lines = ["  ".join(name.ljust(w) for name, w in zip(variables, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def show(term: object, namespaces: Sequence[tuple[str, str]]) -> str:
    if term is None:
        return ""
    if isinstance(term, NamedNode):
        for prefix, namespace in namespaces:
            if term.value.startswith(namespace) and len(term.value) > len(namespace):
                return f"{prefix}:{term.value[len(namespace) :]}"
        return term.value
    if isinstance(term, Literal):
        value = term.value.replace("\n", "\\n")
        if term.language:
            return f"{value}@{term.language}"
        if term.datatype.value in _PLAIN_DATATYPES:
            return value
        return f"{value}^^{show(term.datatype, namespaces)}"
    return str(term)


def shift_position(message: str, lines: int) -> str:
    """Report ``error at LINE:COLUMN`` (pyoxigraph's and Oxigraph server's form) as the user typed it."""
    if not lines:
        return message
    return re.sub(r"error at (\d+):", lambda m: f"error at {int(m[1]) - lines}:", message, count=1)


def first_line(message: str, limit: int = 300) -> str:
    """One line, short enough to read: parsers list every token they expected."""
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 1] + "…"
