"""Queries across the fungiverse: one SPARQL query sent to every endpoint a node knows, in parallel.

Each peer gets the plain query over the SPARQL 1.1 Protocol (never the fan-out flag, so a query cannot
bounce around the network) under its own timeout; the answers are merged into one result that says
which peers answered and why the others did not. ``SERVICE`` clauses were the alternative, but a public
endpoint refuses them (they would make the host fetch URLs of a stranger's choosing), and one slow
peer would stall a whole ``SERVICE`` join where fan-out just reports it.

Merging is pure (:func:`merge`): SELECT rows are concatenated with an extra variable naming the
endpoint that produced each row, ASK answers are or-ed, graphs are unioned with blank nodes kept
apart per peer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from pyoxigraph import BlankNode, NamedNode, RdfFormat, Triple, parse

import queries
from knowledge.store import KnowledgeStore

__all__ = [
    "PeerStatus",
    "PeerAnswer",
    "FanoutResult",
    "SOURCE_VARIABLE",
    "fan_out",
    "merge",
    "results_json",
    "discover_endpoints",
    "known_peers",
]

SOURCE_VARIABLE = "answeredBy"
"""The variable each merged SELECT row gets, naming the endpoint that answered it."""
ACCEPT = "application/sparql-results+json, application/n-triples;q=0.9"
Guard = Callable[[str], Awaitable[None]]
VOID_ENDPOINT = "http://rdfs.org/ns/void#sparqlEndpoint"
SPORE_MEMBERS = "https://w3id.org/spore/ns#members"
DESCRIBE_ACCEPT = "text/turtle, application/activity+json;q=0.5"


class PeerStatus(StrEnum):
    ANSWERED = "answered"
    TIMEOUT = "timeout"
    FAILED = "failed"  # an HTTP error status, a refused destination or an unreadable answer


@dataclass(frozen=True)
class PeerAnswer:
    """One endpoint's answer: parsed JSON results or N-Triples text when it answered, else why not."""

    endpoint: str
    status: PeerStatus
    detail: str = ""
    seconds: float = 0.0
    results: dict[str, Any] | None = None
    triples: str | None = None


@dataclass(frozen=True)
class FanoutResult:
    """The merged answer; exactly one of (variables, rows), boolean and triples is meaningful."""

    variables: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    boolean: bool | None = None
    triples: list[Triple] = field(default_factory=list)
    answers: list[PeerAnswer] = field(default_factory=list)

    @property
    def answered(self) -> list[str]:
        return [a.endpoint for a in self.answers if a.status is PeerStatus.ANSWERED]

    @property
    def failed(self) -> dict[str, str]:
        return {
            a.endpoint: f"{a.status.value}: {a.detail}"
            for a in self.answers
            if a.status is not PeerStatus.ANSWERED
        }

    @property
    def is_graph(self) -> bool:
        return any(a.triples is not None for a in self.answers)


def _source_name(variables: Iterable[str]) -> str:
    taken = set(variables)
    name, number = SOURCE_VARIABLE, 1
    while name in taken:
        number += 1
        name = f"{SOURCE_VARIABLE}{number}"
    return name


def _blank_nodes_apart(triples: Iterable[Triple], peer: int) -> list[Triple]:
    """Blank node labels are local to one document: two peers' ``_:b0`` are different nodes."""

    def apart(term: Any) -> Any:
        return BlankNode(f"p{peer}x{term.value}") if isinstance(term, BlankNode) else term

    return [Triple(apart(t.subject), t.predicate, apart(t.object)) for t in triples]


def merge(answers: Sequence[PeerAnswer]) -> FanoutResult:
    """One result from the peers' answers, in the order the endpoints were given."""
    answered = [a for a in answers if a.status is PeerStatus.ANSWERED]
    if any(a.triples is not None for a in answered):
        triples: dict[Triple, None] = {}
        for number, answer in enumerate(answered):
            parsed = parse(answer.triples or "", format=RdfFormat.N_TRIPLES)
            triples.update(dict.fromkeys(_blank_nodes_apart(parsed, number)))
        return FanoutResult(triples=list(triples), answers=list(answers))
    booleans = [a.results["boolean"] for a in answered if a.results and "boolean" in a.results]
    if booleans:
        return FanoutResult(boolean=any(booleans), answers=list(answers))
    variables: list[str] = []
    for answer in answered:
        for name in (answer.results or {}).get("head", {}).get("vars", []):
            if name not in variables:
                variables.append(name)
    source = _source_name(variables)
    rows = [
        {**row, source: {"type": "uri", "value": answer.endpoint}}
        for answer in answered
        for row in (answer.results or {}).get("results", {}).get("bindings", [])
    ]
    return FanoutResult(variables=[*variables, source], rows=rows, answers=list(answers))


def results_json(result: FanoutResult) -> dict[str, Any]:
    """SPARQL 1.1 Query Results JSON, plus a ``fungiverse`` member saying who answered.

    The format lets consumers skip unknown members, but strict parsers (pyoxigraph's) refuse anything
    after ``results``/``boolean``, so the report comes before them.
    """
    report = {"answered": result.answered, "failed": result.failed}
    if result.boolean is not None:
        return {"head": {}, "fungiverse": report, "boolean": result.boolean}
    return {
        "head": {"vars": result.variables},
        "fungiverse": report,
        "results": {"bindings": result.rows},
    }


