"""HTTP Signatures: draft-cavage-12 (what Mastodon speaks) and RFC 9421 (what Fedify tries first).

Verification is split into pure steps so that the cheap checks (syntax, clock window, body digest)
reject a request *before* anything fetches the signer's key: otherwise an unsigned flood would make
the host fetch keys for every junk request. Each step returns a :class:`Rejected` naming the check
that failed; :mod:`federation.inbox` maps those to HTTP statuses in one table.

References: draft-cavage-http-signatures-12 (section 2.1 parameters, 2.3 signing string), RFC 3230
(``Digest``), RFC 9421 (HTTP Message Signatures) and RFC 9530 (``Content-Digest``), the latter two via
the ``http-message-signatures`` library.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from federation.keys import ActorKey, PublicKey
from federation.rfc9421 import RFC9421_ALGORITHMS, http_date, sign_rfc9421, verify_rfc9421

__all__ = [
    "SignatureScheme",
    "SignatureFailure",
    "SignedRequest",
    "ParsedSignature",
    "Verified",
    "Rejected",
    "parse_signature",
    "check_freshness",
    "check_digest",
    "verify_signature",
    "sign_cavage",
    "sign_rfc9421",
    "digest_header",
]


class SignatureScheme(enum.StrEnum):
    """The closed set of signature specifications a request may use."""

    DRAFT_CAVAGE_12 = "draft-cavage-http-signatures-12"
    RFC_9421 = "rfc9421"


class SignatureFailure(enum.StrEnum):
    """Which verification check failed; :mod:`federation.inbox` maps each to a status."""

    MISSING = "missing"  # no Signature / Signature-Input header
    MALFORMED = "malformed"  # header present but unparseable
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    INSUFFICIENT_COVERAGE = "insufficient-coverage"  # a component that must be signed is not
    STALE = "stale"  # Date / created older than the window
    FUTURE = "future"  # Date / created ahead of the window
    DIGEST_MISSING = "digest-missing"
    DIGEST_MISMATCH = "digest-mismatch"  # body changed after signing
    KEY_UNAVAILABLE = "key-unavailable"
    INVALID = "invalid-signature"  # cryptographic check failed


@dataclass(frozen=True)
class SignedRequest:
    """What verification needs from an HTTP request; ``headers`` keys are lower case."""

    method: str
    url: str  # absolute target URI as the signer addressed it
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def request_target(self) -> str:
        parts = urlsplit(self.url)
        return f"{self.method.lower()} {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class ParsedSignature:
    scheme: SignatureScheme
    key_id: str
    algorithm: str | None
    covered: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: int | None = None
    label: str | None = None  # RFC 9421 dictionary label


@dataclass(frozen=True)
class Verified:
    scheme: SignatureScheme
    key_id: str


@dataclass(frozen=True)
class Rejected:
    failure: SignatureFailure
    detail: str
    key_id: str | None = field(default=None)


# draft-cavage section 2.1: the algorithm parameter; hs2019 means "derive from the key" (section 2.3).
CAVAGE_ALGORITHMS = frozenset({"rsa-sha256", "hs2019", "ed25519"})
# Components a POST must cover so that method, target, host, time and body are all bound to the key.
CAVAGE_REQUIRED = {
    "get": ("(request-target)", "host", "date"),
    "post": ("(request-target)", "host", "date", "digest"),
}
RFC9421_REQUIRED = {
    "get": ('"@method"', '"@target-uri"'),
    "post": ('"@method"', '"@target-uri"', '"content-digest"'),
}

_CAVAGE_PARAM = re.compile(r'\s*(\w+)\s*=\s*(?:"([^"]*)"|(\d+))\s*(?:,|$)')


def _parse_cavage(value: str) -> ParsedSignature | Rejected:
    params: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _CAVAGE_PARAM.match(value, position)
        if match is None or match.end() == position:
            return Rejected(
                SignatureFailure.MALFORMED, f"unparseable Signature header near {value[position:][:40]!r}"
            )
        params[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
        position = match.end()
    if "keyId" not in params or "signature" not in params:
        return Rejected(SignatureFailure.MALFORMED, "Signature header lacks keyId or signature")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except ValueError:
        return Rejected(SignatureFailure.MALFORMED, "signature is not base64", params["keyId"])
    covered = tuple(params.get("headers", "date").lower().split())  # section 2.1.6: default is (Date)
    return ParsedSignature(
        scheme=SignatureScheme.DRAFT_CAVAGE_12,
        key_id=params["keyId"],
        algorithm=params.get("algorithm"),
        covered=covered,
        signature=signature,
        created=int(params["created"]) if "created" in params else None,
        expires=int(params["expires"]) if "expires" in params else None,
    )


def _parse_rfc9421(signature_input: str, signature_value: str) -> ParsedSignature | Rejected:
    try:
        inputs = http_sf.parse(signature_input.encode(), tltype="dictionary")
        values = http_sf.parse(signature_value.encode(), tltype="dictionary")
    except Exception as error:  # http_sf raises ValueError subclasses and IndexError on garbage
        return Rejected(SignatureFailure.MALFORMED, f"Signature-Input or Signature unparseable: {error}")
    if not inputs or inputs.keys() != values.keys():
        return Rejected(SignatureFailure.MALFORMED, "Signature-Input and Signature labels differ")
    # Several labels may appear (a proxy adding its own); the first carrying a keyid is the sender's.
    for label, (members, params) in inputs.items():
        if not isinstance(members, list) or "keyid" not in params:
            continue
        covered = tuple(f'"{member}"' for member, _ in members)
        signature = values[label][0]
        if not isinstance(signature, bytes):
            return Rejected(SignatureFailure.MALFORMED, f"Signature {label} is not a byte sequence")
        return ParsedSignature(
            scheme=SignatureScheme.RFC_9421,
            key_id=str(params["keyid"]),
            algorithm=params.get("alg"),
            covered=covered,
            signature=signature,
            created=params.get("created"),
            expires=params.get("expires"),
            label=label,
        )
    return Rejected(SignatureFailure.MALFORMED, "no Signature-Input member has a keyid")


def parse_signature(request: SignedRequest) -> ParsedSignature | Rejected:
    """Find the request's signature; RFC 9421 wins when both are present (it is the stricter one)."""
    headers = request.headers
    if "signature-input" in headers and "signature" in headers:
        parsed = _parse_rfc9421(headers["signature-input"], headers["signature"])
    elif "signature" in headers:
        parsed = _parse_cavage(headers["signature"])
    elif headers.get("authorization", "").lower().startswith("signature "):
        parsed = _parse_cavage(headers["authorization"][len("signature ") :])
    else:
        return Rejected(SignatureFailure.MISSING, "request is not signed")
    if isinstance(parsed, Rejected):
        return parsed
    method = request.method.lower()
    required = (
        CAVAGE_REQUIRED if parsed.scheme is SignatureScheme.DRAFT_CAVAGE_12 else RFC9421_REQUIRED
    ).get(method, CAVAGE_REQUIRED["get"] if parsed.scheme is SignatureScheme.DRAFT_CAVAGE_12 else ())
    if parsed.scheme is SignatureScheme.DRAFT_CAVAGE_12 and "date" not in parsed.covered:
        # hs2019 signers may bind time through (created) instead of the Date header.
        required = tuple(name for name in required if name != "date" or "(created)" not in parsed.covered)
    missing = [name for name in required if name not in parsed.covered]
    if missing:
        return Rejected(
            SignatureFailure.INSUFFICIENT_COVERAGE,
            f"signature must cover {', '.join(missing)}",
            parsed.key_id,
        )
    absent = [
        name for name in parsed.covered if not name.startswith(('"@', "(")) and name.strip('"') not in headers
    ]
    if absent:
        return Rejected(
            SignatureFailure.MALFORMED, f"signed header(s) {', '.join(absent)} absent", parsed.key_id
        )
    return parsed


