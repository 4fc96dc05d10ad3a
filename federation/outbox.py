"""What local actors send: activities built as plain AS2 JSON, recorded in the outbox, queued for delivery.

Fan-out follows Mastodon's shared-inbox rule: one POST per remote *host* when the recipients there
share an inbox, so a Note to 1,000 followers on one server costs one request, not 1,000.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from federation.actors import ActorDirectory, LocalActor, hashtag_object
from federation.delivery import DeliveryQueue
from federation.jsonld import AS2_CONTEXT_URL, OBJECT_CONTEXT
from federation.state import FederationState, Recipient, Relation
from federation.vocab import PUBLIC, ActivityType, with_as2_type

__all__ = ["Outbox", "PrivateDataLeak", "fan_out", "note_for", "hashtag_link", "refuse_private_graph"]


class PrivateDataLeak(ValueError):
    """An outgoing activity refers to a node's private graph; it is refused before it is sent."""


def refuse_private_graph(activity: dict[str, Any]) -> None:
    """The default outgoing check: no string in the payload may name a node's private graph.

    Private listening data never leaves its node (DESIGN.md, security model). The node runtime can
    install a stricter check (e.g. SHACL over the payload) through ``check_outgoing``.
    """
    stack: list[Any] = [activity]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and "/graphs/private" in item:
            raise PrivateDataLeak(f"outgoing activity {activity.get('id')} refers to a private graph: {item}")


def fan_out(recipients: Iterable[Recipient], *, exclude_base: str | None = None) -> list[str]:
    """Inboxes to POST to: the shared inbox once per host where known, else each personal inbox."""
    inboxes: dict[str, None] = {}
    for recipient in recipients:
        inboxes[recipient.shared_inbox or recipient.inbox] = None
    return list(inboxes)


def hashtag_link(base_url: str, hashtag: str) -> str:
    """The HTML Mastodon recognises as a hashtag link (class ``hashtag``, ``rel=tag``)."""
    name = hashtag.lstrip("#")
    href = f"{base_url}/tags/{name.lower()}"
    link = f'<a href="{html.escape(href)}" class="mention hashtag" rel="tag">'
    return f"{link}#<span>{html.escape(name)}</span></a>"


def note_for(
    *, base_url: str, actor: LocalActor, note_id: str, text: str, hashtag: str, about: str, published: str
) -> dict[str, Any]:
    """A public Note for Mastodon users: text, group hashtag, and a link to the machine-readable object."""
    content = (
        f"<p>{html.escape(text)}</p><p>{hashtag_link(base_url, hashtag)} "
        f'<a href="{html.escape(about)}">{html.escape(about)}</a></p>'
    )
    return {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor.id,
        "content": content,
        "published": published,
        "to": [PUBLIC],
        "cc": [actor.followers],
        "tag": [hashtag_object(base_url, hashtag)],
        "url": note_id,
        "attachment": [{"type": "Link", "href": about, "name": "machine-readable object (JSON-LD)"}],
    }


