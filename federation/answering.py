"""Answering asks from the Fediverse: the I/O around :mod:`federation.mentions`' pure functions.

:class:`AskingService` is called by the inbox worker for every verified ``Create`` (hooked in with
:func:`install_asking`): it parses the Note, applies the per-account rate limit, matches the names,
asks the node's :class:`~federation.mentions.ArtistRecommender`, stores the ``spore:Recommendation``
in the node's public models graph and queues the reply for delivery to the asker's inbox.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from federation.actors import LocalActor
from federation.jsonld import OBJECT_CONTEXT
from federation.keyring import actor_endpoints
from federation.mentions import (
    ArtistRecommender,
    Ask,
    Asker,
    Ranked,
    Resolved,
    asker_card,
    describe_url,
    mention_html,
    parse_ask,
    reply_html,
    reply_note,
    resolve_names,
)
from federation.processing import FetchActor, QuadSink
from federation.ratelimit import RateLimiter
from federation.vocab import ActivityType, ActorType, types_of
from knowledge.graphs import GraphKind, graph_iri

if TYPE_CHECKING:
    from federation.runtime import HostRuntime

__all__ = ["AskingService", "Recommenders", "install_asking", "recommendation_quads"]

log = logging.getLogger(__name__)

_BOT_TYPES = frozenset({ActorType.SERVICE, ActorType.APPLICATION})


Recommenders = Callable[[str], ArtistRecommender | None]


class AskingService:
    """Answers asks: parse, rate-limit, match, recommend, store the RDF, reply."""

    def __init__(
        self,
        *,
        nodes: Sequence[LocalActor],
        outbox: Any,  # federation.outbox.Outbox
        store: QuadSink,
        fetch_actor: FetchActor,
        clock: Callable[[], float],
        recommenders: Recommenders,
        hashtags: Mapping[str, str] | None = None,
        k: int = 10,
        asks_per_minute: float = 3.0,
        burst: float = 3.0,
        cooldown_seconds: float = 300.0,
    ) -> None:
        self.nodes = list(nodes)
        self.outbox = outbox
        self.store = store
        self.fetch_actor = fetch_actor
        self.clock = clock
        self.recommenders = recommenders
        self.hashtags = dict(hashtags or {})
        self.k = k
        self.limiter = RateLimiter(rate=asks_per_minute / 60.0, burst=burst, clock=clock)
        self.cooldown_seconds = cooldown_seconds
        self._told_to_wait: dict[str, float] = {}  # asker -> when we last said "please wait"
        self.answered = 0

    async def on_create(
        self, activity: Mapping[str, Any], actor: str, actor_document: Mapping[str, Any] | None
    ) -> None:
        """Inbox hook for a verified ``Create``: answer every ask the Note makes of a local node."""
        note = activity.get("object")
        if not isinstance(note, dict) or ActivityType.CREATE not in types_of(activity):
            return
        asks = parse_ask(note, actor, self.nodes, self.hashtags)
        if not asks:
            return
        document = actor_document if actor_document is not None else await self.fetch_actor(actor)
        if types_of(document) & _BOT_TYPES:
            return  # bots never ask bots: two nodes answering each other would never stop
        inbox, shared = actor_endpoints(dict(document))
        if inbox is None:
            log.warning("cannot answer %s: its actor has no inbox", actor)
            return
        asker = asker_card(document)
        for ask in asks:
            if not self.limiter.allow(actor):
                if self.clock() - self._told_to_wait.get(actor, float("-inf")) >= self.cooldown_seconds:
                    self._remember_told(actor)
                    await self._reply(ask, asker, shared or inbox, self._slow_down())
                else:
                    log.info("ask from %s dropped: over its rate limit", actor)
                continue
            await self._answer(ask, asker, shared or inbox)

    def _remember_told(self, actor: str, *, keep: int = 10_000) -> None:
        """Note that ``actor`` was asked to wait; bounded, so that many accounts cannot grow it forever."""
        now = self.clock()
        if len(self._told_to_wait) >= keep:
            self._told_to_wait = {
                who: when for who, when in self._told_to_wait.items() if now - when < self.cooldown_seconds
            }
        self._told_to_wait[actor] = now

    def _usage(self, node: LocalActor) -> str:
        return (
            "Tell me artists you like and I will suggest others, for example: "
            f"\u201c@{node.name} recommend Radiohead, Portishead\u201d."
        )

    def _slow_down(self) -> str:
        return (
            "You have asked me several times in a short while. I will answer again in a few minutes; "
            "thank you for your patience!"
        )

    async def _answer(self, ask: Ask, asker: Asker, inbox: str) -> None:
        if not ask.names:
            await self._reply(ask, asker, inbox, self._usage(ask.node))
            return
        recommender = self.recommenders(ask.node.name)
        if recommender is None:
            await self._reply(ask, asker, inbox, "I have no trained model yet; please ask me again later.")
            return
        resolved = resolve_names(ask.names, recommender.names)
        ranked: Sequence[Ranked] = []
        recommendation = rdf_url = None
        attachments: list[dict[str, Any]] = []
        if resolved.matched:
            ranked = recommender.recommend([m.iri for m in resolved.matched], self.k)
        if ranked:
            recommendation = f"{ask.node.id}/recommendations/{uuid.uuid4().hex}"
            rdf_url = describe_url(ask.node, recommendation)
            self.store.extend(
                recommendation_quads(
                    ranked, node=ask.node, iri=recommendation, snapshot=recommender.snapshot, matched=resolved
                )
            )
            attachments = [
                {"type": "Link", "href": recommendation, "name": "spore:Recommendation"},
                {"type": "Link", "href": rdf_url, "mediaType": "text/turtle", "name": "RDF (Turtle)"},
            ]
        content = reply_html(asker, resolved, ranked, recommendation=recommendation)
        self._send(ask, asker, inbox, content, attachments)

    async def _reply(self, ask: Ask, asker: Asker, inbox: str, text: str) -> None:
        self._send(ask, asker, inbox, f"<p>{mention_html(asker)} {html.escape(text)}</p>", [])

    def _send(
        self, ask: Ask, asker: Asker, inbox: str, content: str, attachments: list[dict[str, Any]]
    ) -> None:
        note_id = self.outbox.mint("objects")
        published = self.outbox.published()
        note = reply_note(
            note_id=note_id,
            node=ask.node,
            asker=asker,
            in_reply_to=ask.note_id,
            content=content,
            published=published,
            attachments=attachments,
        )
        create = self.outbox.activity(
            ask.node,
            ActivityType.CREATE,
            note,
            context=OBJECT_CONTEXT,
            to=note["to"],
            cc=note["cc"],
            published=published,
        )
        self.outbox.check_outgoing(create)
        self.outbox.state.put_object(note_id, ask.node.id, {"@context": OBJECT_CONTEXT, **note})
        self.outbox.send(ask.node, create, [inbox])
        self.answered += 1


def recommendation_quads(
    ranked: Sequence[Ranked], *, node: LocalActor, iri: str, snapshot: str, matched: Resolved
) -> list[ox.Quad]:
    """The ``spore:Recommendation`` as quads in the node's public models graph."""
    from rdflib import URIRef

    from models.recommend import recommendation_graph

    graph, _ = recommendation_graph(
        list(ranked),  # type: ignore[arg-type]  # Ranked has the fields RankedArtist's reader uses
        made_with=URIRef(snapshot),
        seed_artists=tuple(m.iri for m in matched.matched),
        iri=URIRef(iri),
    )
    target = graph_iri(ox.NamedNode(node.id), GraphKind.MODELS)
    triples = ox.parse(graph.serialize(format="nt").encode("utf-8"), format=ox.RdfFormat.N_TRIPLES)
    return [ox.Quad(t.subject, t.predicate, t.object, target) for t in triples]


def install_asking(runtime: HostRuntime, recommenders: Recommenders, **options: Any) -> AskingService:
    """Let people ask the host's nodes: hook an :class:`AskingService` into the inbox worker."""
    service = AskingService(
        nodes=list(runtime.actors.nodes.values()),
        outbox=runtime.outbox,
        store=runtime.store,
        fetch_actor=runtime.fetch_signed,
        clock=runtime.clock,
        recommenders=recommenders,
        **options,
    )
    runtime.processor.create_listeners.append(service.on_create)
    return service
