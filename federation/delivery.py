"""Durable outgoing delivery: a bounded queue of signed POSTs that survives a restart of the host.

The queue lives in sqlite (stdlib, one file in the data directory, transactional): a crash between
"activity published" and "peer received it" must not lose the activity, and an in-memory queue would.
Retries back off exponentially with full jitter drawn from an injected random source; 404 and 410
mean the inbox is gone for good; a per-host circuit breaker stops hammering a host that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["DeliveryQueue", "Delivery", "Outcome", "backoff_delay", "classify_status", "CircuitBreaker"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, inbox TEXT NOT NULL, host TEXT NOT NULL, sender TEXT NOT NULL,
    body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due REAL NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due);
"""


@dataclass(frozen=True)
class Delivery:
    id: int
    inbox: str
    host: str
    sender: str  # local actor id whose key signs the POST
    body: bytes
    attempts: int


class Outcome:
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


def classify_status(status: int | None) -> str:
    """What an inbox's answer means for the queue (None: no answer at all, e.g. connection refused)."""
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (404, 410):
        return Outcome.PERMANENT  # the inbox is gone (Mastodon's rule too)
    if status is not None and 400 <= status < 500 and status not in (401, 408, 429):
        return Outcome.PERMANENT  # the peer refuses this activity; resending it will not change that
    return Outcome.RETRY


def backoff_delay(attempts: int, rng: random.Random, *, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""
    return rng.uniform(0.0, min(cap, base * (2 ** max(0, attempts - 1))))


class CircuitBreaker:
    """Per-host: after ``threshold`` consecutive failures the host is skipped for ``cooldown`` seconds."""

    def __init__(self, *, threshold: int = 5, cooldown: float = 300.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def is_open(self, host: str, now: float) -> bool:
        return self._open_until.get(host, 0.0) > now

    def record(self, host: str, ok: bool, now: float) -> None:
        if ok:
            self._failures.pop(host, None)
            self._open_until.pop(host, None)
            return
        count = self._failures.get(host, 0) + 1
        self._failures[host] = count
        if count >= self.threshold:
            self._open_until[host] = now + self.cooldown
            log.warning("delivery: circuit open for %s after %d consecutive failures", host, count)


Send = Callable[[Delivery], Awaitable[int | None]]


class DeliveryQueue:
    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        capacity: int = 100_000,
        max_attempts: int = 12,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.capacity = capacity
        self.max_attempts = max_attempts
        self.breaker = breaker or CircuitBreaker()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self.wakeup = asyncio.Event()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])

    def enqueue(self, inbox: str, sender: str, body: bytes) -> bool:
        """Queue one POST; False (and one clear log line) when the queue is full."""
        now = self.clock()
        with self._lock:
            size = int(self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
            if size >= self.capacity:
                log.error(
                    "delivery queue full (%d of %d): dropping delivery to %s from %s",
                    size,
                    self.capacity,
                    inbox,
                    sender,
                )
                return False
            self._db.execute(
                "INSERT INTO deliveries (inbox, host, sender, body, due, created) VALUES (?, ?, ?, ?, ?, ?)",
                (inbox, urlsplit(inbox).netloc, sender, body, now, now),
            )
        self.wakeup.set()
        return True

    def due(self, limit: int = 64) -> list[Delivery]:
        now = self.clock()
        with self._lock:
            rows = self._db.execute(
                "SELECT id, inbox, host, sender, body, attempts FROM deliveries"
                " WHERE due <= ? ORDER BY due LIMIT ?",
                (now, limit * 4),
            ).fetchall()
        ready = [Delivery(int(r[0]), r[1], r[2], r[3], bytes(r[4]), int(r[5])) for r in rows]
        return [d for d in ready if not self.breaker.is_open(d.host, now)][:limit]

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(due) FROM deliveries").fetchone()
        return None if row[0] is None else float(row[0])

    def settle(self, delivery: Delivery, status: int | None) -> str:
        """Apply one attempt's result: delete, or reschedule with backoff, or drop for good."""
        now = self.clock()
        outcome = classify_status(status)
        self.breaker.record(delivery.host, outcome is not Outcome.RETRY, now)
        attempts = delivery.attempts + 1
        with self._lock:
            if outcome is Outcome.RETRY and attempts < self.max_attempts:
                due = now + backoff_delay(attempts, self.rng)
                self._db.execute(
                    "UPDATE deliveries SET attempts = ?, due = ? WHERE id = ?", (attempts, due, delivery.id)
                )
            else:
                self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery.id,))
        if outcome is Outcome.PERMANENT:
            log.info("delivery to %s failed permanently with %s; dropped", delivery.inbox, status)
        elif outcome is Outcome.RETRY and attempts >= self.max_attempts:
            log.warning("delivery to %s gave up after %d attempts", delivery.inbox, attempts)
            return Outcome.PERMANENT
        return outcome

    async def run_once(self, send: Send) -> int:
        """Attempt every due delivery once, concurrently; returns how many were attempted."""
        batch = self.due()

        async def attempt(delivery: Delivery) -> None:
            try:
                status = await send(delivery)
            except Exception as error:  # a network failure is a retry, never a crash of the worker
                log.info("delivery to %s failed: %s", delivery.inbox, error)
                status = None
            self.settle(delivery, status)

        await asyncio.gather(*(attempt(delivery) for delivery in batch))
        return len(batch)

    async def run(self, send: Send, *, idle_poll: float = 1.0) -> None:
        """Worker loop: deliver what is due, sleep until the next due time or a new enqueue."""
        while True:
            attempted = await self.run_once(send)
            if attempted:
                continue
            self.wakeup.clear()
            next_due = self.next_due()
            timeout = idle_poll if next_due is None else max(0.01, min(idle_poll, next_due - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=timeout)
