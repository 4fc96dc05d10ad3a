"""Authorized fetch ("secure mode"): ActivityPub documents only for signed GETs, as Mastodon offers.

With ``HostConfig.authorized_fetch`` a host answers GETs of its collections, objects and activities
only when they carry a valid HTTP signature (draft-cavage or RFC 9421) by a key whose owner the
node does not block; otherwise 401 (unsigned, bad signature) or 403 (blocked). This is what makes a
block effective against reading, not only against posting: a blocked server can no longer fetch a
node's posts by asking anonymously.

Actor documents stay readable without a signature, restricted to what verifying a signature and
delivering need (Mastodon's ``restrict_fields_to``: id, type, preferredUsername, inbox, outbox,
endpoints, publicKey), and the instance actor is always served whole: a peer must be able to fetch
a key unsigned to verify our signed requests, or two servers that both demand signatures deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from federation.keyring import RemoteKey
from federation.signatures import (
    Rejected,
    SignatureFailure,
    SignedRequest,
    check_freshness,
    parse_signature,
)
from federation.state import Relation
from federation.vocab import origin_of

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.responses import Response

    from federation.runtime import HostRuntime

__all__ = [
    "ACTOR_FIELDS_UNSIGNED",
    "FetchDenied",
    "authorize_get",
    "refusal",
    "restricted_actor",
    "actor_view",
]

# What an unsigned reader may see of an actor: enough to verify its signatures and deliver to it.
ACTOR_FIELDS_UNSIGNED = frozenset(
    {"@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey"}
)


def restricted_actor(document: Mapping[str, Any]) -> dict[str, Any]:
    """The actor document as an unsigned GET sees it under authorized fetch."""
    return {key: value for key, value in document.items() if key in ACTOR_FIELDS_UNSIGNED}


@dataclass(frozen=True)
class FetchDenied:
    """Why a GET is refused: ``status`` 401 (no valid signature) or 403 (the signer is blocked)."""

    status: int
    reason: str
    detail: str


async def authorize_get(runtime: HostRuntime, request: Request, owner: str | None) -> RemoteKey | FetchDenied:
    """Verify a GET's signature (clock window, key fetched or cached, rotation retried once) and
    that ``owner``, the local actor whose document is read, does not block the signer."""
    url = runtime.config.base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signed = SignedRequest(
        method="GET",
        url=url,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=b"",
    )
    parsed = parse_signature(signed)
    if isinstance(parsed, Rejected):
        reason = "unsigned" if parsed.failure is SignatureFailure.MISSING else "bad-signature"
        return FetchDenied(401, reason, parsed.detail)
    stale = check_freshness(
        parsed, signed, now=runtime.clock(), window_seconds=runtime.config.limits.clock_window_seconds
    )
    if stale is not None:
        return FetchDenied(401, "bad-signature", stale.detail)
    key, outcome = await runtime.pipeline.verify_with_key(parsed, signed)
    if key is None or isinstance(outcome, Rejected):
        return FetchDenied(401, "bad-signature", outcome.detail if isinstance(outcome, Rejected) else "")
    if owner is not None:
        # GETs are usually signed by the remote server's instance actor, not by the person blocked:
        # a block of any actor on the signer's origin keeps that server out, as a domain block would.
        signer_origin = origin_of(key.owner)
        for blocked in runtime.state.related(owner, Relation.BLOCKING):
            if blocked == key.owner or origin_of(blocked) == signer_origin:
                return FetchDenied(403, "blocked", f"{signer_origin} is blocked by {owner}")
    return key


async def refusal(runtime: HostRuntime, request: Request, owner: str | None) -> Response | None:
    """For routes: None when the GET may be answered (or authorized fetch is off), else the 401/403."""
    if not runtime.config.authorized_fetch:
        return None
    verdict = await authorize_get(runtime, request, owner)
    if isinstance(verdict, FetchDenied):
        body = {"status": verdict.reason, "detail": verdict.detail}
        headers = {"www-authenticate": 'Signature realm="ActivityPub"'} if verdict.status == 401 else None
        return JSONResponse(body, status_code=verdict.status, headers=headers)
    return None


async def actor_view(runtime: HostRuntime, request: Request, document: dict[str, Any]) -> dict[str, Any]:
    """The whole actor document, or under authorized fetch without a valid signature its key-only view."""
    if await refusal(runtime, request, str(document.get("id"))) is None:
        return document
    return restricted_actor(document)
