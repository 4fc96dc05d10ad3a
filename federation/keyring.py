"""Public keys of remote actors: fetched once, cached, re-fetched once when a signature fails (key rotation).

Only the key's owner matters for authorisation, and a key document can claim any owner; so a key is
accepted only when its id and its owner share an origin, or when the owner's actor document lists
it. Concurrent requests for one unknown key share a single fetch, so a burst of activities from a new
peer costs one GET, not hundreds.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from federation.client import FetchError
from federation.keys import PublicKey, load_public_key_pem
from federation.vocab import ACTOR_TYPES, id_of, same_origin, types_of

__all__ = ["RemoteKey", "KeyRing", "KeyUnavailable", "key_from_document", "actor_endpoints"]

Fetch = Callable[[str], Awaitable[dict[str, Any]]]


class KeyUnavailable(Exception):
    pass


@dataclass(frozen=True)
class RemoteKey:
    key_id: str
    owner: str
    public_key: PublicKey
    actor: dict[str, Any] | None  # the owner's actor document when the key came embedded in it


def _key_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    entries = document.get("publicKey", [])
    entries = entries if isinstance(entries, list) else [entries]
    return [entry for entry in entries if isinstance(entry, dict)]


def key_from_document(key_id: str, document: dict[str, Any]) -> RemoteKey:
    """Find ``key_id`` in a fetched document: an actor with ``publicKey`` entries or a bare key object."""
    is_actor = bool(types_of(document) & ACTOR_TYPES) or "inbox" in document
    candidates = _key_entries(document) if is_actor else [document]
    for entry in candidates:
        if entry.get("id") != key_id or not isinstance(entry.get("publicKeyPem"), str):
            continue
        owner = id_of(entry.get("owner")) or (document.get("id") if is_actor else None)
        if not isinstance(owner, str):
            raise KeyUnavailable(f"key {key_id} names no owner")
        if is_actor and owner != document.get("id"):
            raise KeyUnavailable(f"key {key_id} embedded in {document.get('id')} claims owner {owner}")
        if not same_origin(key_id, owner):
            # A key hosted elsewhere than its owner could be anybody's; Mastodon applies the same rule.
            raise KeyUnavailable(f"key {key_id} and its owner {owner} are on different origins")
        try:
            public_key = load_public_key_pem(entry["publicKeyPem"])
        except ValueError as error:
            raise KeyUnavailable(f"key {key_id}: {error}") from error
        return RemoteKey(key_id, owner, public_key, document if is_actor else None)
    raise KeyUnavailable(f"{document.get('id', key_id)} does not publish key {key_id}")


def actor_endpoints(actor: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(inbox, sharedInbox)`` of an actor document."""
    inbox = id_of(actor.get("inbox"))
    endpoints = actor.get("endpoints")
    shared = id_of(endpoints.get("sharedInbox")) if isinstance(endpoints, dict) else None
    return inbox, shared


class KeyRing:
    """Cache of remote keys (LRU-bounded) plus local keys resolved without any HTTP."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        local: Callable[[str], RemoteKey | None] = lambda key_id: None,
        clock: Callable[[], float],
        capacity: int = 10_000,
        min_refresh_seconds: float = 60.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._fetched_at: dict[str, float] = {}
        self._local = local
        self._capacity = capacity
        self._cache: OrderedDict[str, RemoteKey] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[RemoteKey]] = {}
        self.fetches = 0  # observable for tests: "fetched once, cached"

    def cached(self, key_id: str) -> bool:
        return key_id in self._cache

    def forget_owner(self, owner: str) -> None:
        """Drop cached keys of ``owner`` (it sent an Update of itself: its key may have changed)."""
        for key_id in [key_id for key_id, key in self._cache.items() if key.owner == owner]:
            del self._cache[key_id]
            self._fetched_at.pop(key_id, None)

    async def get(self, key_id: str, *, refresh: bool = False) -> RemoteKey:
        local = self._local(key_id)
        if local is not None:
            return local
        if (
            refresh
            and key_id in self._cache
            and self._clock() - self._fetched_at.get(key_id, 0.0) < self._min_refresh
        ):
            # Refetches are bounded per key: a stream of badly signed requests must not become a stream
            # of GETs against the (possibly innocent) key owner.
            return self._cache[key_id]
        if not refresh and key_id in self._cache:
            self._cache.move_to_end(key_id)
            return self._cache[key_id]
        pending = self._inflight.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[RemoteKey] = asyncio.get_running_loop().create_future()
        self._inflight[key_id] = future
        try:
            key = await self._load(key_id)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key_id, None)
        future.set_result(key)
        self._cache[key_id] = key
        self._fetched_at[key_id] = self._clock()
        if len(self._cache) > self._capacity:
            evicted, _ = self._cache.popitem(last=False)
            self._fetched_at.pop(evicted, None)
        return key

    async def _load(self, key_id: str) -> RemoteKey:
        self.fetches += 1
        try:
            document = await self._fetch(key_id)
        except FetchError as error:
            raise KeyUnavailable(str(error)) from error
        key = key_from_document(key_id, document)
        return key
