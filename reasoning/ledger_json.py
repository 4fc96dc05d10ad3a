"""A node's defederation ledger as JSON, so that a node that restarts remembers whom it blocked.

The node's graphs hold its accusations and decisions (:mod:`reasoning.accusations`), but not what
the rules need to go on deciding: the clean rounds and strikes behind each peer's standing, and the
time each block began. The checkpoint (``agents/node.py``) keeps the whole ledger next to the
weights in this form.

Times in a ledger are protocol seconds of the node's host, which start again at 0 when the host
restarts. The caller passes ``shift``, the seconds to add to every time: on save, from protocol
to wall-clock seconds; on load, from wall-clock to the restarted host's protocol seconds. An appeal
window therefore runs out at the same wall-clock moment whether the node restarted or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reasoning.defederation import Accusation, Block, DefederationEvent, Ledger
from reasoning.screening import Offence
from reasoning.standing import PeerRecord

__all__ = ["LEDGER_FORMAT", "ledger_from_json", "ledger_to_json"]

LEDGER_FORMAT = "spore-ledger/1"


def _accusation(a: Accusation, shift: float) -> dict[str, Any]:
    return {
        "id": a.id,
        "accuser": a.accuser,
        "accused": a.accused,
        "offence": str(a.offence),
        "round": a.round,
        "evidence": list(a.evidence),
        "explanation": a.explanation,
        "at": a.at + shift,
    }


def ledger_to_json(ledger: Ledger, *, shift: float = 0.0) -> dict[str, Any]:
    """``ledger`` as plain JSON values, every time moved by ``shift`` seconds."""
    return {
        "format": LEDGER_FORMAT,
        "me": ledger.me,
        "peers": {
            actor: {
                "clean": r.clean,
                "strikes": r.strikes,
                "corroborated": r.corroborated,
                "contradicted": r.contradicted,
                "last_strike_round": r.last_strike_round,
            }
            for actor, r in sorted(ledger.peers.items())
        },
        "received": [_accusation(a, shift) for by in ledger.received.values() for a in by.values()],
        "accused_by_me": [_accusation(a, shift) for a in ledger.accused_by_me.values()],
        "blocks": [
            {
                "actor": b.actor,
                "since": b.since + shift,
                "reason": b.reason,
                "accusations": list(b.accusations),
                "by_policy": b.by_policy,
            }
            for b in ledger.blocks.values()
        ],
        "history": [
            {
                "kind": e.kind,
                "actor": e.actor,
                "at": e.at + shift,
                "explanation": e.explanation,
                "evidence": list(e.evidence),
            }
            for e in ledger.history
        ],
    }


def _read_accusation(item: Mapping[str, Any], shift: float) -> Accusation:
    return Accusation(
        id=str(item["id"]),
        accuser=str(item["accuser"]),
        accused=str(item["accused"]),
        offence=Offence(item["offence"]),
        round=int(item["round"]),
        evidence=tuple(str(e) for e in item["evidence"]),
        explanation=str(item["explanation"]),
        at=float(item["at"]) + shift,
    )


def ledger_from_json(data: Any, *, shift: float = 0.0) -> Ledger:
    """The ledger :func:`ledger_to_json` wrote, every time moved by ``shift`` seconds.

    Raises ValueError naming what is wrong when ``data`` is not such a ledger (a hand-edited or
    truncated checkpoint must not start a node with half a memory).
    """
    if not isinstance(data, Mapping) or data.get("format") != LEDGER_FORMAT:
        raise ValueError(f"not a defederation ledger in format {LEDGER_FORMAT}")
    try:
        me = str(data["me"])
        peers = {
            str(actor): PeerRecord(
                clean=int(r["clean"]),
                strikes=int(r["strikes"]),
                corroborated=int(r["corroborated"]),
                contradicted=int(r["contradicted"]),
                last_strike_round=None if r["last_strike_round"] is None else int(r["last_strike_round"]),
            )
            for actor, r in data["peers"].items()
        }
        received: dict[str, dict[str, Accusation]] = {}
        for item in data["received"]:
            accusation = _read_accusation(item, shift)
            received.setdefault(accusation.accused, {})[accusation.accuser] = accusation
        accused_by_me = {a.accused: a for a in (_read_accusation(i, shift) for i in data["accused_by_me"])}
        blocks = {
            str(b["actor"]): Block(
                actor=str(b["actor"]),
                since=float(b["since"]) + shift,
                reason=str(b["reason"]),
                accusations=tuple(str(a) for a in b["accusations"]),
                by_policy=bool(b["by_policy"]),
            )
            for b in data["blocks"]
        }
        history = tuple(
            DefederationEvent(
                kind=str(e["kind"]),
                actor=str(e["actor"]),
                at=float(e["at"]) + shift,
                explanation=str(e["explanation"]),
                evidence=tuple(str(x) for x in e["evidence"]),
            )
            for e in data["history"]
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"defederation ledger: malformed entry ({type(error).__name__}: {error})") from error
    return Ledger(
        me=me,
        peers=peers,
        received=received,
        accused_by_me=accused_by_me,
        blocks=blocks,
        history=history,
    )
