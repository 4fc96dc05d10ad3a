"""fediverse-pasture's verify_actor, run against a SPORE node.

verify_actor (built on bovine, independent of Fedify and of us) fetches the node's actor with six
test actors, POSTs a Like to its inbox with each (unsigned from alice and dean, draft-cavage
signed from the others; claire and frank serve their own keys to signed GETs only, so our host
must sign its key fetches), and resolves the actor back through WebFinger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from interop_peers import Pasture, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.slow]

Verified = tuple[Any, dict[str, Any], list[Any]]  # (host, verify_actor's table, its steps)
SIGNED = ("bob", "claire", "emily", "frank")
UNSIGNED = ("alice", "dean")


@pytest.fixture(scope="module")
def verified(spore_hosts: Callable[..., Any], pasture: Pasture) -> Verified:
    host = spore_hosts("pasture_target")
    result, steps = pasture.verify(f"{host.runtime.config.base_url}/nodes/pasture_target")
    host.settle()
    return host, result, steps


def test_pasture_fetches_our_actor_as_every_test_actor(verified: Verified) -> None:
    _host, result, steps = verified

    everyone = SIGNED + UNSIGNED
    assert {name: result[name]["get_actor"] for name in everyone} == dict.fromkeys(everyone, True), steps


def test_signed_posts_are_accepted(verified: Verified) -> None:
    _host, result, steps = verified

    assert {name: result[name]["post_inbox"] for name in SIGNED} == dict.fromkeys(SIGNED, True), steps


def test_unsigned_posts_are_refused_with_401(verified: Verified) -> None:
    _host, result, steps = verified

    assert {name: result[name]["post_inbox"] for name in UNSIGNED} == dict.fromkeys(UNSIGNED, False), steps
    assert steps.count("Got 401 for unsigned POST") == len(UNSIGNED), steps


def test_webfinger_round_trips(verified: Verified) -> None:
    _host, result, steps = verified

    assert result["webfinger"] is True, steps
    assert any("acct:pasture_target@127.0.0.1:" in str(step) for step in steps), steps


def test_the_signed_likes_are_stored_as_rdf(verified: Verified, pasture: Pasture) -> None:
    host, _result, _steps = verified
    query = """PREFIX as: <https://www.w3.org/ns/activitystreams#>
        SELECT DISTINCT ?actor { GRAPH ?g { ?like a as:Like ; as:actor ?actor } }"""

    def likers() -> set[str]:
        return {row["actor"].value for row in host.runtime.store.query(query)}

    expected = {f"{pasture.url}{name}" for name in SIGNED}
    assert wait_until(lambda: likers() >= expected, what="the Likes in the node's graphs")
    assert not likers() & {f"{pasture.url}{name}" for name in UNSIGNED}