class Outbox:
    def __init__(
        self,
        *,
        base_url: str,
        actors: ActorDirectory,
        state: FederationState,
        deliveries: DeliveryQueue,
        clock: Callable[[], float],
        # Ids come from uuid4, not the injected rng: a seeded rng would mint the same ids again after a
        # restart, and peers would drop the new activities as replays.
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        check_outgoing: Callable[[dict[str, Any]], None] = lambda activity: refuse_private_graph(activity),
    ) -> None:
        self.check_outgoing = check_outgoing
        self.base_url = base_url
        self.actors = actors
        self.state = state
        self.deliveries = deliveries
        self.clock = clock
        self.new_id = new_id

    def mint(self, kind: str) -> str:
        return f"{self.base_url}/{kind}/{self.new_id()}"

    def published(self) -> str:
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def activity(self, actor: LocalActor, kind: ActivityType, obj: Any, **extra: Any) -> dict[str, Any]:
        return {
            "@context": extra.pop("context", AS2_CONTEXT_URL),
            "id": self.mint("activities"),
            "type": kind.value,
            "actor": actor.id,
            "object": obj,
            **extra,
        }

    def send(self, actor: LocalActor, activity: dict[str, Any], inboxes: Iterable[str]) -> int:
        """Record ``activity`` in the actor's outbox and queue one POST per inbox; returns how many queued."""
        self.check_outgoing(activity)  # raises PrivateDataLeak before anything is recorded or sent
        self.state.record_outgoing(actor.id, activity, self.clock())
        self.state.put_object(activity["id"], actor.id, activity)
        body = json.dumps(activity).encode("utf-8")
        return sum(self.deliveries.enqueue(inbox, actor.id, body) for inbox in dict.fromkeys(inboxes))

    def to_followers(self, actor: LocalActor, activity: dict[str, Any], *, exclude: str | None = None) -> int:
        recipients = self.state.recipients(actor.id, [Relation.FOLLOWER, Relation.MEMBER])
        return self.send(actor, activity, fan_out(r for r in recipients if r.actor != exclude))

    def announce(self, group: LocalActor, create: dict[str, Any]) -> dict[str, Any]:
        """A group passes a member's Create on to all other members (as Lemmy and Guppe groups do)."""
        embedded = {key: value for key, value in create.items() if key != "@context"}
        context = create.get("@context", AS2_CONTEXT_URL)
        activity = self.activity(
            group, ActivityType.ANNOUNCE, embedded, context=context, to=[PUBLIC], cc=[group.followers]
        )
        self.to_followers(group, activity, exclude=create.get("actor"))
        return activity

    # -- social graph ----------------------------------------------------------------------------
    def follow(self, actor: LocalActor, target: str, inbox: str) -> dict[str, Any]:
        return self._ask_to_follow(actor, ActivityType.FOLLOW, target, inbox)

    def _ask_to_follow(
        self, actor: LocalActor, kind: ActivityType, target: str, inbox: str
    ) -> dict[str, Any]:
        """Follow an actor or Join a group: both wait, pending, for the target's Accept."""
        activity = self.activity(actor, kind, target, to=[target])
        self.state.relate(
            actor.id,
            target,
            Relation.FOLLOWING,
            state="pending",
            activity_id=activity["id"],
            inbox=inbox,
            now=self.clock(),
        )
        self.send(actor, activity, [inbox])
        return activity

    def unfollow(self, actor: LocalActor, target: str, inbox: str, follow: dict[str, Any]) -> dict[str, Any]:
        activity = self.activity(actor, ActivityType.UNDO, follow, to=[target])
        self.state.unrelate(actor.id, target, Relation.FOLLOWING)
        self.send(actor, activity, [inbox])
        return activity

    def respond(
        self, actor: LocalActor, kind: ActivityType, request: dict[str, Any], inbox: str
    ) -> dict[str, Any]:
        """Accept or Reject a Follow/Join, embedding the request as Mastodon and Fedify expect."""
        requester = request.get("actor")
        embedded = {key: value for key, value in request.items() if key != "@context"}
        activity = self.activity(actor, kind, embedded, to=[requester] if isinstance(requester, str) else [])
        self.send(actor, activity, [inbox])
        return activity

    def block(self, actor: LocalActor, target: str, inbox: str) -> dict[str, Any]:
        activity = self.activity(actor, ActivityType.BLOCK, target, to=[target])
        now = self.clock()
        self.state.relate(actor.id, target, Relation.BLOCKING, activity_id=activity["id"], now=now)
        self.state.unrelate(actor.id, target, Relation.FOLLOWER)
        self.state.unrelate(actor.id, target, Relation.FOLLOWING)
        self.send(actor, activity, [inbox])
        return activity

    def join(self, actor: LocalActor, group: str, inbox: str) -> dict[str, Any]:
        return self._ask_to_follow(actor, ActivityType.JOIN, group, inbox)

    def leave(self, actor: LocalActor, group: str, inbox: str) -> dict[str, Any]:
        activity = self.activity(actor, ActivityType.LEAVE, group, to=[group])
        self.state.unrelate(actor.id, group, Relation.FOLLOWING)
        self.send(actor, activity, [inbox])
        return activity

    # -- publishing ------------------------------------------------------------------------------
    def publish(
        self,
        actor: LocalActor,
        spore_object: dict[str, Any],
        *,
        text: str,
        hashtag: str,
        groups: Iterable[tuple[str, str]] = (),
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Publish a SPORE object (model update, recommendation, decision) and its human-readable Note.

        Two Create activities go to the actor's followers and to the learning ``groups`` given as
        ``(group actor id, inbox)`` (a group announces them to its members): one with the SPORE object
        in the SPORE context for fungus nodes, one with a public Note that Mastodon shows, carrying the
        group hashtag and a link to the object.
        """
        groups = list(groups)
        audience = [group for group, _inbox in groups]
        published = self.published()
        object_id = spore_object.get("id") or self.mint("objects")
        machine = {"@context": OBJECT_CONTEXT, **spore_object, "id": object_id, "attributedTo": actor.id}
        machine["type"] = with_as2_type(spore_object.get("type", "Object"))
        machine.setdefault("published", published)
        note_id = self.mint("objects")
        if audience:
            machine["audience"] = audience
        note = note_for(
            base_url=self.base_url,
            actor=actor,
            note_id=note_id,
            text=text,
            hashtag=hashtag,
            about=object_id,
            published=published,
        )
        note["cc"] = [*note["cc"], *audience]
        recipients = fan_out(self.state.recipients(actor.id, [Relation.FOLLOWER, Relation.MEMBER]))
        recipients += [inbox for _group, inbox in groups]
        spore_body = {key: value for key, value in machine.items() if key != "@context"}
        create_object = self.activity(
            actor,
            ActivityType.CREATE,
            spore_body,
            context=OBJECT_CONTEXT,
            to=[PUBLIC],
            cc=[actor.followers, *audience],
            published=published,
        )
        create_note = self.activity(
            actor,
            ActivityType.CREATE,
            note,
            context=OBJECT_CONTEXT,
            to=[PUBLIC],
            cc=[actor.followers, *audience],
            published=published,
        )
        for activity in (create_object, create_note):
            self.check_outgoing(activity)  # before anything is stored: stored objects are served by GET
        self.state.put_object(object_id, actor.id, machine)
        self.state.put_object(note_id, actor.id, {"@context": OBJECT_CONTEXT, **note})
        self.send(actor, create_object, recipients)
        self.send(actor, create_note, recipients)
        return create_object, create_note
