"""The inbox verification pipeline: every POST to an inbox passes these checks, cheapest first.

Each check returns a :class:`Verdict`; :data:`STATUS` maps verdicts to HTTP statuses in this one place,
so the routes stay free of policy. Order matters for cost and safety: size and signature syntax are
checked before JSON parsing, the clock window and body digest before any key fetch, and the actor's
origin before fetching its key (a request whose ``keyId`` cannot belong to its actor is refused
without making us fetch anything).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.keyring import KeyRing, KeyUnavailable, RemoteKey
from federation.ratelimit import RateLimiter
from federation.signatures import (
    ParsedSignature,
    Rejected,
    SignatureFailure,
    SignedRequest,
    Verified,
    check_digest,
    check_freshness,
    parse_signature,
    verify_signature,
)
from federation.vocab import ActivityType, id_of, ids_of, json_depth, origin_of, same_origin, types_of

__all__ = ["Verdict", "STATUS", "InboxResult", "InboxPipeline", "check_origins"]


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # replayed activity id: acknowledged, not processed again
    TOO_LARGE = "too-large"
    NOT_JSON = "not-json"
    TOO_DEEP = "too-deep"
    NOT_AN_ACTIVITY = "not-an-activity"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad-signature"
    KEY_UNAVAILABLE = "key-unavailable"
    KEY_NOT_ACTORS = "key-not-actors"
    FOREIGN_OBJECT = "foreign-object"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate-limited"
    BUSY = "busy"


# The one mapping from verdict to status. 401: authentication failed (RFC 9110 15.5.2; Mastodon and
# Fedify answer failed signatures with 401). 403: authenticated, but not allowed to say this.
STATUS: Mapping[Verdict, int] = {
    Verdict.ACCEPTED: 202,
    Verdict.DUPLICATE: 202,
    Verdict.TOO_LARGE: 413,
    Verdict.NOT_JSON: 400,
    Verdict.TOO_DEEP: 400,
    Verdict.NOT_AN_ACTIVITY: 400,
    Verdict.UNSIGNED: 401,
    Verdict.BAD_SIGNATURE: 401,
    Verdict.KEY_UNAVAILABLE: 401,
    Verdict.KEY_NOT_ACTORS: 401,
    Verdict.FOREIGN_OBJECT: 403,
    Verdict.BLOCKED: 403,
    Verdict.RATE_LIMITED: 429,
    Verdict.BUSY: 503,
}


@dataclass(frozen=True)
class InboxResult:
    verdict: Verdict
    detail: str
    signature_failure: SignatureFailure | None = None
    activity: dict[str, Any] | None = None
    signer: RemoteKey | None = None

    @property
    def status(self) -> int:
        return STATUS[self.verdict]


def _refuse(verdict: Verdict, detail: str, failure: SignatureFailure | None = None) -> InboxResult:
    return InboxResult(verdict, detail, failure)


def check_origins(activity: dict[str, Any], actor: str) -> str | None:
    """Refuse objects a signer may not speak for (Mastodon CVE-2024-23832); None when all is well.

    A signed actor may create, update or delete only objects on its own origin and attributed to
    itself or its origin; otherwise a compromised or malicious server could forge posts of others.
    """
    activity_id = activity.get("id")
    if isinstance(activity_id, str) and not same_origin(activity_id, actor):
        return f"activity id {activity_id} is not on the actor's origin {origin_of(actor)}"
    kinds = types_of(activity)
    if kinds & {ActivityType.CREATE, ActivityType.UPDATE, ActivityType.DELETE}:
        objects = activity.get("object")
        for item in objects if isinstance(objects, list) else [objects]:
            object_id = id_of(item)
            if object_id is None:
                return "object has no id"
            if not same_origin(object_id, actor):
                return f"object {object_id} is not on the actor's origin {origin_of(actor)}"
            if isinstance(item, dict):
                for author in ids_of(item.get("attributedTo")):
                    if not same_origin(author, actor):
                        return (
                            f"object {object_id} is attributed to {author}, on another origin than its signer"
                        )
    return None


class InboxPipeline:
    """Runs the checks; ``accept`` hands a verified activity on (to the processing queue)."""

    def __init__(
        self,
        *,
        keyring: KeyRing,
        limiter: RateLimiter,
        clock: Callable[[], float],
        first_sighting: Callable[[str, float], bool],
        forget_sighting: Callable[[str], None] = lambda activity_id: None,
        accept: Callable[[dict[str, Any], RemoteKey, str | None], Awaitable[bool]],
        is_blocked: Callable[[str | None, str], bool],
        max_body_bytes: int,
        max_depth: int,
        window_seconds: float,
    ) -> None:
        self.keyring = keyring
        self.limiter = limiter
        self.clock = clock
        self.first_sighting = first_sighting
        self.forget_sighting = forget_sighting
        self.accept = accept
        self.is_blocked = is_blocked
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.window_seconds = window_seconds

    async def verify_with_key(
        self, parsed: ParsedSignature, request: SignedRequest
    ) -> tuple[RemoteKey | None, Rejected | Verified]:
        """The signer's key (fetched or cached) and whether the signature verifies; also for GETs."""
        return await self._verify(parsed, request)

    async def _verify(
        self, parsed: ParsedSignature, request: SignedRequest
    ) -> tuple[RemoteKey | None, Rejected | Verified]:
        was_cached = self.keyring.cached(parsed.key_id)
        try:
            key = await self.keyring.get(parsed.key_id)
        except KeyUnavailable as error:
            return None, Rejected(SignatureFailure.KEY_UNAVAILABLE, str(error), parsed.key_id)
        outcome = verify_signature(parsed, request, key.public_key)
        if isinstance(outcome, Rejected) and was_cached:
            # The peer may have rotated its key since we cached it: fetch once more, then decide.
            try:
                key = await self.keyring.get(parsed.key_id, refresh=True)
            except KeyUnavailable as error:
                return None, Rejected(SignatureFailure.KEY_UNAVAILABLE, str(error), parsed.key_id)
            outcome = verify_signature(parsed, request, key.public_key)
        return key, outcome

    async def receive(self, request: SignedRequest, *, inbox_owner: str | None = None) -> InboxResult:
        if len(request.body) > self.max_body_bytes:
            return _refuse(Verdict.TOO_LARGE, f"body over {self.max_body_bytes} bytes")
        parsed = parse_signature(request)
        if isinstance(parsed, Rejected):
            verdict = (
                Verdict.UNSIGNED if parsed.failure is SignatureFailure.MISSING else Verdict.BAD_SIGNATURE
            )
            return _refuse(verdict, parsed.detail, parsed.failure)
        signer_origin = origin_of(parsed.key_id)
        if not self.limiter.allow(signer_origin):
            return _refuse(Verdict.RATE_LIMITED, f"too many requests from {signer_origin}")
        rejected = check_freshness(parsed, request, now=self.clock(), window_seconds=self.window_seconds)
        rejected = rejected or check_digest(parsed, request)
        if rejected is not None:
            return _refuse(Verdict.BAD_SIGNATURE, rejected.detail, rejected.failure)
        try:
            activity = json.loads(request.body)
        except RecursionError:
            return _refuse(Verdict.TOO_DEEP, "JSON nested too deeply")
        except ValueError as error:
            return _refuse(Verdict.NOT_JSON, f"body is not JSON: {error}")
        # The depth cannot exceed the number of opening brackets: the walk over the parsed document is
        # needed only for bodies with more of them than the limit (an activity has a handful).
        brackets = request.body.count(b"{") + request.body.count(b"[")
        if brackets > self.max_depth and json_depth(activity) > self.max_depth:
            return _refuse(Verdict.TOO_DEEP, f"JSON nested deeper than {self.max_depth}")
        if not isinstance(activity, dict) or not types_of(activity):
            return _refuse(Verdict.NOT_AN_ACTIVITY, "body is not an object with a type")
        actor = id_of(activity.get("actor"))
        if actor is None or not isinstance(activity.get("id"), str):
            return _refuse(Verdict.NOT_AN_ACTIVITY, "activity needs an id and an actor")
        if not same_origin(actor, parsed.key_id):
            return _refuse(Verdict.KEY_NOT_ACTORS, f"key {parsed.key_id} cannot belong to {actor}")
        key, outcome = await self._verify(parsed, request)
        if isinstance(outcome, Rejected):
            verdict = (
                Verdict.KEY_UNAVAILABLE
                if outcome.failure is SignatureFailure.KEY_UNAVAILABLE
                else Verdict.BAD_SIGNATURE
            )
            return _refuse(verdict, outcome.detail, outcome.failure)
        assert key is not None  # a Verified outcome always comes with its key
        if key.owner != actor:
            # A valid signature by somebody else's key: the classic impersonation attempt.
            return _refuse(Verdict.KEY_NOT_ACTORS, f"key {key.key_id} belongs to {key.owner}, not to {actor}")
        problem = check_origins(activity, actor)
        if problem is not None:
            return _refuse(Verdict.FOREIGN_OBJECT, problem)
        if self.is_blocked(inbox_owner, actor):
            return _refuse(Verdict.BLOCKED, f"{actor} is blocked")
        if not self.first_sighting(activity["id"], self.clock()):
            return InboxResult(Verdict.DUPLICATE, "already processed", activity=activity, signer=key)
        if not await self.accept(activity, key, inbox_owner):
            self.forget_sighting(activity["id"])  # not processed: the sender's retry must not be a replay
            return _refuse(Verdict.BUSY, "inbox queue is full; retry later")
        return InboxResult(Verdict.ACCEPTED, "accepted", activity=activity, signer=key)
