"""Pure security checks: SSRF guard, origin rule (CVE-2024-23832), sanitising, depth, rate limit, contexts."""

from __future__ import annotations

import asyncio

import pytest

from federation.inbox import check_origins
from federation.jsonld import UnknownContext, expand, to_quads
from federation.processing import sanitise
from federation.ratelimit import RateLimiter
from federation.ssrf import AddressClass, BlockedDestination, SsrfPolicy, classify_address, guard_url
from federation.vocab import json_depth, same_origin, types_of


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("93.184.215.14", AddressClass.PUBLIC),
        ("2606:4700::1111", AddressClass.PUBLIC),
        ("127.0.0.1", AddressClass.LOOPBACK),
        ("127.8.9.10", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK),
        ("10.1.2.3", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("100.64.0.1", AddressClass.PRIVATE),
        ("fd00::1", AddressClass.PRIVATE),
        ("169.254.169.254", AddressClass.LINK_LOCAL),
        ("fe80::1", AddressClass.LINK_LOCAL),
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
        ("::ffff:169.254.169.254", AddressClass.LINK_LOCAL),
        ("2002:7f00:1::", AddressClass.LOOPBACK),  # 6to4 wrapping 127.0.0.1
        ("0.0.0.0", AddressClass.UNSPECIFIED),
        ("224.0.0.1", AddressClass.MULTICAST),
    ],
)
def test_classify_address(address: str, expected: AddressClass) -> None:
    assert classify_address(address) is expected


def _resolver(answers: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/actor",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/inbox",
        "http://rebind.example/inbox",  # resolves to a public and a private address
        "file:///etc/passwd",
        "http://user:pw@public.example/",
    ],
)
def test_guard_blocks_by_default(url: str) -> None:
    resolver = _resolver(
        {"rebind.example": ["93.184.215.14", "10.0.0.1"], "public.example": ["93.184.215.14"]}
    )
    with pytest.raises(BlockedDestination):
        asyncio.run(guard_url(url, SsrfPolicy(), resolver))


def test_guard_allows_public_and_explicitly_allowed_loopback() -> None:
    resolver = _resolver({"public.example": ["93.184.215.14"], "localhost": ["127.0.0.1", "::1"]})
    asyncio.run(guard_url("https://public.example/actor", SsrfPolicy(), resolver))
    asyncio.run(guard_url("http://localhost:8000/actor", SsrfPolicy(allow_loopback=True), resolver))
    asyncio.run(guard_url("http://[::ffff:127.0.0.1]/x", SsrfPolicy(allow_loopback=True), resolver))
    # Allowing loopback does not allow the private network or the metadata endpoint.
    with pytest.raises(BlockedDestination):
        asyncio.run(guard_url("http://10.0.0.5/", SsrfPolicy(allow_loopback=True), resolver))
    with pytest.raises(BlockedDestination):
        asyncio.run(
            guard_url(
                "http://169.254.169.254/", SsrfPolicy(allow_loopback=True, allow_private=True), resolver
            )
        )


ACTOR = "https://evil.example/users/mallory"


@pytest.mark.parametrize(
    ("activity", "refused"),
    [
        (
            {
                "id": f"{ACTOR}/c/1",
                "type": "Create",
                "object": {"id": "https://evil.example/n/1", "attributedTo": ACTOR},
            },
            False,
        ),
        (
            {
                "id": f"{ACTOR}/c/1",
                "type": "Create",
                "object": {"id": "https://victim.example/n/1", "attributedTo": ACTOR},
            },
            True,
        ),
        (
            {
                "id": f"{ACTOR}/c/1",
                "type": "Create",
                "object": {"id": "https://evil.example/n/1", "attributedTo": "https://victim.example/u/v"},
            },
            True,
        ),
        (
            {
                "id": f"{ACTOR}/u/1",
                "type": "Update",
                "object": {"id": "https://victim.example/u/v", "type": "Person"},
            },
            True,
        ),
        ({"id": f"{ACTOR}/d/1", "type": "Delete", "object": "https://victim.example/n/1"}, True),
        ({"id": "https://victim.example/a/1", "type": "Follow", "object": "https://b.example/nodes/x"}, True),
        ({"id": f"{ACTOR}/f/1", "type": "Follow", "object": "https://b.example/nodes/x"}, False),
        ({"id": f"{ACTOR}/a/1", "type": "Announce", "object": "https://victim.example/n/1"}, False),
    ],
)
def test_objects_must_belong_to_their_signer(activity: dict, refused: bool) -> None:
    assert (check_origins(activity, ACTOR) is not None) is refused