def check_freshness(
    parsed: ParsedSignature, request: SignedRequest, *, now: float, window_seconds: float
) -> Rejected | None:
    """Bound replays in time: the signed Date (or ``created``) must lie within ``window_seconds`` of now."""
    moments: list[tuple[str, float]] = []
    if parsed.created is not None:
        moments.append(("created", float(parsed.created)))
    if "date" in request.headers and (
        parsed.scheme is SignatureScheme.RFC_9421 or "date" in parsed.covered or parsed.created is None
    ):
        try:
            moments.append(("Date", parsedate_to_datetime(request.headers["date"]).timestamp()))
        except (TypeError, ValueError):
            return Rejected(SignatureFailure.MALFORMED, "unparseable Date header", parsed.key_id)
    if not moments:
        return Rejected(
            SignatureFailure.INSUFFICIENT_COVERAGE, "neither Date nor created is signed", parsed.key_id
        )
    for name, moment in moments:
        if moment < now - window_seconds:
            return Rejected(SignatureFailure.STALE, f"{name} is {int(now - moment)} s old", parsed.key_id)
        if moment > now + window_seconds:
            return Rejected(
                SignatureFailure.FUTURE, f"{name} is {int(moment - now)} s in the future", parsed.key_id
            )
    if parsed.expires is not None and parsed.expires < now:
        return Rejected(SignatureFailure.STALE, "signature has expired", parsed.key_id)
    return None


