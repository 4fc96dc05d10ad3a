"""Defederation: find misbehaving peers from evidence, accuse them, weigh others' accusations, block.

Everything here is a pure function over immutable values, so that a node's decisions can be rerun
from its recorded evidence. A node's :class:`Ledger` holds what it saw of each peer
(:class:`~reasoning.standing.PeerRecord`), the accusations it received, its blocks and the history
of its decisions; the protocol adapter (``agents/protocol/defence.py``) feeds it screening results
and incoming accusations and turns its output into Flag/Block/Undo activities.

The rules, with the attack each one stops:

* **Own evidence.** A peer whose update fails the node's screening (an outlier under robust
  statistics, a metric claim the node's cross-check does not reproduce, data failing the shapes, a
  bad signature) gets a strike; its update is left out of that round's merge at once. After
  ``strikes_to_block`` strikes the node blocks it and publishes an accusation citing the evidence
  (one strike is not enough: a non-IID honest peer can be an outlier once).
* **Hearsay needs a quorum.** Without evidence of its own the node blocks a peer only when at least
  ``accusation_quorum`` accusers in good standing (:mod:`reasoning.standing`) on distinct hosts
  accuse it, so one liar, or one host minting accusers, cannot get anyone blocked. A node with one
  strike of its own still waits for the quorum or for its own further strikes: a false positive
  of its screening plus one liar must not add up to a block.
* **Own evidence outranks hearsay.** A node that saw a peer's updates pass and never fail does not
  block it on anyone's word, and each such accusation it receives counts against the accuser's
  standing.
* **Hosts by policy.** Actors on a host in ``blocked_hosts`` are blocked when first met.
* **Appeal.** With an ``appeal_window``, a block on evidence is lifted when the window has passed;
  the peer is on probation (one more strike blocks it again). Every block and lift is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rdflib import Graph, Literal, URIRef

from ontology import SPORE
from reasoning.screening import Evidence, Offence
from reasoning.standing import PeerRecord, host_of

__all__ = [
    "Accusation",
    "Block",
    "DefederationEvent",
    "DefederationPolicy",
    "Evidence",
    "Ledger",
    "Offence",
    "enforce_host_policy",
    "hearsay_support",
    "policy_from_blueprint",
    "receive_accusation",
    "record_screening",
    "review_appeals",
]


@dataclass(frozen=True)
class DefederationPolicy:
    """The thresholds of a blueprint's ``spore:Policy`` that defederation reads.

    ``outlier_threshold`` (``spore:outlierThreshold``): robust standard deviations above the median
    at which a screening statistic counts as a strike. ``accusation_quorum``
    (``spore:accusationQuorum``), ``blocked_hosts`` (``spore:blockedHost``), ``appeal_window``
    (``spore:appealWindow``, seconds, None: blocks stand), ``strikes_to_block``
    (``spore:strikesToBlock``). ``good_standing``: the standing an accuser needs (more than).
    ``claim_tolerance``: how far a claimed metric may exceed what the node measures on its own data.
    """

    outlier_threshold: float = 3.5
    accusation_quorum: int = 2
    blocked_hosts: frozenset[str] = frozenset()
    appeal_window: float | None = None
    strikes_to_block: int = 2
    good_standing: float = 0.5
    claim_tolerance: float = 0.2
    iri: str = ""

    def __post_init__(self) -> None:
        if not self.outlier_threshold > 0:
            raise ValueError(f"the outlier threshold must be positive, got {self.outlier_threshold}")
        if self.accusation_quorum < 1 or self.strikes_to_block < 1:
            raise ValueError("the accusation quorum and strikes to block must be at least 1")
        if self.appeal_window is not None and not self.appeal_window > 0:
            raise ValueError(f"the appeal window must be positive, got {self.appeal_window}")


def policy_from_blueprint(graph: Graph, blueprint: URIRef) -> DefederationPolicy:
    """The defederation thresholds of ``blueprint``'s ``spore:policy`` in ``graph`` (defaults for
    what it does not state; the blueprint shapes have checked ranges before a node runs it)."""
    policy = graph.value(blueprint, SPORE.policy)
    if policy is None:
        return DefederationPolicy()

    def value(prop: URIRef) -> float | None:
        found = graph.value(policy, prop)
        return float(found) if isinstance(found, Literal) else None

    defaults = DefederationPolicy()
    threshold, quorum = value(SPORE.outlierThreshold), value(SPORE.accusationQuorum)
    window, strikes = value(SPORE.appealWindow), value(SPORE.strikesToBlock)
    return DefederationPolicy(
        outlier_threshold=threshold if threshold is not None else defaults.outlier_threshold,
        accusation_quorum=int(quorum) if quorum is not None else defaults.accusation_quorum,
        blocked_hosts=frozenset(str(h).lower() for h in graph.objects(policy, SPORE.blockedHost)),
        appeal_window=window,
        strikes_to_block=int(strikes) if strikes is not None else defaults.strikes_to_block,
        iri=str(policy) if isinstance(policy, URIRef) else f"{blueprint}#policy",
    )


@dataclass(frozen=True)
class Accusation:
    """A signed public claim (a Flag activity) that ``accused`` misbehaved, with its evidence."""

    id: str
    accuser: str
    accused: str
    offence: Offence
    round: int
    evidence: tuple[str, ...]
    explanation: str
    at: float


@dataclass(frozen=True)
class Block:
    """A peer this node cut off: since when, why, and on whose accusations (ids)."""

    actor: str
    since: float
    reason: str
    accusations: tuple[str, ...] = ()
    by_policy: bool = False


@dataclass(frozen=True)
class DefederationEvent:
    """One recorded decision: ``block`` or ``unblock`` of ``actor``, with its evidence."""

    kind: str
    actor: str
    at: float
    explanation: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Ledger:
    """A node's defederation memory (immutable; every rule returns a new one)."""

    me: str
    peers: Mapping[str, PeerRecord] = field(default_factory=dict)
    received: Mapping[str, Mapping[str, Accusation]] = field(default_factory=dict)  # accused -> accuser
    accused_by_me: Mapping[str, Accusation] = field(default_factory=dict)
    blocks: Mapping[str, Block] = field(default_factory=dict)
    history: tuple[DefederationEvent, ...] = ()

    def record(self, actor: str) -> PeerRecord:
        return self.peers.get(actor, PeerRecord())

    def standing(self, actor: str) -> float:
        return self.record(actor).standing

    @property
    def blocked(self) -> frozenset[str]:
        return frozenset(self.blocks)