def test_sanitise_removes_scripts_and_keeps_links() -> None:
    dirty = {
        "type": "Create",
        "object": {
            "content": '<p onclick="x()">hi <script>alert(1)</script><a href="https://a.example/tags/jazz">#jazz</a></p>',
            "contentMap": {"en": "<img src=x onerror=alert(1)>ok"},
            "summary": "<iframe src='https://evil.example'></iframe>cw",
            "url": "<script>kept: not HTML</script>",
        },
    }
    clean = sanitise(dirty)["object"]
    assert "script" not in clean["content"] and "onclick" not in clean["content"]
    assert 'href="https://a.example/tags/jazz"' in clean["content"]
    assert "onerror" not in clean["contentMap"]["en"]
    assert "iframe" not in clean["summary"]
    assert clean["url"] == dirty["object"]["url"]


def test_json_depth_is_iterative() -> None:
    deep: list = []
    node = deep
    for _ in range(50_000):
        child: list = []
        node.append(child)
        node = child
    assert json_depth(deep) == 50_001
    assert json_depth({"a": [{"b": 1}]}) == 3


def test_rate_limiter_per_host_with_injected_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2.0, clock=lambda: now[0])
    assert limiter.allow("https://a.example") and limiter.allow("https://a.example")
    assert not limiter.allow("https://a.example")
    assert limiter.allow("https://b.example")  # another host has its own bucket
    now[0] = 1.0
    assert limiter.allow("https://a.example")
    assert not limiter.allow("https://a.example")


def test_remote_contexts_are_refused_and_known_ones_load_offline() -> None:
    note = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://a.example/n/1",
        "type": "Note",
    }
    assert expand(note)[0]["@type"] == ["https://www.w3.org/ns/activitystreams#Note"]
    assert len(to_quads(note)) == 1
    hostile = {**note, "@context": ["https://www.w3.org/ns/activitystreams", "https://evil.example/context"]}
    with pytest.raises(UnknownContext):
        expand(hostile)
    with pytest.raises(UnknownContext):
        to_quads(hostile)


def test_client_refuses_a_redirect_into_the_private_network() -> None:
    import httpx

    from federation.client import FederationClient, RefusedDestination

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.example":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"})
        return httpx.Response(200, json={"secret": True})

    seen: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["93.184.215.14"]

    async def fetch() -> None:
        client = FederationClient(
            policy=SsrfPolicy(), clock=lambda: 0.0, resolver=resolver, transport=httpx.MockTransport(handler)
        )
        try:
            await client.get_json("https://public.example/users/x")
        finally:
            await client.aclose()

    with pytest.raises(RefusedDestination, match="169.254.169.254"):
        asyncio.run(fetch())
    assert seen == ["public.example"]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("https://a.example/u/1", "https://A.example/x#k", True),
        ("https://a.example/u", "http://a.example/u", False),
        ("https://a.example:8443/u", "https://a.example/u", False),
        ("http://[::1", "http://[::1", False),  # unparseable IRIs match nothing
        ("Test", "Test", False),
    ],
)
def test_same_origin_is_total(first: str, second: str, same: bool) -> None:
    assert same_origin(first, second) is same


def test_types_of_tolerates_any_json() -> None:
    assert types_of({"type": 5}) == frozenset()
    assert types_of({"type": ["Create", 7]}) == frozenset({"Create"})
    assert types_of([1, 2]) == frozenset()
