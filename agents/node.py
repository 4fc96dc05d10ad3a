"""A fungus node at run time: its protocol context and state, its graphs, and what it keeps on disk.

The protocol core is pure (``step``); a :class:`FungusNode` is the one mutable place that holds a
node's current :class:`~agents.protocol.state.NodeState` between steps, under any transport. The host
(:mod:`agents.hosting`) drives it on the wall clock; the simulator drives the same values on a
virtual one. A checkpoint (weights as safetensors plus a small JSON record) is what lets a host that
stops resume its nodes where they were: the round number, the latest model, and the activity
sequence (peers drop a reused activity id as a replay).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from agents.node_blueprint import Blueprint
from agents.protocol.context import NodeContext
from agents.protocol.core import Envelope, step
from agents.protocol.learning import shared_part
from agents.protocol.messages import BlueprintSummary, GroupInfo, Message, shapes_of
from agents.protocol.state import NodeState, OwnedGroup, initial_state
from knowledge.graphs import NodeGraphs
from reasoning.defederation import Ledger
from reasoning.ledger_json import ledger_from_json, ledger_to_json

log = logging.getLogger(__name__)

__all__ = ["Checkpoint", "FungusNode", "founded_group", "load_checkpoint", "node_state", "save_checkpoint"]

# A resumed node skips this many activity ids past its checkpoint: steps after the last checkpoint
# minted ids that peers have seen, and a reused id is dropped as a replay.
SEQUENCE_GAP = 100_000


def founded_group(actor: str, hashtag: str, shared_shapes: Any, **settings: Any) -> GroupInfo:
    """The learning group a node founds for ``hashtag``: ``{actor}/groups/{tag}``, owned by it."""
    return GroupInfo(
        iri=f"{actor}/groups/{hashtag[1:]}",
        hashtag=hashtag,
        owner=actor,
        shared_shapes=shared_shapes,
        **settings,
    )


def node_state(
    actor: str,
    *,
    seed: int,
    weights: Mapping[str, Tensor],
    architecture: str,
    seeks: tuple[str, ...],
    founds: Iterable[GroupInfo] = (),
    blueprint_iri: str | None = None,
) -> NodeState:
    """A node's first state: its blueprint summary is derived from the shared part of its weights."""
    blueprint = BlueprintSummary(
        iri=blueprint_iri or f"{actor}/blueprint",
        architecture=architecture,
        shared_shapes=shapes_of(shared_part(weights)),
    )
    return initial_state(
        actor, seed=seed, blueprint=blueprint, weights=weights, seeks=seeks, owns=tuple(founds)
    )


@dataclass(eq=False)
class FungusNode:
    """One node of a host: ``name`` (its actor's path segment), protocol context and current state.

    ``boot_at`` is when (in protocol seconds of its host) the node starts; deliveries before that are
    lost, as they are to a simulated node that is not up. ``graphs`` are its named graphs in the
    host's store when the host keeps them.
    """

    name: str
    ctx: NodeContext
    state: NodeState
    boot_at: float = 0.0
    graphs: NodeGraphs | None = None
    up: bool = False
    blueprint: Blueprint | None = None  # what it was served from: the host publishes it (node_publish)

    @property
    def actor(self) -> str:
        return self.state.actor

    def step(self, inbox: list[Envelope], now: float) -> list[Message]:
        """One protocol transition; the caller serialises steps of one node (the core is pure)."""
        alone = self.state.counters.get("founded-alone", 0)
        self.state, outbox = step(self.ctx, self.state, inbox, now)
        if self.state.counters.get("founded-alone", 0) > alone and self.state.membership is not None:
            # The fallback that keeps --rounds N finite: say it, since the node now trains by itself.
            log.warning(
                "node %s reached no group for %.0f s: founded %s alone",
                self.name,
                self.ctx.found_after,
                self.state.membership.group.iri,
            )
        return outbox

    @property
    def round(self) -> int | None:
        """The group round this node is in (None: in no group yet)."""
        membership = self.state.membership
        return None if membership is None else membership.round

    @property
    def done(self) -> bool:
        """Whether it has finished its last round (``ctx.max_rounds``); never for an open-ended node."""
        limit, current = self.ctx.max_rounds, self.round
        return limit is not None and current is not None and current >= limit