# Rules over the ledger -----------------------------------------------------------------------------


def hearsay_support(ledger: Ledger, policy: DefederationPolicy, accused: str) -> list[Accusation]:
    """The accusations against ``accused`` that count towards the quorum: accusers in good
    standing, not blocked, not the accused itself, one per host (the earliest)."""
    by_host: dict[str, Accusation] = {}
    for accuser, accusation in sorted(ledger.received.get(accused, {}).items()):
        if accuser == accused or accuser in ledger.blocks or accuser == ledger.me:
            continue
        if ledger.standing(accuser) <= policy.good_standing:
            continue
        host = host_of(accuser)
        if host == host_of(accused):
            continue  # a host accusing its own actors is no independent witness
        if host not in by_host or accusation.at < by_host[host].at:
            by_host[host] = accusation
    return sorted(by_host.values(), key=lambda a: (a.at, a.accuser))


def _block(ledger: Ledger, block: Block, evidence: Sequence[str]) -> Ledger:
    event = DefederationEvent("block", block.actor, block.since, block.reason, tuple(evidence))
    return replace(ledger, blocks={**ledger.blocks, block.actor: block}, history=(*ledger.history, event))


def _decide_on_hearsay(
    ledger: Ledger, policy: DefederationPolicy, accused: str, now: float
) -> tuple[Ledger, Block | None]:
    """Block ``accused`` if a quorum of independent accusers in good standing is met."""
    if accused in ledger.blocks or accused == ledger.me:
        return ledger, None
    if ledger.record(accused).vouched_clean:
        return ledger, None
    support = hearsay_support(ledger, policy, accused)
    if len(support) < policy.accusation_quorum:
        return ledger, None
    ids = tuple(a.id for a in support)
    quorum = policy.accusation_quorum
    reason = f"{len(support)} independent accusers in good standing reached the quorum of {quorum}"
    block = Block(accused, now, reason, ids)
    return _block(ledger, block, ids), block


