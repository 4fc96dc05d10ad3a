"""RFC 9421 (HTTP Message Signatures) through the ``http-message-signatures`` library.

Wrapped here so that :mod:`federation.signatures` sees two plain functions. The library checks the
signature base, covered components and the ``Content-Digest`` coverage; the clock window is *not*
left to it, because it reads the wall clock and this code runs on an injected one
(:func:`federation.signatures.check_freshness` applies the window).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import format_datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from federation.keys import ActorKey, PublicKey

__all__ = ["RFC9421_ALGORITHMS", "verify_rfc9421", "sign_rfc9421", "http_date"]

# RFC 9421 section 6.2 algorithm registry entries we verify, by key type when ``alg`` is absent.
RFC9421_ALGORITHMS = {
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "ed25519": algorithms.ED25519,
}


def http_date(now: float) -> str:
    """An IMF-fixdate (RFC 9110 section 5.6.7) for the ``Date`` header."""
    return format_datetime(dt.datetime.fromtimestamp(now, tz=dt.UTC), usegmt=True)


class _FixedKey(HTTPSignatureKeyResolver):
    def __init__(self, key: PublicKey) -> None:
        self.key = key

    def resolve_public_key(self, key_id: str) -> PublicKey:
        return self.key


class _PrivateKey(HTTPSignatureKeyResolver):
    def __init__(self, key: ActorKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> rsa.RSAPrivateKey:
        return self.key.private_key


class _Message:
    """The request shape the library reads (method, url, headers)."""

    def __init__(self, method: str, url: str, headers: Mapping[str, str]) -> None:
        self.method = method.upper()
        self.url = url
        self.headers = dict(headers)


class _WindowlessVerifier(HTTPMessageVerifier):
    # Freshness is checked by check_freshness() against the injected clock, not the wall clock.
    def validate_created_and_expires(self, sig_input, max_age=None) -> None:  # type: ignore[no-untyped-def]
        return None


def verify_rfc9421(method: str, url: str, headers: Mapping[str, str], alg: object, key: PublicKey) -> bool:
    """True when the request's RFC 9421 signature verifies with ``key`` (``alg`` from its parameters)."""
    if alg is not None:
        algorithm = RFC9421_ALGORITHMS.get(str(alg))
    else:
        is_ed25519 = isinstance(key, ed25519.Ed25519PublicKey)
        algorithm = algorithms.ED25519 if is_ed25519 else algorithms.RSA_V1_5_SHA256
    if algorithm is None:
        return False
    verifier = _WindowlessVerifier(signature_algorithm=algorithm, key_resolver=_FixedKey(key))
    verifier.require_created = False
    try:
        verifier.verify(_Message(method, url, headers), max_age=None, expect_tag=None, expect_label=None)
    except (InvalidSignature, HTTPMessageSignaturesException):
        return False
    return True


def sign_rfc9421(
    *, method: str, url: str, body: bytes | None, key: ActorKey, now: float, content_type: str | None = None
) -> dict[str, str]:
    """Headers for an RFC 9421 rsa-v1_5-sha256 signed request, covering what Fedify covers."""
    headers = {"host": urlsplit(url).netloc, "date": http_date(now)}
    if content_type is not None:
        headers["content-type"] = content_type
    message = _Message(method, url, headers)
    signer = HTTPMessageSigner(signature_algorithm=algorithms.RSA_V1_5_SHA256, key_resolver=_PrivateKey(key))
    signer.sign(
        message,
        key_id=key.key_id,
        created=dt.datetime.fromtimestamp(int(now), tz=dt.UTC),
        label="sig1",
        covered_component_ids=["@method", "@target-uri", "@authority", "host", "date"],
        body=body,  # the library adds Content-Digest and covers it when there is a body
    )
    return {name.lower(): value for name, value in message.headers.items()}
