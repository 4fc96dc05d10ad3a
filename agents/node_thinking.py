"""Served nodes reason after every merged round and act on it, as simulated nodes do.

The loop itself is :mod:`agents.thinking`; this module is its :class:`~agents.thinking.Surroundings`
on a host, where everything a node learns about other groups comes over the network:

* **Claims, from linked data.** For every learning group the host knows (its own nodes' groups and
  the announcements in its peers' ``/status``), the node asks the group's owner, at the owner's own
  SPARQL endpoint (``{owner}/sparql``, which the owner's description names as ``void:sparqlEndpoint``),
  for the newest Recall@20 the owner published for the group (``queries/group-claim.rq``, over what
  :mod:`agents.node_publish` writes). Linked data rather than ``/status``: the claim comes with the
  IRIs the node's evidence must cite (evaluation, snapshot, SHA-256, download URL, blueprint).
* **Cross-checks, by signed GET.** The snapshot of a tempting claim is fetched from the owner's
  artifact route (its ``dcat:downloadURL``, only on the owner's origin), signed by the host's instance
  actor, and its SHA-256 checked against the claim before the bytes are loaded. The owner's
  blueprint comes from the same endpoint (``queries/blueprint-description.rq``) for selection.
* **Acts.** A switch is :func:`agents.thinking.switch_change` (Leave) followed at once by a step of
  the node (its Join), whose messages the host sends; a new blueprint revision rebuilds the node's
  learner and what its publisher describes in the next model cards.

Network reads run on the event loop; measurements, the pass and the acts on the host's step worker,
inside the node's step lock. A node without graphs, a LightGCN-like learner or a policy does not
reason (one log line says why).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pyoxigraph import NamedNode
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

import queries
from agents.claims import ClaimReader, claim_from_results
from agents.node import FungusNode
from agents.protocol.learning import shared_part
from agents.protocol.messages import Announce, GroupInfo, Message, MessageError, shapes_of
from agents.protocol.recommender import LightGCNLearner
from agents.protocol.wire import from_activity
from agents.revisions import follow_revision, resume_revision
from agents.thinking import (
    RECALL,
    Candidate,
    Claim,
    Reasoner,
    RoundView,
    ThinkingSettings,
    switch_change,
    tempting,
)
from federation.client import FetchError
from federation.vocab import same_origin
from knowledge.graphs import GraphKind, graph_iri
from knowledge.store.bindings import bind
from models.card import snapshot_iri
from ontology import SPORE
from reasoning.decisions import ReasoningPass
from reasoning.evidence import group_description

if TYPE_CHECKING:
    from agents.hosting import NodeHost

__all__ = ["ServedThinking", "claim_from_results", "graph_from_rows", "why_not_reasoning"]

log = logging.getLogger(__name__)

SPARQL_JSON = "application/sparql-results+json"
_HAS_POLICY = (
    f"ASK {{ ?node <{SPORE.blueprint}> ?b . ?b <{SPORE.policy}> ?p . ?p <{SPORE.switchMargin}> ?m }}"
)


def why_not_reasoning(node: FungusNode) -> str | None:
    """Why ``node`` cannot run the reasoning loop, or None when it can."""
    if node.graphs is None:
        return "it keeps no graphs"
    if not isinstance(node.ctx.learner, LightGCNLearner):
        return f"its learner ({type(node.ctx.learner).__name__}) is not LightGCN-like"
    blueprint = graph_iri(node.graphs.node, GraphKind.BLUEPRINT)
    if not node.graphs.store.query(_HAS_POLICY, bindings={"node": node.graphs.node}, default_graph=blueprint):
        return "its blueprint has no spore:policy with a spore:switchMargin"
    return None


def _rdf(cell: Mapping[str, Any], blanks: dict[str, BNode]) -> Node | None:
    kind, value = cell.get("type"), cell.get("value")
    if not isinstance(value, str):
        return None
    if kind == "uri":
        return URIRef(value)
    if kind == "bnode":
        return blanks.setdefault(value, BNode())
    datatype = cell.get("datatype")
    return Literal(value, lang=cell.get("xml:lang"), datatype=URIRef(datatype) if datatype else None)


def graph_from_rows(results: Mapping[str, Any], blueprint: str) -> Graph:
    """The blueprint's description from a SPARQL JSON answer to ``queries/blueprint-description.rq``."""
    graph, blanks = Graph(), dict[str, BNode]()
    subject = URIRef(blueprint)
    for row in results.get("results", {}).get("bindings", []):
        p, o = (_rdf(row[k], blanks) if k in row else None for k in ("p", "o"))
        if p is None or o is None:
            continue
        graph.add((subject, p, o))
        q, v = (_rdf(row[k], blanks) if k in row else None for k in ("q", "v"))
        if q is not None and v is not None:
            graph.add((o, q, v))
    return graph


