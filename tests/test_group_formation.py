"""Group formation (agents/protocol/groups.py): founders, one group per hashtag, refusal fallback.

Step-level tests call ``step`` with hand-built inboxes; the last two run whole simulated
fungiverses (least-squares nodes, virtual time), so the file stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import pytest
import torch

from agents.node import FungusNode
from agents.node_setup import assign_roles
from agents.protocol import (
    BlueprintSummary,
    Envelope,
    GroupInfo,
    NodeContext,
    WeightedParameters,
    initial_state,
    shapes_of,
    shared_part,
    step,
)
from agents.protocol.groups import founder_of, prefers, rank
from agents.protocol.learners import LinearLearner
from agents.protocol.messages import PUBLIC, Accept, Announce, Join, Leave, Message, Reject
from agents.protocol.state import NodeState
from agents.simulator import Simulator

RULE = "https://w3id.org/spore/ns#WeightedMean"
ARCH = "https://w3id.org/spore/ns#LinearModel"
M = TypeVar("M", bound=Message)


def mean(contributions: Sequence[WeightedParameters], *, reference: object = None) -> dict[str, torch.Tensor]:
    total = sum(c.weight for c in contributions)
    names = contributions[0].parameters
    return {name: sum(c.parameters[name] * (c.weight / total) for c in contributions) for name in names}  # type: ignore[misc]


def learner(dim: int = 3, seed: int = 7) -> LinearLearner:
    features = torch.randn(10, dim, generator=torch.Generator().manual_seed(seed))
    return LinearLearner(features, features.sum(dim=1))


def group(owner: str, hashtag: str = "#jazz", dim: int = 3) -> GroupInfo:
    shapes = shapes_of(shared_part(learner(dim).initial_weights(0)))
    return GroupInfo(
        iri=f"{owner}/groups/{hashtag[1:]}",
        hashtag=hashtag,
        owner=owner,
        aggregation_rule=RULE,
        round_timeout=5.0,
        shared_shapes=shapes,
    )


def node(
    actor: str, *, owns: bool = False, dim: int = 3, found_after: float | None = None
) -> tuple[NodeContext, NodeState]:
    """A least-squares node seeking #jazz (owning its group when ``owns``); it founds one of its own
    after ``found_after`` seconds in no group when that is given."""
    model = learner(dim)
    weights = model.initial_weights(0)
    summary = BlueprintSummary(f"{actor}/blueprint", ARCH, shapes_of(shared_part(weights)))
    state = initial_state(
        actor,
        seed=len(actor),
        blueprint=summary,
        weights=weights,
        seeks=("#jazz",),
        owns=(group(actor, dim=dim),) if owns else (),
    )
    founding = (
        {}
        if found_after is None
        else {"founding": lambda tag: group(actor, tag, dim), "found_after": found_after}
    )
    ctx = NodeContext(learner=model, rule_for=lambda iri: mean, announce_interval=2.0, **founding)  # type: ignore[arg-type]
    return ctx, state


def ranked(*actors: str) -> list[str]:
    """``actors`` from the one that wins ``#jazz`` to the one that ranks lowest."""
    return sorted(actors, key=lambda actor: rank("#jazz", actor), reverse=True)


WINNER, LOSER, MEMBER = ranked("https://a.test/n", "https://b.test/n", "https://c.test/n")


def only(outbox: list[Message], kind: type[M]) -> M:
    matching = [m for m in outbox if isinstance(m, kind)]
    assert len(matching) == 1, outbox
    return matching[0]


def announce(owner: str, number: int = 1) -> Envelope:
    info = group(owner)
    return Envelope(
        owner, Announce(id=f"{owner}/activities/announce-{number}", actor=owner, to=(PUBLIC,), group=info)
    )


# founders -------------------------------------------------------------------------------------------


def test_founders_spread_over_hosts_and_every_host_agrees() -> None:
    hosts = [f"http://127.0.0.1:{8001 + index}" for index in range(4)]
    tags = [f"#genre{index}" for index in range(12)]
    known = {f"{host}/nodes/n{index}": (tag,) for host in hosts for index, tag in enumerate(tags)}
    roles = assign_roles(known)
    founders = {tag: actor for actor, role in roles.items() if (tag := role.founds) is not None}
    assert sorted(founders) == sorted(tags)  # one founder per hashtag
    assert len({actor.split("/nodes/")[0] for actor in founders.values()}) >= 3  # not all on the lowest port
    assert assign_roles(dict(reversed(list(known.items())))) == roles
    for tag, actor in founders.items():
        assert founder_of(tag, [a for a, seeks in known.items() if seeks[0] == tag]) == actor