def digest_header(body: bytes) -> str:
    """RFC 3230 ``Digest`` value as Mastodon sends it."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def check_digest(parsed: ParsedSignature, request: SignedRequest) -> Rejected | None:
    """The body must hash to the signed digest: this is what binds the body to the signature."""
    if parsed.scheme is SignatureScheme.RFC_9421:
        value = request.headers.get("content-digest")
        if value is None:
            return (
                None if not request.body else Rejected(SignatureFailure.DIGEST_MISSING, "no Content-Digest")
            )
        try:
            members = http_sf.parse(value.encode(), tltype="dictionary")
        except Exception:
            return Rejected(SignatureFailure.MALFORMED, "unparseable Content-Digest", parsed.key_id)
        pairs = [(name, member[0]) for name, member in members.items() if name in _DIGESTS]
    else:
        value = request.headers.get("digest")
        if value is None:
            return None if not request.body else Rejected(SignatureFailure.DIGEST_MISSING, "no Digest header")
        pairs = []
        for item in value.split(","):
            name, _, encoded = item.strip().partition("=")
            if name.lower() in _DIGESTS:
                try:
                    pairs.append((name.lower(), base64.b64decode(encoded, validate=True)))
                except ValueError:
                    return Rejected(SignatureFailure.MALFORMED, "Digest is not base64", parsed.key_id)
    if not pairs:
        return Rejected(SignatureFailure.UNSUPPORTED_ALGORITHM, "no SHA-256/SHA-512 digest", parsed.key_id)
    for name, expected in pairs:
        if _DIGESTS[name](request.body).digest() != expected:
            return Rejected(
                SignatureFailure.DIGEST_MISMATCH, "body does not match its signed digest", parsed.key_id
            )
    return None


def cavage_signing_string(
    covered: tuple[str, ...], request: SignedRequest, parsed: ParsedSignature | None = None
) -> str:
    """draft-cavage section 2.3: one ``name: value`` line per covered header, in the signed order."""
    lines = []
    for name in covered:
        if name == "(request-target)":
            lines.append(f"(request-target): {request.request_target}")
        elif name in ("(created)", "(expires)") and parsed is not None:
            value = parsed.created if name == "(created)" else parsed.expires
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name}: {request.headers[name].strip()}")
    return "\n".join(lines)


def _verify_cavage(parsed: ParsedSignature, request: SignedRequest, key: PublicKey) -> bool:
    if parsed.algorithm not in (None, *CAVAGE_ALGORITHMS):
        return False
    message = cavage_signing_string(parsed.covered, request, parsed).encode("utf-8")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(parsed.signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(parsed.signature, message)
    except CryptoInvalidSignature:
        return False
    return True


def verify_signature(parsed: ParsedSignature, request: SignedRequest, key: PublicKey) -> Verified | Rejected:
    """The cryptographic check alone; run :func:`check_freshness` and :func:`check_digest` first."""
    if parsed.scheme is SignatureScheme.DRAFT_CAVAGE_12:
        if parsed.algorithm not in (None, *CAVAGE_ALGORITHMS):
            return Rejected(
                SignatureFailure.UNSUPPORTED_ALGORITHM, f"algorithm {parsed.algorithm!r}", parsed.key_id
            )
        ok = _verify_cavage(parsed, request, key)
    else:
        if parsed.algorithm is not None and str(parsed.algorithm) not in RFC9421_ALGORITHMS:
            return Rejected(
                SignatureFailure.UNSUPPORTED_ALGORITHM, f"alg {parsed.algorithm!r}", parsed.key_id
            )
        ok = verify_rfc9421(request.method, request.url, request.headers, parsed.algorithm, key)
    if not ok:
        return Rejected(SignatureFailure.INVALID, f"{parsed.scheme} signature does not verify", parsed.key_id)
    return Verified(parsed.scheme, parsed.key_id)


def sign_cavage(
    *, method: str, url: str, body: bytes | None, key: ActorKey, now: float, content_type: str | None = None
) -> dict[str, str]:
    """Headers for a draft-cavage rsa-sha256 signed request (Mastodon's profile of the draft)."""
    parts = urlsplit(url)
    headers = {"host": parts.netloc, "date": http_date(now)}
    covered = ["(request-target)", "host", "date"]
    if body is not None:
        headers["digest"] = digest_header(body)
        covered.append("digest")
        if content_type is not None:
            headers["content-type"] = content_type
            covered.append("content-type")
    request = SignedRequest(method=method, url=url, headers=headers, body=body or b"")
    message = cavage_signing_string(tuple(covered), request).encode("utf-8")
    signature = key.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers["signature"] = (
        f'keyId="{key.key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",'
        f'signature="{base64.b64encode(signature).decode("ascii")}"'
    )
    return headers