@dataclass
class _Served:
    """The surroundings of one served node for one round: what was fetched, and the acts' messages."""

    node: FungusNode
    groups: Mapping[str, GroupInfo]
    found: list[Claim]
    candidates: dict[str, Candidate]
    now: float
    outbox: list[Message] = field(default_factory=list)
    switched: bool = False
    rebuilt: bool = False

    def claims(self) -> list[Claim]:
        return self.found

    def candidate(self, claim: Claim) -> Candidate | None:
        return self.candidates.get(claim.snapshot)

    def switch(self, group: str) -> None:
        target = self.groups.get(group)
        if target is None:  # the rule chose a group this host no longer knows: stay
            log.warning("node %s: group %s to switch to is unknown here", self.node.name, group)
            return
        self.node.state, sent = switch_change(target)(self.node.state, self.now)
        self.outbox += [*sent, *self.node.step([], self.now)]  # Leave, then the Join to the new owner
        self.switched = True

    def rebuild(self, settings: Mapping[str, Any], blueprint: Graph, iri: URIRef) -> None:
        follow_revision(self.node, settings)
        self.rebuilt = True


class ServedThinking:
    """The reasoning of a host's nodes: one :class:`~agents.thinking.Reasoner` per node that can."""

    def __init__(self, host: NodeHost, settings: ThinkingSettings | None = None) -> None:
        self.host = host
        self.settings = settings or ThinkingSettings()
        self.reasoners: dict[str, Reasoner] = {}
        self._described: dict[str, set[str]] = {}  # actor -> groups described in its peers graph
        # One read of a group's claim serves every node of the host for a while (agents/claims.py).
        self.claims = ClaimReader(self._read_claim, fresh_for=self.settings.claim_seconds)

    def add(self, node: FungusNode) -> None:
        why = why_not_reasoning(node) if self.host.options.reasoning else "the host runs with reasoning off"
        if why is not None:
            log.info("node %s does not reason: %s", node.name, why)
            return
        assert node.graphs is not None
        operators = self.settings.operators
        if node.blueprint is not None and node.blueprint.architecture == str(SPORE.MatrixFactorization):
            # Matrix factorisation is LightGCN without layers: adding one would change the model family.
            operators = tuple(name for name in operators if name != "LayersMutation")
        settings = dataclasses.replace(self.settings, seed=node.name, operators=operators)
        self.reasoners[node.actor] = Reasoner(node.graphs.store, settings)
        self._described[node.actor] = set()
        revision = resume_revision(node)
        publisher = getattr(self.host, "publishers", {}).get(node.actor)
        if revision is not None and publisher is not None and node.blueprint is not None:
            publisher.blueprint = node.blueprint  # model cards describe the settings it follows
            log.info("node %s follows its blueprint revision %s", node.name, revision)
        if revision is not None and self.host.on_round is not None:
            learner = node.ctx.learner
            self.host.on_round(
                {
                    "event": "revision",
                    "host": self.host.runtime.config.base_url,
                    "node": node.name,
                    "blueprint": str(revision),
                    "learning_rate": learner.learning_rate,
                    "local_epochs": learner.local_epochs,
                    "layers": learner.num_layers,
                }
            )

    # -- what the host knows of groups ---------------------------------------------------------------
    def groups(self) -> dict[str, GroupInfo]:
        """Every learning group known here: owned by local nodes, or announced in a peer's /status."""
        found = {
            iri: owned.info for node in self.host.nodes.values() for iri, owned in node.state.owned.items()
        }
        for status in self.host.peer_status.values():
            for entry in status.get("nodes", []) if isinstance(status.get("nodes"), list) else []:
                for owned in entry.get("owns", []) if isinstance(entry, dict) else []:
                    try:
                        message = from_activity(
                            owned.get("announce") if isinstance(owned, dict) else None, {}
                        )
                    except MessageError:
                        continue
                    if isinstance(message, Announce) and message.group.owner == message.actor:
                        found.setdefault(message.group.iri, message.group)
        return found

    # -- the network reads ---------------------------------------------------------------------------
    async def _sparql(self, endpoint: str, name: str, bindings: Mapping[str, Any]) -> dict[str, Any]:
        text = bind(queries.load(name), bindings)
        url = f"{endpoint}?{urlencode({'query': text})}"
        return await self.host.runtime.client.get_json(url, accept=SPARQL_JSON)

    async def _claim(self, group: GroupInfo) -> Claim | None:
        return await self.claims.read(group)

    async def _read_claim(self, group: GroupInfo) -> Claim | None:
        try:
            results = await self._sparql(
                f"{group.owner}/sparql",
                "group-claim",
                {"owner": NamedNode(group.owner), "group": NamedNode(group.iri)},
            )
        except FetchError as error:
            log.info("no claim for %s from %s: %s", group.hashtag, group.owner, error)
            return None
        self.host.transport.count("claims-read")
        return claim_from_results(results, group)

    async def _candidate(self, node: FungusNode, claim: Claim) -> Candidate | None:
        """The claimed snapshot by signed GET, its SHA-256 checked; the owner's blueprint if new here."""
        runtime, transport = self.host.runtime, self.host.transport
        if claim.download is None or claim.sha256 is None or not same_origin(claim.download, claim.owner):
            return None
        try:
            blob = await runtime.client.get_bytes(
                claim.download, sign_as=runtime.actors.instance.key, max_bytes=transport.max_artifact_bytes
            )
        except FetchError as error:  # e.g. the owner merged another round meanwhile: check next round
            log.info("node %s: snapshot of %s not fetched: %s", node.name, claim.hashtag, error)
            self.claims.forget(claim)
            return None
        if (
            hashlib.sha256(blob).hexdigest() != claim.sha256
            or str(snapshot_iri(claim.sha256)) != claim.snapshot
        ):
            log.warning("node %s: snapshot of %s does not match its claim", node.name, claim.hashtag)
            self.claims.forget(claim)
            transport.count("snapshots-mismatched")
            return None
        try:
            loaded = load_safetensors(blob)
        except SafetensorError as error:
            log.warning("node %s: snapshot of %s is not safetensors: %s", node.name, claim.hashtag, error)
            return None
        own = shared_part(node.state.weights)
        if shapes_of(loaded) != shapes_of(own):
            return None
        transport.count("snapshots-fetched")
        blueprint = URIRef(claim.blueprint) if claim.blueprint is not None else None
        description = await self._blueprint(node, claim) if blueprint is not None else None
        return Candidate({**node.state.weights, **loaded}, blueprint, lambda: description)

    async def _blueprint(self, node: FungusNode, claim: Claim) -> Graph | None:
        assert node.graphs is not None and claim.blueprint is not None
        peers = graph_iri(node.graphs.node, GraphKind.PEERS)
        known = node.graphs.store.query(
            "ASK { ?b ?p ?o }", bindings={"b": NamedNode(claim.blueprint)}, default_graph=peers
        )
        if known:
            return None  # the reasoner only reads a description it does not have
        try:
            results = await self._sparql(
                f"{claim.owner}/sparql", "blueprint-description", {"blueprint": NamedNode(claim.blueprint)}
            )
        except FetchError as error:
            log.info("node %s: blueprint %s not read: %s", node.name, claim.blueprint, error)
            return None
        return graph_from_rows(results, claim.blueprint)

    # -- one round -----------------------------------------------------------------------------------
    async def after_round(self, node: FungusNode) -> None:
        """Gather claims and snapshots, then record, reason and act on the step worker.

        Nothing raised here reaches the host: a peer's odd answer or a failed pass must not stop the
        node's run loop, which calls this after every round.
        """
        reasoner = self.reasoners.get(node.actor)
        if reasoner is None or node.state.last_round is None or node.graphs is None:
            return
        try:
            await self._after_round(node, reasoner)
        except Exception:
            log.exception("node %s: reasoning after round %d failed", node.name, node.state.rounds_done)
            self.host.transport.count("failed-reasoning")

    async def _after_round(self, node: FungusNode, reasoner: Reasoner) -> None:
        state = node.state
        record = state.last_round
        assert record is not None
        groups = self.groups()
        own = state.membership.group.iri if state.membership is not None else None
        shapes = shapes_of(shared_part(state.weights))
        others = [
            info
            for info in groups.values()
            if info.iri != own and info.owner not in state.blocked and info.shared_shapes == shapes
        ]
        claims = [claim for claim in await asyncio.gather(*map(self._claim, others)) if claim is not None]
        merged = dict(record.metrics).get(RECALL)
        candidates: dict[str, Candidate] = {}
        by_iri = {info.iri: info for info in others}
        for claim in tempting(claims, merged, self.settings.candidates) if merged is not None else []:
            candidate = await self._candidate(node, claim)
            fresh = await self._claim(by_iri[claim.group]) if candidate is None else None
            if fresh is not None and fresh.snapshot != claim.snapshot:  # the shared read was stale
                claims = [fresh if c is claim else c for c in claims]
                claim, candidate = fresh, await self._candidate(node, fresh)
            if candidate is not None:
                candidates[claim.snapshot] = candidate
        learner = node.ctx.learner
        assert isinstance(learner, LightGCNLearner)
        view = RoundView(
            actor=node.actor,
            round_number=state.rounds_done,
            group=own,
            merged=merged,
            weights=dict(state.weights),
            snapshot=str(snapshot_iri(record.merged_sha256)),
            learner=learner,
            owner=bool(state.owned),
            at=datetime.datetime.now(datetime.UTC),
        )
        served = _Served(node, groups, claims, candidates, self.host.now())
        try:
            result = await self.host.in_worker(self._think, reasoner, view, served)
        finally:  # acts already applied to the node must take effect even if the pass then failed
            await self._apply(node, served)
        self._report(node, result)

    def _think(self, reasoner: Reasoner, view: RoundView, served: _Served) -> ReasoningPass:
        described = self._described[view.actor]
        peers = graph_iri(NamedNode(view.actor), GraphKind.PEERS)
        for claim in served.found:  # the hashtags the decisions' explanations name groups by
            if claim.group not in described:
                reasoner.store.extend(group_description(claim.group, claim.hashtag, peers))
                described.add(claim.group)
        return reasoner.after_round(view, served)

    async def _apply(self, node: FungusNode, served: _Served) -> None:
        """Send the acts' messages; routing and model cards follow the node's new state."""
        host = self.host
        for message in served.outbox:
            try:
                await host.transport.send_async(node.actor, message)
            except Exception:  # one unsendable message must not stop the node
                log.exception("sending %s from %s failed", message.id, node.name)
        if served.switched:  # public announcements of the new hashtag must now reach the node
            host.known[node.actor] = node.state.seeks
            host.transport.directory.learn(node.actor, seeks=node.state.seeks)
        publisher = host.publishers.get(node.actor)
        if served.rebuilt and publisher is not None and node.blueprint is not None:
            publisher.blueprint = node.blueprint  # the next model cards describe the new settings

    def _report(self, node: FungusNode, result: ReasoningPass) -> None:
        host = self.host
        for decision in result.decisions:
            log.info("node %s decided: %s", node.name, decision.explanation)
            if host.on_round is not None:
                host.on_round(
                    {
                        "event": "decision",
                        "host": host.runtime.config.base_url,
                        "node": node.name,
                        # Not "round": listeners read that key as a group round with metrics.
                        "rounds_done": decision.round,
                        "kind": decision.kind.removeprefix(str(SPORE)),
                        "decision": decision.iri,
                        "explanation": decision.explanation,
                    }
                )
