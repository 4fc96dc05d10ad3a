"""A host's health and metrics: ``/healthz`` (JSON) and ``/metrics`` (Prometheus text format).

Every host owns one :class:`HostMetrics` with its own ``CollectorRegistry``: prometheus_client's
default registry is process-global, and a process may run several hosts (tests, ``spore demo``'s
benchmark), whose figures must not add up. Two kinds of figures are exported:

* events, counted as they happen by the runtime and the node runtime through the typed hooks below
  (inbox verdicts, delivery attempts, rounds, training time, Recall@20);
* state, read at scrape time from the runtime (queue lengths, activities published, store size), so
  that a restarted host reports what its durable state holds rather than zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from federation.delivery import Delivery, classify_status

if TYPE_CHECKING:
    from federation.runtime import HostRuntime

__all__ = ["HostMetrics", "RuntimeCollector", "observability_router", "health_checks", "METRICS_MEDIA_TYPE"]

# The classic text format (0.0.4): every Prometheus version and every scraper reads it.
METRICS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STORE_CHECK_SECONDS = 2.0


@dataclass
class HostMetrics:
    """The counters a host and its nodes feed; one per host, never shared."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        registry = self.registry
        self.inbox_requests = Counter(
            "spore_inbox_requests",
            "Activities POSTed to this host's inboxes, by the verification pipeline's verdict",
            ["verdict"],
            registry=registry,
        )
        self.delivery_attempts = Counter(
            "spore_delivery_attempts",
            "Signed POSTs to remote inboxes, by outcome (delivered, retry, permanent)",
            ["outcome"],
            registry=registry,
        )
        self.delivery_failures = Counter(
            "spore_delivery_failures",
            "Delivery attempts that did not deliver (to be retried or dropped)",
            registry=registry,
        )
        self.rounds = Counter(
            "spore_rounds", "Protocol rounds completed, per node", ["node"], registry=registry
        )
        self.round = Gauge("spore_node_round", "The last round a node completed", ["node"], registry=registry)
        self.round_seconds = Summary(
            "spore_round_seconds", "Wall time of a node's rounds", ["node"], registry=registry
        )
        self.training_seconds = Summary(
            "spore_training_seconds", "Time a node spent training its model", ["node"], registry=registry
        )
        self.recall = Gauge(
            "spore_node_recall_at_20",
            "A node's latest Recall@20 on its validation split",
            ["node"],
            registry=registry,
        )
        self.groups = Gauge(
            "spore_node_groups", "Learning groups a node is a member of", ["node"], registry=registry
        )

    # -- hooks for the federation runtime ------------------------------------------------------------
    def inbox_verdict(self, verdict: str) -> None:
        self.inbox_requests.labels(verdict=verdict).inc()

    def delivery_outcome(self, status: int | None) -> None:
        outcome = classify_status(status)
        self.delivery_attempts.labels(outcome=outcome).inc()
        if status is None or not 200 <= status < 300:
            self.delivery_failures.inc()

    def counting_deliveries(
        self, send: Callable[[Delivery], Awaitable[int | None]]
    ) -> Callable[[Delivery], Awaitable[int | None]]:
        """Wrap the delivery queue's send function so every attempt is counted, exceptions included."""

        async def counted(delivery: Delivery) -> int | None:
            try:
                status = await send(delivery)
            except Exception:
                self.delivery_outcome(None)
                raise
            self.delivery_outcome(status)
            return status

        return counted

    # -- hooks for the node runtime --------------------------------------------------------------------
    def round_completed(self, node: str, round_number: int, seconds: float) -> None:
        self.rounds.labels(node=node).inc()
        self.round.labels(node=node).set(round_number)
        self.round_seconds.labels(node=node).observe(seconds)

    def node_round(
        self, node: str, round_number: int, seconds: float, metrics: Mapping[str, float], groups: int
    ) -> None:
        """Everything a finished round tells: one call from the node runtime per node and round."""
        self.round_completed(node, round_number, seconds)
        recall = metrics.get("recall@20")
        if recall is not None:
            self.evaluated(node, recall)
        self.membership(node, groups)

    def trained(self, node: str, seconds: float) -> None:
        self.training_seconds.labels(node=node).observe(seconds)

    def evaluated(self, node: str, recall_at_20: float) -> None:
        self.recall.labels(node=node).set(recall_at_20)

    def membership(self, node: str, groups: int) -> None:
        self.groups.labels(node=node).set(groups)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


