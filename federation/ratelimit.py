"""Per-remote-host token buckets, on an injected clock.

Keyed by the signer's origin (from the ``keyId``) so that one noisy or hostile server cannot starve
the others; checked before any key fetch or signature verification so that a flood costs us little.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, *, rate: float, burst: float, clock: Callable[[], float], max_hosts: int = 10_000
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_hosts = max_hosts
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, host: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``host``'s bucket; False when it is empty."""
        now = self.clock()
        bucket = self._buckets.get(host)
        if bucket is None:
            bucket = self._buckets[host] = _Bucket(self.burst, now)
            if len(self._buckets) > self.max_hosts:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(host)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens < cost:
            return False
        bucket.tokens -= cost
        return True
