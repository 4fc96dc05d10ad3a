"""A node's defederation ledger as RDF: accusations and block/unblock decisions, with evidence.

What the node accused goes to its ``decisions`` graph; what others accused (their public claims, as
received) goes to its ``peers`` graph, where remote claims live. Each block or lift is a
``spore:DefederationDecision`` that passes ``shapes:DecisionShape`` and names what it cuts off with
``spore:blocks`` or lets back with ``spore:unblocks``; each accusation passes
``shapes:AccusationShape``. ``queries/defed-blocks.rq`` and ``queries/defed-accusations.rq`` read them
back (who blocked whom, and on what).
"""

from __future__ import annotations

import datetime

from pyoxigraph import Literal, NamedNode, Quad

from knowledge.graphs import GraphKind, graph_iri
from knowledge.store import KnowledgeStore
from ontology import PREFIXES, SPORE
from reasoning.defederation import Accusation, DefederationEvent, Ledger

__all__ = ["accusation_quads", "event_quads", "ledger_quads", "record_ledger", "xsd_time"]

_RDF_TYPE = NamedNode(PREFIXES["rdf"] + "type")
_PROV = PREFIXES["prov"]
_XSD = PREFIXES["xsd"]


def _n(iri: str) -> NamedNode:
    return NamedNode(str(iri))


def xsd_time(seconds: float) -> Literal:
    """Seconds since the epoch (wall clock, or the simulator's virtual clock) as xsd:dateTime."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return Literal(moment.isoformat(), datatype=NamedNode(_XSD + "dateTime"))


def _line(text: str) -> Literal:
    return Literal(" ".join(text.split())[:300] or "-")


def accusation_quads(accusation: Accusation, graph: NamedNode) -> list[Quad]:
    subject = _n(accusation.id)
    quads = [
        Quad(subject, _RDF_TYPE, _n(SPORE.Accusation), graph),
        Quad(subject, _n(SPORE.accused), _n(accusation.accused), graph),
        Quad(subject, _n(_PROV + "wasAttributedTo"), _n(accusation.accuser), graph),
        Quad(subject, _n(SPORE.offence), Literal(str(accusation.offence)), graph),
        Quad(subject, _n(SPORE.explanation), _line(accusation.explanation), graph),
        Quad(subject, _n(_PROV + "generatedAtTime"), xsd_time(accusation.at), graph),
    ]
    for item in accusation.evidence:
        quads.append(Quad(subject, _n(SPORE.evidence), _n(item), graph))
        # spore:evidence is a sub-property of prov:wasDerivedFrom; the shape reads the super-property.
        quads.append(Quad(subject, _n(_PROV + "wasDerivedFrom"), _n(item), graph))
    return quads


def event_quads(event: DefederationEvent, node: str, index: int, graph: NamedNode) -> list[Quad]:
    """One block or lift as a ``spore:DefederationDecision``, ``{node}/decisions/defederation-{index}``."""
    subject = _n(f"{node}/decisions/defederation-{index}")
    verb = SPORE.blocks if event.kind == "block" else SPORE.unblocks
    quads = [
        Quad(subject, _RDF_TYPE, _n(SPORE.DefederationDecision), graph),
        Quad(subject, _n(SPORE.decidedBy), _n(node), graph),
        Quad(subject, _n(verb), _n(event.actor), graph),
        Quad(
            subject, _n(SPORE.explanation), _line(f"{event.kind} {event.actor}: {event.explanation}"), graph
        ),
        Quad(subject, _n(_PROV + "generatedAtTime"), xsd_time(event.at), graph),
    ]
    quads += [Quad(subject, _n(_PROV + "wasDerivedFrom"), _n(item), graph) for item in event.evidence]
    return quads


def ledger_quads(ledger: Ledger) -> list[Quad]:
    """Every accusation and decision of ``ledger`` in the node's decisions and peers graphs."""
    node = NamedNode(ledger.me)
    decisions, peers = graph_iri(node, GraphKind.DECISIONS), graph_iri(node, GraphKind.PEERS)
    quads: list[Quad] = []
    for accusation in ledger.accused_by_me.values():
        quads += accusation_quads(accusation, decisions)
    for by_accuser in ledger.received.values():
        for accusation in by_accuser.values():
            quads += accusation_quads(accusation, peers)
    for index, event in enumerate(ledger.history, start=1):
        quads += event_quads(event, ledger.me, index, decisions)
    return quads


def record_ledger(store: KnowledgeStore, ledger: Ledger) -> int:
    """Write ``ledger`` into the node's graphs (adding to what is there); how many quads."""
    quads = ledger_quads(ledger)
    store.extend(quads)
    return len(quads)