STORE_SIZE_SECONDS = 30.0
"""How long scrapes reuse the store's quad count. Counting an on-disk store reads every quad: with
``spore status`` polling a 50-node host every few seconds, the count took a tenth of its CPU."""


class RuntimeCollector(Collector):
    """Figures read from the runtime's durable state when scraped (they survive a restart)."""

    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime
        self._size: tuple[float, int | None] | None = None  # (when counted, quads)

    def store_quads(self) -> int | None:
        """The store's quad count, at most :data:`STORE_SIZE_SECONDS` old."""
        now = time.monotonic()
        if self._size is None or now - self._size[0] > STORE_SIZE_SECONDS:
            self._size = (now, store_size(self.runtime.store))
        return self._size[1]

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        actors = runtime.actors
        yield GaugeMetricFamily("spore_nodes", "Fungus nodes served by this host", value=len(actors.nodes))
        yield GaugeMetricFamily("spore_groups", "Learning groups hosted here", value=len(actors.groups))
        yield GaugeMetricFamily(
            "spore_delivery_queue_length",
            "Deliveries waiting (due or backing off)",
            value=len(runtime.deliveries),
        )
        yield GaugeMetricFamily(
            "spore_inbox_queue_length",
            "Verified activities waiting to be processed",
            value=runtime.processor.queue.qsize(),
        )
        yield CounterMetricFamily(
            "spore_activities_processed",
            "Accepted activities processed since the host started",
            value=runtime.processor.processed,
        )
        published = CounterMetricFamily(
            "spore_activities_published", "Activities in each local actor's outbox", labels=["actor"]
        )
        for actor in actors.all():
            published.add_metric([actor.name], runtime.state.count_outgoing(actor.id))
        yield published
        size = self.store_quads()
        if size is not None:
            yield GaugeMetricFamily("spore_store_quads", "Quads in the host's knowledge store", value=size)


def store_size(store: Any) -> int | None:
    """The store's quad count, or None where the store cannot say (a bare sink) or fails to answer."""
    count = getattr(store, "count", None)
    if count is None:
        return None
    try:
        return int(count())
    except Exception:  # a scrape must not fail because the store is down; /healthz reports that
        return None


async def health_checks(runtime: HostRuntime) -> dict[str, dict[str, Any]]:
    """Liveness of the parts a host needs: the store answers, the delivery queue and workers run."""
    checks: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    count = getattr(runtime.store, "count", None)
    if count is None:
        checks["store"] = {"ok": True, "detail": "write-only sink"}
    else:
        try:
            quads = await asyncio.wait_for(asyncio.to_thread(count), _STORE_CHECK_SECONDS)
            checks["store"] = {"ok": True, "quads": int(quads)}
        except TimeoutError:
            checks["store"] = {"ok": False, "detail": f"no answer within {_STORE_CHECK_SECONDS:g} s"}
        except Exception as error:
            checks["store"] = {"ok": False, "detail": f"{type(error).__name__}: {error}"}
    checks["store"]["seconds"] = round(time.perf_counter() - started, 4)
    try:
        checks["delivery"] = {"ok": True, "queued": len(runtime.deliveries)}
    except Exception as error:
        checks["delivery"] = {"ok": False, "detail": f"{type(error).__name__}: {error}"}
    workers = runtime.workers()
    stopped = sorted(name for name, alive in workers.items() if not alive)
    checks["workers"] = {"ok": bool(workers) and not stopped, "running": sorted(workers), "stopped": stopped}
    return checks


def observability_router(runtime: HostRuntime) -> APIRouter:
    """``/healthz`` (200 or 503 with one entry per check) and ``/metrics`` from the runtime's metrics."""
    router = APIRouter()
    metrics = runtime.metrics
    metrics.registry.register(RuntimeCollector(runtime))

    @router.get("/healthz")
    async def healthz() -> Response:
        checks = await health_checks(runtime)
        healthy = all(check["ok"] for check in checks.values())
        body = {"status": "ok" if healthy else "failing", "host": runtime.config.base_url, "checks": checks}
        return JSONResponse(body, status_code=200 if healthy else 503, headers={"cache-control": "no-store"})

    @router.get("/metrics")
    async def metrics_view() -> Response:
        # Scraping reads sqlite counts and the store size: off the event loop, as the inboxes share it.
        payload = await asyncio.to_thread(metrics.exposition)
        return Response(payload, media_type=METRICS_MEDIA_TYPE)

    return router
