"""``/sparql?fungiverse=true``: the endpoint option that runs a query over every node the host knows.

The endpoint's own scope answers too (it is one of the fanned-out endpoints, asked over HTTP like
the others, so every answer passes the same limits). Peers are what the scope's public graphs mention
plus the federation relations of its actors (followers, follows, group members), their endpoints
found by dereferencing them (:func:`federation.fanout.discover_endpoints`). Every URL is checked by
the host's SSRF guard first: peers' data names those URLs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import replace
from functools import cache

import httpx
from fastapi.responses import Response
from pyoxigraph import NamedNode, Store

from federation.fanout import (
    FanoutResult,
    PeerAnswer,
    PeerStatus,
    discover_endpoints,
    fan_out,
    known_peers,
    results_json,
)
from federation.linked_data.negotiation import Representation
from federation.linked_data.serialise import serialise
from federation.runtime import HostRuntime
from federation.sparql_protocol import ProtocolError, negotiate
from federation.ssrf import SsrfPolicy, guard_url
from federation.state import Relation
from knowledge.store import KnowledgeStore
from knowledge.store.bindings import query_form

__all__ = ["wants_fungiverse", "answer_fungiverse", "report_headers"]

_RESULTS = ("application/sparql-results+json", "application/json")
_GRAPHS = {
    "text/turtle": Representation.TURTLE,
    "application/n-triples": Representation.N_TRIPLES,
    "application/ld+json": Representation.JSON_LD,
}
DEFAULT_PEER_TIMEOUT = 10.0
FANOUT_MAX_PEERS = 256
"""Endpoints one fungiverse query reaches at most; the rest are reported as skipped."""


@cache
def _tls(verify: bool | str) -> ssl.SSLContext | bool:
    """One SSL context per setting for the host's lifetime: loading the CA bundle takes 0.1 s or more."""
    if verify is False:
        return False
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def wants_fungiverse(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def report_headers(result: FanoutResult) -> dict[str, str]:
    """Who answered, in headers too, so a client reading a Turtle answer still learns it."""
    failed = "; ".join(f"{endpoint} ({why})" for endpoint, why in result.failed.items())
    return {
        "spore-answered-by": " ".join(result.answered),
        "spore-not-answered": " ".join(failed.split()),
        "access-control-expose-headers": "spore-answered-by, spore-not-answered",
        "vary": "accept",
    }


def _peer_timeout(value: str | None, limit: float) -> float:
    if value is None:
        return min(DEFAULT_PEER_TIMEOUT, limit)
    try:
        seconds = float(value)
    except ValueError as error:
        raise ProtocolError(400, f"peer-timeout must be a number of seconds, not {value!r}") from error
    if not 0 < seconds <= limit:
        raise ProtocolError(400, f"peer-timeout must be above 0 and at most {limit:g} s")
    return seconds


async def answer_fungiverse(
    runtime: HostRuntime,
    store: KnowledgeStore,
    *,
    text: str,
    endpoint: str,
    public_graphs: tuple[NamedNode, ...],
    actors: tuple[str, ...],
    accept: str | None,
    peer_timeout: str | None,
    limit: float,
) -> Response:
    """Fan ``text`` out from the endpoint at ``endpoint`` and answer with the merged result."""
    form = query_form(text)
    offers = list(_RESULTS) if form in ("select", "ask") else list(_GRAPHS)
    media = negotiate(accept, offers)
    if media is None:
        raise ProtocolError(406, f"a fungiverse {form or 'query'} answer is served as {', '.join(offers)}")
    timeout = _peer_timeout(peer_timeout, limit)
    try:
        Store().query(text)  # parse only (an empty store answers at once): peers need not see a typo
    except SyntaxError as error:
        raise ProtocolError(400, f"malformed query: {' '.join(str(error).split())[:300]}") from error
    peers = await asyncio.to_thread(known_peers, store, list(public_graphs))
    for actor in actors:
        for kind in (Relation.FOLLOWER, Relation.FOLLOWING, Relation.MEMBER):
            for remote in runtime.state.related(actor, kind):
                peers.setdefault(remote, None)
    for actor in actors:
        peers.pop(actor, None)  # the endpoint itself answers for its own actors
    # Each peer without a stated endpoint costs a lookup: as many as the fan-out may reach, no more.
    unstated = [peer for peer, stated in peers.items() if not stated][FANOUT_MAX_PEERS:]
    for peer in unstated:
        del peers[peer]
    config = runtime.config
    policy = SsrfPolicy(allow_loopback=config.allow_loopback, allow_private=config.allow_private)

    async def guard(url: str) -> None:
        await guard_url(url, policy, runtime.resolver)

    # trust_env=False: no proxy from the environment, so the address the SSRF guard checked is the one
    # connected to (and building a client that reads proxy settings costs 0.1-0.3 s per request).
    client = httpx.AsyncClient(verify=_tls(config.tls_verify), follow_redirects=False, trust_env=False)
    async with client:
        endpoints = await discover_endpoints(peers, client=client, timeout=timeout, guard=guard)
        targets = [endpoint, *sorted(set(endpoints.values()) - {endpoint})]
        result = await fan_out(text, targets[:FANOUT_MAX_PEERS], timeout=timeout, client=client, guard=guard)
    skipped = [
        PeerAnswer(url, PeerStatus.FAILED, f"skipped: over the limit of {FANOUT_MAX_PEERS} peers")
        for url in targets[FANOUT_MAX_PEERS:]
    ]
    result = replace(result, answers=[*result.answers, *skipped])
    headers = report_headers(result)
    if media in _RESULTS:
        body = json.dumps(results_json(result), ensure_ascii=False).encode()
        return Response(body, media_type="application/sparql-results+json", headers=headers)
    return Response(serialise(result.triples, _GRAPHS[media]), media_type=media, headers=headers)
