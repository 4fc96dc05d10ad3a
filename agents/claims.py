"""Reading what a learning group claims about its model, once per host and not once per node.

A served node that reasons reads each known group's claim (``queries/group-claim.rq`` at the owner's
SPARQL endpoint) after every round. Fifty nodes on one host reading the same few dozen claims each
round made rounds of a 200-node federation three times slower (docs/benchmarks.md, hosts), while a
claim changes only when its owner merges a round. :class:`ClaimReader` keeps each group's latest
read for ``fresh_for`` seconds and lets nodes that ask while a read is under way wait for that one.
A stale claim costs nothing wrong: a node never switches on a claim alone, and the snapshot a claim
names is fetched and checked against its digest before it is used.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agents.protocol.messages import GroupInfo
from agents.thinking import Claim

__all__ = ["ClaimReader", "claim_from_results"]


def _term(cell: Mapping[str, Any] | None) -> str | None:
    value = cell.get("value") if isinstance(cell, Mapping) else None
    return value if isinstance(value, str) else None


def claim_from_results(results: Mapping[str, Any], group: GroupInfo) -> Claim | None:
    """The claim in a SPARQL JSON answer to ``queries/group-claim.rq``; None when there is none."""
    rows = results.get("results", {}).get("bindings", []) if isinstance(results.get("results"), dict) else []
    if not rows or not isinstance(rows[0], Mapping):
        return None
    row = rows[0]
    value, snapshot, sha256, download = (
        _term(row.get(k)) for k in ("value", "snapshot", "sha256", "download")
    )
    if value is None or snapshot is None or sha256 is None or download is None:
        return None
    try:
        figure = float(value)
    except ValueError:
        return None
    if not math.isfinite(figure):
        return None
    return Claim(
        figure,
        group.iri,
        group.owner,
        snapshot,
        hashtag=group.hashtag,
        sha256=sha256.lower(),
        download=download,
        blueprint=_term(row.get("blueprint")),
    )


class ClaimReader:
    """Group claims shared by a host's nodes: one read per group per ``fresh_for`` seconds."""

    def __init__(
        self,
        read: Callable[[GroupInfo], Awaitable[Claim | None]],
        *,
        fresh_for: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.fresh_for = fresh_for
        self._clock = clock
        self._latest: dict[tuple[str, str], tuple[float, asyncio.Task[Claim | None]]] = {}

    async def read(self, group: GroupInfo) -> Claim | None:
        """The group's claim, read now or at most ``fresh_for`` seconds ago (None: it has none)."""
        key = (group.iri, group.owner)
        now = self._clock()
        held = self._latest.get(key)
        if held is None or now - held[0] > self.fresh_for:
            held = (now, asyncio.ensure_future(self._read(group)))
            self._latest[key] = held
        # Shielded: one node's cancelled round must not cancel the read other nodes wait for.
        return await asyncio.shield(held[1])

    def forget(self, claim: Claim) -> None:
        """Drop the held read of ``claim``'s group: the snapshot it names is gone (its owner merged
        another round), so the next node that asks reads the group's claim again."""
        self._latest.pop((claim.group, claim.owner), None)