def record_screening(
    ledger: Ledger,
    policy: DefederationPolicy,
    *,
    round_number: int,
    screened: Iterable[str],
    evidence: Sequence[Evidence],
    now: float,
    accusation_id: Mapping[str, str] | None = None,
) -> tuple[Ledger, list[Accusation], list[Block]]:
    """Fold one round's screening into the ledger: which peers passed, which failed and why.

    Returns the new ledger, the accusations the node should now publish (peers it blocks on its
    own evidence), and every block made (own evidence or a quorum that the new strikes complete).
    ``accusation_id`` gives the id each new accusation will travel under (the Flag activity's id).
    """
    offenders: dict[str, list[Evidence]] = {}
    for item in evidence:
        offenders.setdefault(item.offender, []).append(item)
    peers = dict(ledger.peers)
    for peer in screened:
        if peer != ledger.me and peer not in offenders:
            peers[peer] = peers.get(peer, PeerRecord()).passed()
    for peer in offenders:
        peers[peer] = peers.get(peer, PeerRecord()).failed(round_number)
    ledger = replace(ledger, peers=peers)
    accusations: list[Accusation] = []
    blocks: list[Block] = []
    for peer, items in sorted(offenders.items()):
        if peer in ledger.blocks or peer == ledger.me:
            continue
        record = ledger.record(peer)
        if record.strikes >= policy.strikes_to_block:
            worst = max(items, key=lambda e: 0 if math.isnan(e.score) else e.score)
            links = tuple(dict.fromkeys(link for e in items for link in e.artifacts)) or (
                f"{peer}#round-{round_number}",
            )
            rounds = "round" if record.strikes == 1 else "rounds"
            explanation = f"{peer} failed this node's screening in {record.strikes} {rounds}: {worst.detail}"
            ident = (accusation_id or {}).get(
                peer, f"{ledger.me}/accusations/{len(ledger.accused_by_me) + 1}"
            )
            accusation = Accusation(
                ident, ledger.me, peer, worst.offence, round_number, links, explanation[:300], now
            )
            block = Block(peer, now, explanation[:300], (accusation.id,))
            ledger = _block(
                replace(ledger, accused_by_me={**ledger.accused_by_me, peer: accusation}), block, links
            )
            accusations.append(accusation)
            blocks.append(block)
        else:
            ledger, hearsay = _decide_on_hearsay(ledger, policy, peer, now)
            if hearsay is not None:
                blocks.append(hearsay)
    # Clean rounds raise accusers' standing, so accusations that did not count yet may count now.
    for accused in sorted(ledger.received):
        ledger, hearsay = _decide_on_hearsay(ledger, policy, accused, now)
        if hearsay is not None:
            blocks.append(hearsay)
    return ledger, accusations, blocks


def receive_accusation(
    ledger: Ledger, policy: DefederationPolicy, accusation: Accusation, now: float
) -> tuple[Ledger, Block | None]:
    """Weigh another node's accusation: judge the accuser by the node's own evidence about the
    accused, keep the accusation, and block if a quorum of independent accusers now agrees."""
    accuser, accused = accusation.accuser, accusation.accused
    if accuser == accused or accuser == ledger.me or accuser in ledger.blocks:
        return ledger, None
    if accused == ledger.me:
        return ledger, None  # nobody can be made to block itself; the accusation is public anyway
    seen = ledger.record(accused)
    already = accused in ledger.received and accuser in ledger.received[accused]
    peers = dict(ledger.peers)
    if not already:
        accuser_record = peers.get(accuser, PeerRecord())
        if seen.vouched_clean:
            peers[accuser] = accuser_record.accusation_contradicted()
        elif seen.strikes > 0 or accused in ledger.blocks:
            peers[accuser] = accuser_record.accusation_borne_out()
    received = {**ledger.received, accused: {**ledger.received.get(accused, {}), accuser: accusation}}
    ledger = replace(ledger, peers=peers, received=received)
    return _decide_on_hearsay(ledger, policy, accused, now)


def enforce_host_policy(
    ledger: Ledger, policy: DefederationPolicy, actor: str, now: float
) -> tuple[Ledger, Block | None]:
    """Block ``actor`` when its host is defederated by policy (``spore:blockedHost``)."""
    host = host_of(actor)
    if actor in ledger.blocks or actor == ledger.me or host not in policy.blocked_hosts:
        return ledger, None
    block = Block(actor, now, f"its host {host} is defederated by this node's policy", by_policy=True)
    return _block(ledger, block, (policy.iri or f"{ledger.me}#policy",)), block


def review_appeals(ledger: Ledger, policy: DefederationPolicy, now: float) -> tuple[Ledger, list[Block]]:
    """Lift blocks on evidence whose appeal window has passed; the peer is on probation (one strike
    short of a block) and the accusations that led to the block are set aside."""
    if policy.appeal_window is None:
        return ledger, []
    due = [b for b in ledger.blocks.values() if not b.by_policy and now >= b.since + policy.appeal_window]
    if not due:
        return ledger, []
    blocks = dict(ledger.blocks)
    peers = dict(ledger.peers)
    received = dict(ledger.received)
    accused_by_me = dict(ledger.accused_by_me)
    events = list(ledger.history)
    for block in sorted(due, key=lambda b: b.actor):
        del blocks[block.actor]
        probation = max(0, policy.strikes_to_block - 1)
        peers[block.actor] = replace(peers.get(block.actor, PeerRecord()), strikes=probation, clean=0)
        received.pop(block.actor, None)
        accused_by_me.pop(block.actor, None)
        explanation = f"the appeal window of {policy.appeal_window:g} s since the block passed; on probation"
        events.append(
            DefederationEvent(
                "unblock",
                block.actor,
                now,
                explanation,
                block.accusations or (policy.iri or f"{ledger.me}#policy",),
            )
        )
    ledger = replace(
        ledger,
        blocks=blocks,
        peers=peers,
        received=received,
        accused_by_me=accused_by_me,
        history=tuple(events),
    )
    return ledger, due
