"""``spore explain NODE [DECISION]``: what a node decided, what it weighed, and on which evidence.

NODE is where the decisions are read:

* a store directory (opened read-only): every node's decisions in it, or one node's with ``--node``;
* a node's IRI with ``--store DIR``: that node's decisions in the store;
* the URL of a node a host serves (``http://host/nodes/alice``): its public SPARQL endpoint
  (``…/nodes/alice/sparql``) is asked, so a decision can be checked from anywhere; a URL that ends
  in ``/sparql`` is used as the endpoint itself.

DECISION narrows to one decision: its IRI, or the part after ``/decisions/`` (``12-switch``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from pyoxigraph import NamedNode

from knowledge.store import EmbeddedStore, KnowledgeStore, QueryError, StoreError, StoreUnavailable
from reasoning.decisions import DecisionView, read_decisions
from reasoning.records import rule_dataset

__all__ = ["explain"]


class UnreadableInput(click.ClickException):
    """NODE could not be read as a store or reached as a node: exit status 2, like ``spore validate``."""

    exit_code = 2


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _open(node: str, store_dir: Path | None, node_iri: str | None) -> tuple[KnowledgeStore, str | None, list]:
    """The store to read, the node whose decisions to show, and the dataset to read them from."""
    if store_dir is not None:
        if not _is_url(node):
            raise click.UsageError("with --store, NODE is the node's IRI (http:// or https://)")
        store = _embedded(store_dir)
        return store, node, rule_dataset(node)
    if _is_url(node):
        from knowledge.store.remote import SparqlEndpointStore

        stripped = node.rstrip("/")
        if stripped.endswith("/sparql"):
            return SparqlEndpointStore(stripped), node_iri, []
        return SparqlEndpointStore(f"{stripped}/sparql"), node_iri or stripped, []
    directory = Path(node)
    if not directory.is_dir():
        raise UnreadableInput(f"{node} is neither a store directory nor an http(s) URL of a node")
    store = _embedded(directory)
    graphs = [
        g for g in store.named_graphs() if isinstance(g, NamedNode) and not g.value.endswith("/private")
    ]
    return store, node_iri, graphs


def _embedded(directory: Path) -> EmbeddedStore:
    try:
        return EmbeddedStore(directory, read_only=True)
    except StoreError as error:
        raise UnreadableInput(f"cannot open the store {directory}: {error.message}") from error


def _decision_iri(decision: str, node: str | None) -> str:
    if _is_url(decision):
        return decision
    if node is None:
        raise click.UsageError(
            f"DECISION {decision!r} is not an IRI; name the node with --node to use a short name"
        )
    return f"{node.rstrip('/')}/decisions/{decision}"


def _text(views: list[DecisionView]) -> str:
    lines: list[str] = []
    for view in views:
        when = f"round {view.round}" if view.round is not None else "no round"
        lines.append(f"{view.iri}  {view.kind_name}  {when}  {view.at or ''}".rstrip())
        lines.append(f"  {view.explanation}")
        if view.options:
            lines.append("  options weighed:")
            for option in sorted(view.options, key=lambda o: (not o.chosen, -(o.score or -1.0))):
                score = f"score {option.score:.4f}" if option.score is not None else "no score"
                mark = "*" if option.chosen else " "
                chosen = "  (chosen)" if option.chosen else ""
                lines.append(f"   {mark} {option.target}  {score}{chosen}")
        if view.evidence:
            lines.append("  evidence:")
            for evidence in view.evidence:
                parts = [evidence.iri]
                if evidence.value is not None:
                    parts.append(f"{evidence.value:.4f}")
                if evidence.round is not None:
                    parts.append(f"round {evidence.round}")
                if evidence.by is not None:
                    parts.append(("claimed by " if evidence.claimed else "measured by ") + evidence.by)
                lines.append("    " + "  ".join(parts))
        lines.append("")
    return "\n".join(lines).rstrip()


def _json(views: list[DecisionView]) -> str:
    return json.dumps(
        [
            {
                "decision": v.iri,
                "kind": v.kind_name,
                "round": v.round,
                "at": v.at,
                "explanation": v.explanation,
                "options": [{"target": o.target, "score": o.score, "chosen": o.chosen} for o in v.options],
                "evidence": [
                    {"iri": e.iri, "value": e.value, "round": e.round, "by": e.by, "claimed": e.claimed}
                    for e in v.evidence
                ],
            }
            for v in views
        ],
        indent=2,
    )


@click.command()
@click.argument("node")
@click.argument("decision", required=False)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The store directory holding NODE's graphs, when NODE is the node's IRI.",
)
@click.option("--node", "node_iri", help="Only this node's decisions (when NODE is a store or an endpoint).")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain(
    node: str, decision: str | None, store_dir: Path | None, node_iri: str | None, output: str
) -> None:
    """Print a node's decisions: the options weighed, the evidence, and why.

    NODE is a store directory, a node IRI with --store, or the URL of a node served by a host.
    DECISION is one decision's IRI or the part after /decisions/ (such as 12-switch).
    """
    store, who, dataset = _open(node, store_dir, node_iri)
    try:
        views = read_decisions(
            store,
            node=who,
            decision=_decision_iri(decision, who) if decision else None,
            dataset=dataset or None,
        )
    except StoreUnavailable as error:
        raise UnreadableInput(f"cannot reach {node}: {error.message}") from error
    except (QueryError, StoreError) as error:
        raise click.ClickException(f"reading decisions failed: {error.message}") from error
    finally:
        store.close()
    if decision and not views:
        raise click.ClickException(f"no decision {_decision_iri(decision, who)} found")
    if not views:
        click.echo("no decisions recorded")
        return
    click.echo(_json(views) if output == "json" else _text(views))