@dataclass(frozen=True)
class Checkpoint:
    """What a node keeps on disk: the round it reached, its model, its activity sequence, and its
    defederation memory (``defence``, its times in protocol seconds counted from the load)."""

    round: int
    rounds_done: int
    sequence: int
    weights: dict[str, Tensor]
    group: str | None = None  # hashtag of the group it trained with
    founded: str | None = None  # hashtag of the group it owns: a resumed node founds it again
    defence: Ledger | None = None

    def resume(self, state: NodeState) -> NodeState:
        """``state`` (a fresh initial state) carried on from this checkpoint.

        Owned groups continue at the stored round (the owner's round is the group's); a member
        rejoins and receives the group's current round and model with the Accept. Peers the node
        blocked stay blocked (its deliveries from them are dropped, its groups refuse them) until
        their appeal window runs out.
        """
        ledger = self.defence if self.defence is not None and self.defence.me == state.actor else None
        blocked = ledger.blocked if ledger is not None else frozenset()
        owned = {
            iri: OwnedGroup(
                info=group.info,
                members=group.members - blocked,
                last_seen={state.actor: self.round},
                blocked=group.blocked | blocked,
            )
            for iri, group in state.owned.items()
        }
        resumed = replace(
            state,
            weights={**state.weights, **self.weights},
            owned=owned,
            sequence=self.sequence + SEQUENCE_GAP,
            rounds_done=self.rounds_done,
        )
        if ledger is None:
            return resumed
        return replace(resumed, defence=ledger, blocked=resumed.blocked | blocked)


def save_checkpoint(state: NodeState, directory: Path, now: float = 0.0, wall: float | None = None) -> None:
    """Write the node's checkpoint atomically (a crash mid-write leaves the previous one).

    ``now`` is the protocol time of the state (the host's seconds since its epoch) and ``wall`` the
    wall clock at that moment (default: now): the ledger's times are stored as wall-clock seconds,
    since a restarted host counts its protocol seconds from 0 again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    membership = state.membership
    record = {
        "round": membership.round if membership is not None else 0,
        "rounds_done": state.rounds_done,
        "sequence": state.sequence,
        "group": membership.group.hashtag if membership is not None else None,
        "founded": next((owned.info.hashtag for owned in state.owned.values()), None),
    }
    weights_tmp = directory / "weights.safetensors.tmp"
    save_file({name: tensor.contiguous() for name, tensor in state.weights.items()}, str(weights_tmp))
    os.replace(weights_tmp, directory / "weights.safetensors")
    if isinstance(state.defence, Ledger):
        shift = (time.time() if wall is None else wall) - now
        ledger_tmp = directory / "ledger.json.tmp"
        ledger_tmp.write_text(json.dumps(ledger_to_json(state.defence, shift=shift), sort_keys=True))
        os.replace(ledger_tmp, directory / "ledger.json")
    record_tmp = directory / "checkpoint.json.tmp"
    record_tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(record_tmp, directory / "checkpoint.json")


def load_checkpoint(directory: Path, wall: float | None = None) -> Checkpoint | None:
    """The stored checkpoint, or None when the node has none (its first start).

    The ledger's times come back as protocol seconds of a host whose epoch is the load (``wall``,
    default now): a block made 50 s before the checkpoint, loaded 10 s after it, began at -60.
    """
    record_path, weights_path = directory / "checkpoint.json", directory / "weights.safetensors"
    if not record_path.exists() or not weights_path.exists():
        return None
    record = json.loads(record_path.read_text())
    ledger_path = directory / "ledger.json"
    defence = None
    if ledger_path.exists():
        shift = -(time.time() if wall is None else wall)
        defence = ledger_from_json(json.loads(ledger_path.read_text()), shift=shift)
    return Checkpoint(
        round=int(record["round"]),
        rounds_done=int(record["rounds_done"]),
        sequence=int(record["sequence"]),
        weights=load_file(str(weights_path)),
        group=record.get("group"),
        founded=record.get("founded"),
        defence=defence,
    )