async def _ask(
    client: httpx.AsyncClient, endpoint: str, query: str, timeout: float, guard: Guard | None
) -> PeerAnswer:
    started = time.monotonic()

    def answer(status: PeerStatus, detail: str = "", **parts: Any) -> PeerAnswer:
        return PeerAnswer(endpoint, status, detail, round(time.monotonic() - started, 3), **parts)

    try:
        if guard is not None:
            await guard(endpoint)
        response = await asyncio.wait_for(
            client.post(endpoint, data={"query": query}, headers={"accept": ACCEPT}, timeout=timeout),
            timeout,
        )
    except (TimeoutError, httpx.TimeoutException):
        return answer(PeerStatus.TIMEOUT, f"no answer within {timeout:g} s")
    except Exception as error:  # refused destination, connection refused, TLS: all say "not answered"
        return answer(PeerStatus.FAILED, " ".join(str(error).split())[:200] or type(error).__name__)
    if response.status_code != 200:
        return answer(PeerStatus.FAILED, f"HTTP {response.status_code}: {response.text.strip()[:200]}")
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "application/n-triples":
        return answer(PeerStatus.ANSWERED, triples=response.text)
    try:
        results = response.json()
    except ValueError:
        return answer(PeerStatus.FAILED, f"unreadable answer ({media or 'no content type'})")
    if not isinstance(results, dict) or not ("boolean" in results or "results" in results):
        return answer(PeerStatus.FAILED, "not SPARQL results")
    return answer(PeerStatus.ANSWERED, results=results)


async def fan_out(
    query: str,
    endpoints: Sequence[str],
    *,
    timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
    guard: Guard | None = None,
) -> FanoutResult:
    """Send ``query`` to every endpoint at once and merge what comes back within ``timeout``.

    ``guard`` checks each URL before it is fetched (the host passes its SSRF guard: the endpoints come
    from peers' data, so a peer could otherwise point the host at its own loopback services).
    """
    unique = list(dict.fromkeys(endpoints))
    own = client is None
    client = client or httpx.AsyncClient(follow_redirects=False)
    try:
        answers = await asyncio.gather(*(_ask(client, e, query, timeout, guard) for e in unique))
    finally:
        if own:
            await client.aclose()
    return merge(answers)


def known_peers(store: KnowledgeStore, graphs: Sequence[NamedNode]) -> dict[str, str | None]:
    """The peers the given public graphs mention, each with its stated SPARQL endpoint or ``None``."""
    if not graphs:
        return {}
    rows = store.query(
        queries.load("fungiverse-peers"), default_graph=list(graphs), named_graphs=list(graphs)
    )
    found: dict[str, str | None] = {}
    for row in rows:  # type: ignore[union-attr]
        endpoint = row["endpoint"]
        if found.get(row["peer"].value) is None:
            found[row["peer"].value] = endpoint.value if endpoint is not None else None
    return found


async def _describe_peer(
    client: httpx.AsyncClient, peer: str, timeout: float, guard: Guard | None
) -> tuple[str | None, list[str]]:
    """(endpoint, members) from the peer's own description: Turtle from SPORE hosts, AS2 JSON otherwise."""
    try:
        if guard is not None:
            await guard(peer)
        response = await asyncio.wait_for(
            client.get(peer, headers={"accept": DESCRIBE_ACCEPT}, timeout=timeout), timeout
        )
    except Exception:  # an unreachable peer simply has no endpoint we can use
        return None, []
    if response.status_code != 200:
        return None, []
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "text/turtle":
        try:
            triples = list(parse(response.content, format=RdfFormat.TURTLE, base_iri=peer))
        except SyntaxError:
            return None, []
        subject = NamedNode(peer)
        endpoints = [
            t.object.value for t in triples if t.subject == subject and t.predicate.value == VOID_ENDPOINT
        ]
        members = [
            t.object.value for t in triples if t.subject == subject and t.predicate.value == SPORE_MEMBERS
        ]
        return (endpoints[0] if endpoints else None), members
    try:
        document = response.json()
    except ValueError:
        return None, []
    endpoint = document.get("sparqlEndpoint") if isinstance(document, dict) else None
    return (endpoint if isinstance(endpoint, str) else None), []


async def discover_endpoints(
    peers: dict[str, str | None],
    *,
    client: httpx.AsyncClient,
    timeout: float = 5.0,
    guard: Guard | None = None,
) -> dict[str, str]:
    """Each peer's SPARQL endpoint, dereferencing the peers whose endpoint is not stated.

    A learning group has no endpoint of its own, but its description lists its members, which are
    looked up in a second wave: a node knows the other members of its groups.
    """
    found = {peer: endpoint for peer, endpoint in peers.items() if endpoint}
    wave = [peer for peer, endpoint in peers.items() if not endpoint]
    seen = set(peers)
    for _ in range(2):
        described = await asyncio.gather(*(_describe_peer(client, p, timeout, guard) for p in wave))
        members: list[str] = []
        for peer, (endpoint, listed) in zip(wave, described, strict=True):
            if endpoint:
                found[peer] = endpoint
            members += [m for m in listed if m not in seen]
        seen.update(members)
        wave = list(dict.fromkeys(members))
        if not wave:
            break
    return found
