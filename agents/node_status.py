"""``GET /status``: a host's nodes, their groups, rounds and last metrics, as JSON.

The shape is documented in docs/federation.md ("Host status") and read by ``spore status``,
``spore demo`` and peer hosts (which learn nodes, inboxes, sought hashtags and owned groups from it),
so fields are added, never renamed. Rendering is pure over the host's current values.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agents.node import FungusNode
from agents.protocol.messages import PUBLIC, Announce
from agents.protocol.wire import to_activity
from federation.vocab import same_origin

if TYPE_CHECKING:
    from agents.hosting import NodeHost

__all__ = ["host_status", "status_router"]


def host_status(host: NodeHost) -> dict[str, Any]:
    """The host's JSON status (shape documented in docs/federation.md, "Host status")."""
    nodes = [_node_status(host, node) for node in host.nodes.values()]
    base = host.runtime.config.base_url
    nodes += [
        _planned_status(host, actor, seeks)
        for actor, seeks in host.known.items()
        if actor not in host.nodes and same_origin(actor, base)
    ]
    rounds = [entry["round"] for entry in nodes if entry["round"] is not None]
    groups = [group for entry in nodes for group in entry["owns"]]
    return {
        "host": host.runtime.config.base_url,
        "now": round(host.now(), 3),
        "ready": host.ready,
        "started": host.epoch is not None,
        "round": max(rounds, default=None),
        "done": bool(host.nodes) and all(node.done for node in host.nodes.values()),
        "nodes": nodes,
        "groups": [{key: value for key, value in group.items() if key != "announce"} for group in groups],
        "peers": [
            {
                "url": peer,
                "reachable": peer in host.peer_status,
                "nodes": len(host.peer_status.get(peer, {}).get("nodes", [])),
            }
            for peer in host.options.peers
        ],
        "transport": dict(sorted(host.transport.stats.items())),
    }


def _planned_status(host: NodeHost, actor: str, seeks: tuple[str, ...]) -> dict[str, Any]:
    """A node that is still being built (its data loading): known by name and hashtags only."""
    local = host.runtime.actors.by_id(actor)
    return {
        "name": local.name if local is not None else actor.rsplit("/", 1)[-1],
        "actor": actor,
        "inbox": local.inbox if local is not None else None,
        "shared_inbox": f"{host.runtime.config.base_url}/inbox",
        "seeks": list(seeks),
        "up": False,
        "done": False,
        "round": None,
        "rounds_done": 0,
        "phase": None,
        "group": None,
        "owns": [],
        "last_round": None,
        "bytes_sent": 0,
        "counters": {},
    }


def _node_status(host: NodeHost, node: FungusNode) -> dict[str, Any]:
    state = node.state
    membership = state.membership
    record = state.last_round
    local = host.runtime.actors.by_id(node.actor)
    owns = []
    for owned in state.owned.values():
        announce, _ = to_activity(
            Announce(id=f"{node.actor}/status#announce", actor=node.actor, to=(PUBLIC,), group=owned.info)
        )
        owns.append(
            {
                "iri": owned.info.iri,
                "hashtag": owned.info.hashtag,
                "owner": owned.info.owner,
                "members": sorted(owned.members),
                "round": membership.round if membership is not None else None,
                "announce": announce,
            }
        )
    return {
        "name": node.name,
        "actor": node.actor,
        "inbox": local.inbox if local is not None else None,
        "shared_inbox": f"{host.runtime.config.base_url}/inbox",
        "seeks": list(state.seeks),
        "up": node.up,
        "done": node.done,
        "round": node.round,
        "rounds_done": state.rounds_done,
        "phase": membership.phase if membership is not None else None,
        "group": None
        if membership is None
        else {
            "iri": membership.group.iri,
            "hashtag": membership.group.hashtag,
            "owner": membership.group.owner,
            "members": sorted(membership.members),
            "rule": membership.group.aggregation_rule,
            "schedule": membership.group.schedule,
        },
        "owns": owns,
        "last_round": None
        if record is None
        else {
            "round": record.round,
            "contributors": list(record.contributors),
            "merged_sha256": record.merged_sha256,
            "metrics": dict(record.metrics),
        },
        "bytes_sent": host.bytes_sent(node.actor),
        "counters": dict(sorted(state.counters.items())),
    }


def status_router(host: NodeHost) -> APIRouter:
    """The ``/status`` route (JSON; ``default=str`` keeps any non-JSON value readable)."""
    router = APIRouter()

    @router.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse(json.loads(json.dumps(host_status(host), default=str)))

    return router
