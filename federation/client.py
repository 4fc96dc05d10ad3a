"""Signed GET and POST over httpx, every hop (redirects included) checked by the SSRF guard.

Redirects are followed by hand because httpx would follow a ``Location: http://127.0.0.1/`` without
asking the guard. GETs are signed too (Mastodon's "authorized fetch" mode refuses unsigned ones).
"""

from __future__ import annotations

import enum
import json
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from federation.keys import ActorKey
from federation.signatures import sign_cavage, sign_rfc9421
from federation.ssrf import BlockedDestination, Resolver, SsrfPolicy, guard_url, system_resolver

__all__ = [
    "FederationClient",
    "FetchError",
    "RefusedDestination",
    "SigningScheme",
    "AP_ACCEPT",
    "AP_CONTENT_TYPE",
]

AP_CONTENT_TYPE = "application/activity+json"
AP_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
MAX_REDIRECTS = 3


class SigningScheme(enum.StrEnum):
    CAVAGE = "draft-cavage"
    RFC9421 = "rfc9421"


class FetchError(Exception):
    """A remote document could not be fetched or parsed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RefusedDestination(FetchError):
    """The SSRF guard refused the URL (or a redirect hop); retrying will not help."""


async def _guard(url: str, policy: SsrfPolicy, resolver: Resolver) -> None:
    try:
        await guard_url(url, policy, resolver)
    except BlockedDestination as error:
        raise RefusedDestination(f"refused to fetch {url}: {error}") from error


class FederationClient:
    def __init__(
        self,
        *,
        policy: SsrfPolicy,
        clock: Callable[[], float],
        max_response_bytes: int = 1 << 20,
        timeout: float = 10.0,
        verify: bool | str = True,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "SPORE/0.1 (+https://w3id.org/spore)",
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.max_response_bytes = max_response_bytes
        self.resolver = resolver
        # A CA bundle path (a self-signed local fungiverse) becomes an SSL context, as httpx asks.
        tls = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=tls,
            follow_redirects=False,
            transport=transport,
            headers={"user-agent": user_agent},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _sign(
        self, method: str, url: str, body: bytes | None, key: ActorKey | None, scheme: SigningScheme
    ) -> dict[str, str]:
        if key is None:
            return {}
        sign = sign_cavage if scheme is SigningScheme.CAVAGE else sign_rfc9421
        content_type = AP_CONTENT_TYPE if body is not None else None
        headers = sign(
            method=method, url=url, body=body, key=key, now=self.clock(), content_type=content_type
        )
        headers.pop("host", None)  # httpx writes Host itself, from the same URL
        return headers

    async def _read_capped(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise FetchError(f"{response.url} answered more than {self.max_response_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def get_json(
        self,
        url: str,
        *,
        sign_as: ActorKey | None = None,
        accept: str = AP_ACCEPT,
        scheme: SigningScheme = SigningScheme.CAVAGE,
    ) -> dict[str, Any]:
        """GET a JSON document; signed as ``sign_as`` when given; redirects re-checked by the guard."""
        target = url.split("#", 1)[0]
        for _ in range(MAX_REDIRECTS + 1):
            await _guard(target, self.policy, self.resolver)
            headers = {"accept": accept, **self._sign("GET", target, None, sign_as, scheme)}
            try:
                async with self._http.stream("GET", target, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        target = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code >= 400:
                        raise FetchError(
                            f"GET {target} answered {response.status_code}", status=response.status_code
                        )
                    body = await self._read_capped(response)
            except httpx.HTTPError as error:
                raise FetchError(f"GET {target} failed: {error}") from error
            try:
                document = json.loads(body)
            except ValueError as error:
                raise FetchError(f"GET {target} did not return JSON") from error
            if not isinstance(document, dict):
                raise FetchError(f"GET {target} returned JSON that is not an object")
            return document
        raise FetchError(f"GET {url} redirected more than {MAX_REDIRECTS} times")

    async def get_bytes(
        self,
        url: str,
        *,
        sign_as: ActorKey | None = None,
        max_bytes: int | None = None,
        scheme: SigningScheme = SigningScheme.CAVAGE,
    ) -> bytes:
        """GET raw bytes (a content-addressed artifact), signed, SSRF-guarded, capped at ``max_bytes``.

        No redirects: an artifact is named by its hash at its owner's URL, so a redirect is refused.
        """
        await _guard(url, self.policy, self.resolver)
        headers = {"accept": "application/octet-stream", **self._sign("GET", url, None, sign_as, scheme)}
        cap = self.max_response_bytes if max_bytes is None else max_bytes
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    status = response.status_code
                    raise FetchError(f"GET {url} answered {status}", status=status)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise FetchError(f"{url} answered more than {cap} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as error:
            raise FetchError(f"GET {url} failed: {error}") from error
        return b"".join(chunks)

    async def post(
        self, url: str, body: bytes, *, sign_as: ActorKey, scheme: SigningScheme = SigningScheme.CAVAGE
    ) -> httpx.Response:
        """POST a signed activity; the caller decides what a status means (see :mod:`federation.delivery`)."""
        await _guard(url, self.policy, self.resolver)
        headers = {"content-type": AP_CONTENT_TYPE, **self._sign("POST", url, body, sign_as, scheme)}
        try:
            return await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise FetchError(f"POST {url} failed: {error}") from error