def test_a_node_keeps_the_preferred_group_whatever_the_order_of_announcements() -> None:
    ctx, start = node(MEMBER)
    for order in ((LOSER, WINNER), (WINNER, LOSER)):
        state = start
        for owner in order:
            state, outbox = step(ctx, state, [announce(owner)], 0.0)
        assert state.known_groups["#jazz"].owner == WINNER
    # A group the node cannot merge with loses to one it can, whatever the ranks.
    misfit = replace(group(WINNER), shared_shapes=(("artist_weight", (9,)),))
    assert prefers(start, group(LOSER), misfit) and not prefers(start, misfit, group(LOSER))


def test_the_losing_owner_moves_to_the_winner_and_dissolves_its_group() -> None:
    ctx, loser = node(LOSER, owns=True)
    loser, _ = step(ctx, loser, [], 0.0)  # announces and starts training with its own group
    join_from_member = Join(
        id=f"{MEMBER}/activities/join-1",
        actor=MEMBER,
        to=(LOSER,),
        group=group(LOSER).iri,
        blueprint=loser.blueprint,
    )
    loser, _ = step(ctx, loser, [Envelope(MEMBER, join_from_member)], 0.1)
    assert loser.owned[group(LOSER).iri].members == {LOSER, MEMBER}

    loser, outbox = step(ctx, loser, [announce(WINNER)], 0.5)
    join = only(outbox, Join)
    assert join.to == (WINNER,) and join.group == group(WINNER).iri
    assert loser.owned and loser.membership is not None  # it keeps its group until it is accepted

    accept = Accept(
        id=f"{WINNER}/activities/accept-1",
        actor=WINNER,
        to=(LOSER,),
        join=join.id,
        group=group(WINNER),
        members=(WINNER, LOSER),
        round=4,
    )
    loser, outbox = step(ctx, loser, [Envelope(WINNER, accept)], 0.6)
    leave = only(outbox, Leave)
    assert leave.group == group(LOSER).iri and leave.to == (MEMBER,)
    assert not loser.owned and loser.membership is not None
    assert loser.membership.group.iri == group(WINNER).iri and loser.membership.round == 4

    # The member hears the owner leave: its group is gone; the winner's announcement takes it there.
    member_ctx, member = node(MEMBER)
    member = replace(
        member,
        membership=replace(loser.membership, group=group(LOSER), members=frozenset({LOSER, MEMBER})),
        known_groups={"#jazz": group(LOSER)},
    )
    member, outbox = step(member_ctx, member, [Envelope(LOSER, leave)], 0.7)
    assert member.membership is None and "#jazz" not in member.known_groups and not outbox
    assert member.counters["group-dissolved"] == 1
    member, outbox = step(member_ctx, member, [announce(WINNER, 2)], 0.8)
    assert only(outbox, Join).to == (WINNER,)


def test_the_winning_owner_ignores_the_duplicate() -> None:
    ctx, winner = node(WINNER, owns=True)
    winner, _ = step(ctx, winner, [], 0.0)
    after, outbox = step(ctx, winner, [announce(LOSER)], 0.5)
    assert not [m for m in outbox if isinstance(m, Join)]
    assert after.owned.keys() == winner.owned.keys() and after.known_groups == winner.known_groups


def test_a_refused_move_keeps_both_groups_and_is_not_asked_again() -> None:
    ctx, loser = node(LOSER, owns=True)
    loser, _ = step(ctx, loser, [], 0.0)
    loser, outbox = step(ctx, loser, [announce(WINNER)], 0.5)
    join = only(outbox, Join)
    reject = Reject(
        id=f"{WINNER}/activities/reject-1",
        actor=WINNER,
        to=(LOSER,),
        join=join.id,
        group=join.group,
        reason="blocked",
    )
    loser, _ = step(ctx, loser, [Envelope(WINNER, reject)], 0.6)
    assert group(LOSER).iri in loser.owned and loser.membership is not None
    loser, outbox = step(ctx, loser, [announce(WINNER, 2)], 3.0)
    assert not [m for m in outbox if isinstance(m, Join)]


def test_a_join_for_a_group_the_owner_no_longer_has_is_refused_at_once() -> None:
    ctx, former = node(LOSER)
    _, member = node(MEMBER)
    join = Join(
        id=f"{MEMBER}/activities/join-1",
        actor=MEMBER,
        to=(LOSER,),
        group=group(LOSER).iri,
        blueprint=member.blueprint,
    )
    _, outbox = step(ctx, former, [Envelope(MEMBER, join)], 0.0)
    reject = only(outbox, Reject)
    assert reject.to == (MEMBER,) and reject.join == join.id and "no such group" in reject.reason


