"""/healthz and /metrics on real loopback hosts; /metrics is read back with prometheus_client's parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyoxigraph import NamedNode, Quad

from federation.config import GroupSpec, NodeSpec
from federation.delivery import Delivery
from federation.host import RunningHost, start_local_host
from federation.observability import HostMetrics
from knowledge.store import EmbeddedStore


def scrape(host: RunningHost) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the host's /metrics as {(name, sorted labels): value}."""
    response = httpx.get(host.runtime.config.base_url + "/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHost, RunningHost]]:
    root = tmp_path_factory.mktemp("observed")
    a = start_local_host(root / "a", nodes=(NodeSpec("alice"), NodeSpec("bob")))
    b = start_local_host(root / "b", nodes=(NodeSpec("carol"),), groups=(GroupSpec("jazz", "#jazz"),))
    yield a, b
    a.stop()
    b.stop()


def test_healthz_reports_each_check(hosts: tuple[RunningHost, RunningHost]) -> None:
    a, _ = hosts
    response = httpx.get(a.runtime.config.base_url + "/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["host"] == a.runtime.config.base_url
    assert set(body["checks"]) == {"store", "delivery", "workers"}
    assert body["checks"]["store"]["ok"] and isinstance(body["checks"]["store"]["quads"], int)
    assert "spore-delivery-worker" in body["checks"]["workers"]["running"]


def test_metrics_count_federation_traffic(
    hosts: tuple[RunningHost, RunningHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    from federation import observability

    monkeypatch.setattr(observability, "STORE_SIZE_SECONDS", 0.0)  # the store's size counted each scrape
    a, b = hosts
    before_a, before_b = scrape(a), scrape(b)
    a.call(a.runtime.follow("alice", b.runtime.config.base_url + "/nodes/carol"))
    for host in (a, b, a):
        host.settle()
    # An unsigned POST is refused and counted under its verdict.
    assert httpx.post(b.runtime.config.base_url + "/inbox", json={"type": "Follow"}).status_code == 401
    after_a, after_b = scrape(a), scrape(b)

    def grew(before: dict, after: dict, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # B received the Follow; A received B's Accept; each delivered one POST.
    assert grew(before_b, after_b, "spore_inbox_requests_total", verdict="accepted") == 1
    assert grew(before_b, after_b, "spore_inbox_requests_total", verdict="unsigned") == 1
    assert grew(before_a, after_a, "spore_inbox_requests_total", verdict="accepted") == 1
    assert grew(before_a, after_a, "spore_delivery_attempts_total", outcome="delivered") == 1
    assert grew(before_b, after_b, "spore_delivery_attempts_total", outcome="delivered") == 1
    assert grew(before_a, after_a, "spore_activities_published_total", actor="alice") == 1
    assert grew(before_b, after_b, "spore_activities_processed_total") == 1
    assert after_a[("spore_nodes", ())] == 2 and after_b[("spore_groups", ())] == 1
    assert after_a[("spore_delivery_queue_length", ())] == 0
    assert after_a[("spore_inbox_queue_length", ())] == 0
    assert after_b[("spore_store_quads", ())] > 0


def test_node_hooks_appear_per_node_and_hosts_do_not_share_figures(
    hosts: tuple[RunningHost, RunningHost],
) -> None:
    a, b = hosts
    metrics = a.runtime.metrics
    metrics.round_completed("alice", 1, 2.5)
    metrics.round_completed("alice", 2, 1.5)
    metrics.trained("alice", 0.75)
    metrics.evaluated("alice", 0.21)
    metrics.membership("alice", 2)
    metrics.node_round("bob", 7, 3.0, {"recall@20": 0.4, "ndcg@20": 0.2}, 1)
    samples = scrape(a)
    alice = (("node", "alice"),)
    assert samples[("spore_rounds_total", alice)] == 2
    assert samples[("spore_node_round", alice)] == 2
    assert samples[("spore_round_seconds_sum", alice)] == pytest.approx(4.0)
    assert samples[("spore_training_seconds_count", alice)] == 1
    assert samples[("spore_node_recall_at_20", alice)] == pytest.approx(0.21)
    assert samples[("spore_node_groups", alice)] == 2
    bob = (("node", "bob"),)
    assert samples[("spore_node_round", bob)] == 7 and samples[("spore_rounds_total", bob)] == 1
    assert samples[("spore_node_recall_at_20", bob)] == pytest.approx(0.4)
    assert samples[("spore_node_groups", bob)] == 1
    assert ("spore_rounds_total", alice) not in scrape(b)


def test_delivery_failures_are_counted_exceptions_included() -> None:
    metrics = HostMetrics()
    delivery = Delivery(1, "http://127.0.0.1:9/inbox", "127.0.0.1:9", "http://x/nodes/a", b"{}", 0)

    async def refused(_: Delivery) -> int | None:
        raise ConnectionRefusedError("nobody listens")

    async def gone(_: Delivery) -> int | None:
        return 410

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(metrics.counting_deliveries(refused)(delivery))
    assert asyncio.run(metrics.counting_deliveries(gone)(delivery)) == 410
    text = metrics.exposition().decode()
    values = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("spore_delivery_attempts_total", (("outcome", "retry"),))] == 1
    assert values[("spore_delivery_attempts_total", (("outcome", "permanent"),))] == 1
    assert values[("spore_delivery_failures_total", ())] == 2


class BrokenStore(EmbeddedStore):
    """A store that takes writes but cannot answer: what /healthz exists to notice."""

    def count(self, graph: object = None) -> int:
        raise OSError("disk gone")


def test_healthz_is_503_when_the_store_fails_and_metrics_still_answer(tmp_path: Path) -> None:
    host = start_local_host(tmp_path / "broken", nodes=(NodeSpec("dave"),), store=BrokenStore())
    try:
        response = httpx.get(host.runtime.config.base_url + "/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "failing"
        assert not body["checks"]["store"]["ok"] and "disk gone" in body["checks"]["store"]["detail"]
        assert body["checks"]["delivery"]["ok"]
        samples = scrape(host)
        assert ("spore_store_quads", ()) not in samples and samples[("spore_nodes", ())] == 1
    finally:
        host.stop()


class CountingStore(EmbeddedStore):
    """Counts how often the whole store is counted (a full read on disk)."""

    counts = 0

    def count(self, graph: object = None) -> int:
        if graph is None:
            CountingStore.counts += 1
        return super().count(graph)  # type: ignore[arg-type]


def test_scrapes_reuse_the_store_count_for_a_while(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from federation import observability

    CountingStore.counts = 0
    host = start_local_host(tmp_path / "counting", nodes=(NodeSpec("erin"),), store=CountingStore())
    try:
        first, second = scrape(host), scrape(host)
        assert CountingStore.counts == 1  # counted once (when the registry first collects), then reused
        assert first[("spore_store_quads", ())] == second[("spore_store_quads", ())]
        host.runtime.store.extend([Quad(NamedNode("urn:s"), NamedNode("urn:p"), NamedNode("urn:o"))])
        monkeypatch.setattr(observability, "STORE_SIZE_SECONDS", 0.0)
        third = scrape(host)
        assert CountingStore.counts == 2  # past the window, counted again
        assert third[("spore_store_quads", ())] == second[("spore_store_quads", ())] + 1
    finally:
        host.stop()
