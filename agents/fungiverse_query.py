"""``spore query --fungiverse``: one query over every node a node knows, from the command line.

Two ways to ask, one answer format:

* ``--endpoint URL``: the node's (or host's) SPARQL endpoint does the fan-out (``?fungiverse=true``),
  so the host's SSRF guard, limits and peer knowledge apply; the CLI prints what it merged.
* ``--store DIR``: the CLI is the asking node itself: it answers from the store, finds the peers the
  store's public graphs mention, dereferences them for their endpoints and fans out from here.

Either way the merged rows carry ``?answeredBy`` and a report on stderr says which peers answered.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
import httpx
from pyoxigraph import NamedNode, QueryResultsFormat, QuerySolutions, RdfFormat, parse, parse_query_results

from federation.fanout import (
    FanoutResult,
    PeerAnswer,
    PeerStatus,
    discover_endpoints,
    fan_out,
    known_peers,
    merge,
    results_json,
)
from knowledge.graphs import PUBLIC_KINDS, check_public_query
from knowledge.store import EmbeddedStore, KnowledgeStore, QueryResult
from knowledge.store.bindings import query_form

__all__ = ["ask_endpoint", "ask_from_store", "report_lines"]

RESULTS_JSON = "application/sparql-results+json"
N_TRIPLES = "application/n-triples"


class RefusedQuery(click.ClickException):
    """The endpoint found the query malformed or not allowed: exit status 2, as for a local query."""

    exit_code = 2


def report_lines(answered: list[str], failed: dict[str, str]) -> list[str]:
    """What stderr says about the peers: one line for who answered, one per peer that did not."""
    lines = [f"answered ({len(answered)}): {' '.join(answered) or 'nobody'}"]
    lines += [f"not answered: {endpoint}: {why}" for endpoint, why in sorted(failed.items())]
    return lines


def _as_query_result(body: bytes, media: str) -> QueryResult:
    if media == N_TRIPLES:
        return iter(parse(body, format=RdfFormat.N_TRIPLES))  # type: ignore[return-value]
    parsed = parse_query_results(body, format=QueryResultsFormat.JSON)
    return parsed if isinstance(parsed, QuerySolutions) else bool(parsed)


def ask_endpoint(
    endpoint: str, text: str, *, timeout: float, peer_timeout: float | None, token: str | None
) -> tuple[QueryResult, list[str], dict[str, str]]:
    """Have ``endpoint`` fan the query out; returns its merged result and who answered."""
    form = query_form(text)
    accept = RESULTS_JSON if form in ("select", "ask") else N_TRIPLES
    params = {"fungiverse": "true"}
    if peer_timeout is not None:
        params["peer-timeout"] = f"{peer_timeout:g}"
    headers = {"accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(endpoint, params=params, data={"query": text}, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        raise click.ClickException(f"cannot reach {endpoint}: {error}") from error
    if response.status_code != 200:
        message = response.text.strip().splitlines()[0] if response.text.strip() else ""
        error = RefusedQuery if response.status_code == 400 else click.ClickException
        raise error(f"{endpoint} answered {response.status_code}: {message}")
    answered = response.headers.get("spore-answered-by", "").split()
    failed: dict[str, str] = {}
    if accept == RESULTS_JSON:
        report = json.loads(response.content).get("fungiverse", {})
        answered, failed = report.get("answered", answered), report.get("failed", {})
    elif response.headers.get("spore-not-answered"):
        for part in response.headers["spore-not-answered"].split("; "):
            endpoint_url, _, why = part.partition(" ")
            failed[endpoint_url] = why.strip("()")
    return _as_query_result(response.content, accept), answered, failed


def _local_answer(store: KnowledgeStore, text: str, graphs: list[Any], source: str) -> PeerAnswer:
    result = store.query(text, default_graph=graphs, named_graphs=graphs)
    if isinstance(result, bool):
        return PeerAnswer(source, PeerStatus.ANSWERED, results={"head": {}, "boolean": result})
    if isinstance(result, QuerySolutions):
        body = result.serialize(format=QueryResultsFormat.JSON) or b"{}"
        return PeerAnswer(source, PeerStatus.ANSWERED, results=json.loads(body))
    from pyoxigraph import serialize

    triples = serialize(result, format=RdfFormat.N_TRIPLES) or b""
    return PeerAnswer(source, PeerStatus.ANSWERED, triples=triples.decode())


def as_query_result(result: FanoutResult) -> QueryResult:
    """The merged result in the store's result types, so ``spore query`` prints it like any other."""
    if result.is_graph:
        return iter(result.triples)  # type: ignore[return-value]
    return _as_query_result(json.dumps(results_json(result)).encode(), RESULTS_JSON)


def ask_from_store(
    store_dir: Path, text: str, *, timeout: float
) -> tuple[QueryResult, list[str], dict[str, str]]:
    """Answer from the store's public graphs and from every peer they mention, merged."""
    check_public_query(text)
    store = EmbeddedStore(store_dir, read_only=True)
    try:
        graphs = [
            g
            for g in store.named_graphs()
            if isinstance(g, NamedNode) and any(g.value.endswith(f"/graphs/{k.value}") for k in PUBLIC_KINDS)
        ]
        local = _local_answer(store, text, graphs, f"file://{store_dir.resolve()}")
        peers = known_peers(store, graphs)
    finally:
        store.close()
    owners = {g.value.rsplit("/graphs/", 1)[0] for g in graphs}
    for owner in owners:
        peers.pop(owner, None)

    async def remote() -> FanoutResult:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            endpoints = await discover_endpoints(peers, client=client, timeout=timeout)
            return await fan_out(text, sorted(set(endpoints.values())), timeout=timeout, client=client)

    fanned = asyncio.run(remote())
    merged = merge([local, *fanned.answers])
    return as_query_result(merged), merged.answered, merged.failed
