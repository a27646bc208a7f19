"""Abuse limits kept in process memory: a token bucket per client for API calls, and a failure counter per
client id and per address for the token endpoint. Each worker process counts for itself."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """``rate`` requests a second per key, bursts up to twice that."""

    default_rate: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, rate: int | None = None) -> float:
        """0 when the request may proceed, else the seconds to wait."""
        rate = rate or self.default_rate
        capacity = 2.0 * rate
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


@dataclass
class FailureThrottle:
    """At most ``limit`` failures per key inside a sliding ``window_s``; then the key waits."""

    limit: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str) -> int:
        failures = self._recent(key)
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window_s - time.monotonic()))

    def record(self, key: str) -> None:
        self._recent(key).append(time.monotonic())

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        horizon = time.monotonic() - self.window_s
        while failures and failures[0] < horizon:
            failures.popleft()
        return failures