def test_a_refused_node_founds_its_own_group_after_found_after() -> None:
    # Its parameters have another shape than the only #jazz group's: the owner refuses it.
    ctx, misfit = node(MEMBER, dim=5, found_after=10.0)
    misfit, outbox = step(ctx, misfit, [announce(WINNER)], 0.0)
    join = only(outbox, Join)
    reject = Reject(
        id=f"{WINNER}/activities/reject-1",
        actor=WINNER,
        to=(MEMBER,),
        join=join.id,
        group=join.group,
        reason="shared parameter shapes differ from the group's",
    )
    misfit, outbox = step(ctx, misfit, [Envelope(WINNER, reject)], 1.0)
    assert not outbox and misfit.membership is None and misfit.wakeup_at == 10.0  # groupless since 0
    misfit, outbox = step(ctx, misfit, [], 10.0)
    owned = group(MEMBER, dim=5)
    assert only(outbox, Announce).group == owned
    assert misfit.owned.keys() == {owned.iri} and misfit.counters["founded-alone"] == 1
    assert misfit.membership is not None and misfit.membership.group == owned and misfit.membership.deadline


def test_without_founding_a_refused_node_stays_out() -> None:
    ctx, misfit = node(MEMBER, dim=5)
    misfit, outbox = step(ctx, misfit, [announce(WINNER)], 0.0)
    join = only(outbox, Join)
    reject = Reject(
        id=f"{WINNER}/r/1", actor=WINNER, to=(MEMBER,), join=join.id, group=join.group, reason="no"
    )
    misfit, _ = step(ctx, misfit, [Envelope(WINNER, reject)], 1.0)
    misfit, outbox = step(ctx, misfit, [], 500.0)
    assert misfit.membership is None and not misfit.owned and not outbox and misfit.wakeup_at is None


# whole runs -------------------------------------------------------------------------------------------


def _fungiverse(owners: Sequence[str], members: Sequence[str], found_after: float | None = None) -> Simulator:
    simulator = Simulator(seed=3)
    for actor in owners:
        simulator.add_node(*node(actor, owns=True, found_after=found_after))
    for actor in members:
        simulator.add_node(*node(actor, found_after=found_after))
    return simulator


def _groups(simulator: Simulator) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for actor in simulator.nodes:
        membership = simulator.state(actor).membership
        assert membership is not None, actor
        found.setdefault(membership.group.iri, set()).add(actor)
    return found


def test_two_founders_of_one_hashtag_end_in_one_group() -> None:
    owners = ranked(*(f"https://h{index}.test/owner" for index in range(3)))
    members = [f"https://h{index}.test/member" for index in range(3)]
    simulator = _fungiverse(owners, members)
    simulator.run(40.0)
    groups = _groups(simulator)
    assert groups == {group(owners[0]).iri: set(owners) | set(members)}
    assert [actor for actor in simulator.nodes if simulator.state(actor).owned] == [owners[0]]
    assert simulator.state(owners[0]).owned[group(owners[0]).iri].members == set(owners) | set(members)


def test_sides_that_miss_each_other_at_start_merge_after_healing() -> None:
    owner = "https://a.test/owner"
    side_a = [owner, "https://a.test/member"]
    side_b = [f"https://b.test/n{index}" for index in range(3)]
    simulator = _fungiverse([owner], side_a[1:] + side_b, found_after=6.0)
    simulator.partition([side_a, side_b], at=0.0, heal_at=20.0)
    simulator.run(19.0)
    split = _groups(simulator)  # side B found that nobody answers and founded its own group
    assert len(split) == 2 and set(side_a) in split.values() and set(side_b) in split.values()
    simulator.run(60.0)
    merged = _groups(simulator)
    assert len(merged) == 1 and next(iter(merged.values())) == set(side_a) | set(side_b)
    assert sum(bool(simulator.state(actor).owned) for actor in simulator.nodes) == 1


def test_a_node_cut_off_from_every_group_still_finishes_its_rounds() -> None:
    # --rounds N ends when every node is done: a node that cannot reach the only owner of its hashtag
    # must not wait forever; after found_after it founds its own group and trains its rounds alone.
    owner, stranded = "https://a.test/owner", "https://b.test/stranded"
    simulator = Simulator(seed=3)
    ctx, state = node(owner, owns=True, found_after=6.0)
    simulator.add_node(replace(ctx, max_rounds=2), state)
    ctx, state = node(stranded, found_after=6.0)
    simulator.add_node(replace(ctx, max_rounds=2), state)
    simulator.partition([[owner], [stranded]], at=0.01)
    simulator.run(80.0)
    alone = simulator.state(stranded)
    assert alone.counters["founded-alone"] == 1 and alone.owned
    assert alone.membership is not None and alone.membership.members == {stranded}
    assert alone.membership.round >= 2 and simulator.state(owner).membership.round >= 2  # type: ignore[union-attr]


def test_a_served_node_says_when_it_founds_alone(caplog: pytest.LogCaptureFixture) -> None:
    ctx, state = node(MEMBER, found_after=10.0)
    fungus = FungusNode("stranded", ctx, state)
    fungus.step([], 0.0)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="agents.node"):
        fungus.step([], 10.0)
    assert [r.getMessage() for r in caplog.records] == [
        f"node stranded reached no group for 10 s: founded {group(MEMBER).iri} alone"
    ]
