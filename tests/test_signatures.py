"""HTTP Signatures: draft-cavage vectors from the draft's appendix C, round trips, and every rejection."""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime

import pytest
from cryptography.hazmat.primitives import serialization

from federation.keys import ActorKey, generate_rsa_key
from federation.signatures import (
    ParsedSignature,
    Rejected,
    SignatureFailure,
    SignatureScheme,
    SignedRequest,
    Verified,
    cavage_signing_string,
    check_digest,
    check_freshness,
    digest_header,
    parse_signature,
    sign_cavage,
    sign_rfc9421,
    verify_signature,
)

# draft-cavage-http-signatures-12, Appendix C: the test key and the "Basic Test" (C.2) signature.
SPEC_KEY_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----"""
SPEC_BASIC_SIGNATURE = (
    "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3HMbe8VfEdKFYRqzic+"
    "efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0="
)
SPEC_DATE = "Sun, 05 Jan 2014 21:31:40 GMT"
SPEC_NOW = parsedate_to_datetime(SPEC_DATE).timestamp()
NOW = 1_800_000_000.0
BODY = b'{"type":"Follow"}'


@pytest.fixture(scope="module")
def key() -> ActorKey:
    return ActorKey("https://a.example/nodes/alice#main-key", generate_rsa_key())


def spec_request() -> SignedRequest:
    headers = {
        "host": "example.com",
        "date": SPEC_DATE,
        "content-type": "application/json",
        "signature": f'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
        f'signature="{SPEC_BASIC_SIGNATURE}"',
    }
    return SignedRequest("POST", "http://example.com/foo?param=value&pet=dog", headers, b'{"hello": "world"}')


def test_signing_string_matches_draft_appendix_c2() -> None:
    request = spec_request()
    expected = "\n".join(
        [
            "(request-target): post /foo?param=value&pet=dog",
            "host: example.com",
            "date: Sun, 05 Jan 2014 21:31:40 GMT",
        ]
    )
    assert cavage_signing_string(("(request-target)", "host", "date"), request) == expected


def test_draft_appendix_c2_signature_verifies_with_the_spec_key() -> None:
    public_key = serialization.load_pem_private_key(SPEC_KEY_PEM, None).public_key()
    request = spec_request()
    parsed = ParsedSignature(
        SignatureScheme.DRAFT_CAVAGE_12,
        "Test",
        "rsa-sha256",
        ("(request-target)", "host", "date"),
        base64.b64decode(SPEC_BASIC_SIGNATURE),
    )
    assert verify_signature(parsed, request, public_key) == Verified(SignatureScheme.DRAFT_CAVAGE_12, "Test")
    assert check_freshness(parsed, request, now=SPEC_NOW + 10, window_seconds=3600) is None


def test_post_without_signed_digest_is_insufficient() -> None:
    # The appendix's Basic Test signs no digest: fine for the draft, not for an inbox POST (body unbound).
    parsed = parse_signature(spec_request())
    assert isinstance(parsed, Rejected)
    assert parsed.failure is SignatureFailure.INSUFFICIENT_COVERAGE
    assert "digest" in parsed.detail


def test_digest_header_of_hello_world_matches_the_draft() -> None:
    assert digest_header(b'{"hello": "world"}') == "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="


@pytest.mark.parametrize("signer", [sign_cavage, sign_rfc9421], ids=["cavage", "rfc9421"])
def test_round_trip_and_tampering(signer, key: ActorKey) -> None:
    url = "https://b.example/inbox"
    headers = signer(
        method="POST", url=url, body=BODY, key=key, now=NOW, content_type="application/activity+json"
    )
    request = SignedRequest("POST", url, headers, BODY)
    parsed = parse_signature(request)
    assert isinstance(parsed, ParsedSignature)
    assert parsed.key_id == key.key_id
    assert check_freshness(parsed, request, now=NOW, window_seconds=3600) is None
    assert check_digest(parsed, request) is None
    public_key = key.private_key.public_key()
    assert isinstance(verify_signature(parsed, request, public_key), Verified)

    changed_body = SignedRequest("POST", url, headers, b'{"type":"Delete"}')
    assert check_digest(parsed, changed_body).failure is SignatureFailure.DIGEST_MISMATCH

    other_target = SignedRequest("POST", "https://b.example/nodes/x/inbox", headers, BODY)
    assert verify_signature(parsed, other_target, public_key).failure is SignatureFailure.INVALID

    other_key = generate_rsa_key().public_key()
    assert verify_signature(parsed, request, other_key).failure is SignatureFailure.INVALID


@pytest.mark.parametrize("signer", [sign_cavage, sign_rfc9421], ids=["cavage", "rfc9421"])
@pytest.mark.parametrize(
    ("offset", "failure"), [(-3700, SignatureFailure.STALE), (3700, SignatureFailure.FUTURE)]
)
def test_clock_window(signer, offset: float, failure: SignatureFailure, key: ActorKey) -> None:
    url = "https://b.example/inbox"
    headers = signer(method="POST", url=url, body=BODY, key=key, now=NOW + offset)
    request = SignedRequest("POST", url, headers, BODY)
    parsed = parse_signature(request)
    assert isinstance(parsed, ParsedSignature)
    rejected = check_freshness(parsed, request, now=NOW, window_seconds=3600)
    assert rejected is not None and rejected.failure is failure
    assert check_freshness(parsed, request, now=NOW + offset / 2, window_seconds=3600) is None


def test_unsigned_and_malformed() -> None:
    unsigned = parse_signature(SignedRequest("POST", "https://b.example/inbox", {"date": SPEC_DATE}, BODY))
    assert isinstance(unsigned, Rejected) and unsigned.failure is SignatureFailure.MISSING
    garbage = parse_signature(
        SignedRequest("POST", "https://b.example/inbox", {"signature": "no quotes here"}, BODY)
    )
    assert isinstance(garbage, Rejected) and garbage.failure is SignatureFailure.MALFORMED
    bad_sf = SignedRequest(
        "GET", "https://b.example/x", {"signature-input": "sig1=(", "signature": "sig1=:AA==:"}
    )
    assert parse_signature(bad_sf).failure is SignatureFailure.MALFORMED


def test_unsupported_algorithm_is_named(key: ActorKey) -> None:
    url = "https://b.example/inbox"
    headers = sign_cavage(method="POST", url=url, body=BODY, key=key, now=NOW)
    headers["signature"] = headers["signature"].replace('algorithm="rsa-sha256"', 'algorithm="hmac-sha256"')
    request = SignedRequest("POST", url, headers, BODY)
    parsed = parse_signature(request)
    assert isinstance(parsed, ParsedSignature)
    outcome = verify_signature(parsed, request, key.private_key.public_key())
    assert isinstance(outcome, Rejected) and outcome.failure is SignatureFailure.UNSUPPORTED_ALGORITHM


def test_signed_get_covers_target_host_and_date(key: ActorKey) -> None:
    url = "https://b.example/nodes/bob"
    headers = sign_cavage(method="GET", url=url, body=None, key=key, now=NOW)
    assert 'headers="(request-target) host date"' in headers["signature"]
    assert "digest" not in headers
    request = SignedRequest("GET", url, headers)
    parsed = parse_signature(request)
    assert isinstance(verify_signature(parsed, request, key.private_key.public_key()), Verified)
