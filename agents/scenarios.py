"""Simulated fungiverses built from one seed: the scenarios the tests and the scale benchmark share.

:func:`linear_fungiverse` splits nodes into learning groups of ``group_size`` (the first node of each
owns it) and gives every node a :class:`~agents.protocol.learners.LinearLearner` over its own rows of
one catalogue table. The table is allocated once and each node holds a view of its slice, so memory
per node is its model plus bookkeeping, not a copy of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.protocol.context import NodeContext
from agents.protocol.learners import LinearLearner
from agents.protocol.learning import RuleResolver, shared_part
from agents.protocol.messages import BlueprintSummary, GroupInfo, Schedule, shapes_of
from agents.protocol.state import initial_state
from agents.simulator import Simulator

__all__ = ["LINEAR_ARCHITECTURE", "Fungiverse", "actor_iri", "add_grouped_node", "linear_fungiverse"]

LINEAR_ARCHITECTURE = "https://w3id.org/spore/ns#LinearModel"
WEIGHTED_MEAN = "https://w3id.org/spore/ns#WeightedMean"


def actor_iri(index: int) -> str:
    return f"https://node{index}.fungi.test/actor"


@dataclass
class Fungiverse:
    """A simulator with its nodes, their groups, and the catalogue they share."""

    simulator: Simulator
    actors: list[str]
    groups: list[GroupInfo]
    features: torch.Tensor
    true_weight: torch.Tensor
    group_size: int

    def group_of(self, actor: str) -> GroupInfo:
        return self.groups[self.actors.index(actor) // self.group_size]

    def members_of(self, group: GroupInfo) -> list[str]:
        start = self.groups.index(group) * self.group_size
        return self.actors[start : start + self.group_size]


def add_grouped_node(
    simulator: Simulator,
    *,
    index: int,
    actor: str,
    weights: dict[str, torch.Tensor],
    architecture: str,
    group_size: int,
    seed: int,
    context: NodeContext,
    at: float = 0.0,
    **group: Any,
) -> GroupInfo | None:
    """Add node ``index`` seeking group ``#fungi{index // group_size}``; the group's first node owns it.

    ``group`` holds the owned group's settings (:class:`GroupInfo` fields such as ``aggregation_rule``,
    ``schedule``, ``round_timeout``); the owned group is returned so that a scenario can list it.
    """
    blueprint = BlueprintSummary(
        iri=f"{actor}/blueprint", architecture=architecture, shared_shapes=shapes_of(shared_part(weights))
    )
    hashtag = f"#fungi{index // group_size}"
    owned = None
    if index % group_size == 0:
        owned = GroupInfo(
            iri=f"{actor}/groups/{hashtag[1:]}",
            hashtag=hashtag,
            owner=actor,
            shared_shapes=blueprint.shared_shapes,
            **group,
        )
    state = initial_state(
        actor,
        seed=seed * 1_000_003 + index,
        blueprint=blueprint,
        weights=weights,
        seeks=(hashtag,),
        owns=() if owned is None else (owned,),
    )
    simulator.add_node(context, state, at=at)
    return owned


def linear_fungiverse(
    nodes: int,
    *,
    rule_for: RuleResolver,
    seed: int = 0,
    group_size: int = 8,
    dim: int = 8,
    rows_per_node: int = 40,
    max_rounds: int | None = 5,
    train_seconds: float = 1.0,
    round_timeout: float = 5.0,
    schedule: str = Schedule.SYNC,
    fanout: int = 3,
    aggregation_rule: str = WEIGHTED_MEAN,
    evaluate: bool = True,
    row_fraction: float | None = None,
    quantize: bool = False,
    announce_interval: float | None = None,
    boot_at: dict[int, float] | None = None,
    simulator_options: dict[str, Any] | None = None,
) -> Fungiverse:
    """``nodes`` nodes in groups of ``group_size`` on a seeded network; nothing runs until ``run``."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(nodes * rows_per_node, dim, generator=generator)
    true_weight = torch.randn(dim, generator=generator)
    # Each node's listeners add their own offset: the private bias is what the node must keep.
    offsets = torch.randn(nodes, generator=generator).repeat_interleave(rows_per_node)
    noise = 0.1 * torch.randn(nodes * rows_per_node, generator=generator)
    targets = features @ true_weight + offsets + noise
    simulator = Simulator(seed=seed, **(simulator_options or {}))
    actors = [actor_iri(i) for i in range(nodes)]
    groups: list[GroupInfo] = []
    for index, actor in enumerate(actors):
        rows = slice(index * rows_per_node, (index + 1) * rows_per_node)
        learner = LinearLearner(features[rows], targets[rows])
        owned = add_grouped_node(
            simulator,
            index=index,
            actor=actor,
            weights=learner.initial_weights(seed),  # same seed: the group starts from one model
            architecture=LINEAR_ARCHITECTURE,
            group_size=group_size,
            seed=seed,
            context=NodeContext(
                learner=learner,
                rule_for=rule_for,
                train_seconds=train_seconds,
                max_rounds=max_rounds,
                announce_interval=announce_interval if announce_interval is not None else 10 * round_timeout,
                evaluate=evaluate,
            ),
            at=(boot_at or {}).get(index, 0.0),
            aggregation_rule=aggregation_rule,
            schedule=schedule,
            round_timeout=round_timeout,
            fanout=fanout,
            row_fraction=row_fraction,
            quantize=quantize,
        )
        if owned is not None:
            groups.append(owned)
    return Fungiverse(simulator, actors, groups, features, true_weight, group_size)
