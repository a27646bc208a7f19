"""Abuse limits kept in process memory: a token bucket per client for API calls, and failure counters for the
OAuth endpoints (per address, and per claimed client id from one address). Each worker process counts for itself."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

ThrottleKey = str | tuple[str, ...]

MAX_KEY_PART_CHARS = 128
MAX_THROTTLE_KEYS = 100_000


@dataclass
class TokenBuckets:
    """``rate`` requests a second per key, bursts up to twice that."""

    default_rate: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _rates: dict[str, int] = field(default_factory=dict)

    def take_known(self, key: str) -> float | None:
        """``take`` at the rate last given for ``key``; None (and nothing taken) when none was given yet."""
        rate = self._rates.get(key)
        return None if rate is None else self.take(key, rate)

    def remember_rate(self, key: str, rate: int | None) -> None:
        self._rates[key] = rate or self.default_rate

    def take(self, key: str, rate: int | None = None) -> float:
        """0 when the request may proceed, else the seconds to wait."""
        rate = rate or self.default_rate
        self._rates[key] = rate
        capacity = 2.0 * rate
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


def _bounded(key: ThrottleKey) -> ThrottleKey:
    if isinstance(key, str):
        return key[:MAX_KEY_PART_CHARS]
    return tuple(part[:MAX_KEY_PART_CHARS] for part in key)


@dataclass
class FailureThrottle:
    """At most ``limit`` failures per key inside a sliding ``window_s``; then the key waits.

    Memory stays bounded whatever callers send: a lookup never creates an entry, each key keeps at most ``limit``
    timestamps, keys whose failures left the window are dropped, key parts are truncated, and past ``max_keys``
    the key that failed longest ago is forgotten.
    """

    limit: int
    window_s: float
    max_keys: int = MAX_THROTTLE_KEYS
    # Ordered by last failure, oldest first.
    _failures: OrderedDict[ThrottleKey, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, key: ThrottleKey) -> int:
        key = _bounded(key)
        failures = self._failures.get(key)
        if failures is None:
            return 0
        now = time.monotonic()
        if failures[-1] <= now - self.window_s:
            del self._failures[key]
            return 0
        in_window = sum(1 for at in failures if at > now - self.window_s)
        if in_window < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window_s - now))

    def record(self, key: ThrottleKey) -> None:
        key = _bounded(key)
        now = time.monotonic()
        self._forget_expired(now)
        failures = self._failures.get(key)
        if failures is None:
            while len(self._failures) >= self.max_keys:
                self._failures.popitem(last=False)
            failures = self._failures[key] = deque(maxlen=self.limit)
        else:
            self._failures.move_to_end(key)
        failures.append(now)

    def __len__(self) -> int:
        return len(self._failures)

    def _forget_expired(self, now: float) -> None:
        horizon = now - self.window_s
        while self._failures:
            oldest_key, failures = next(iter(self._failures.items()))
            if failures[-1] > horizon:
                break
            del self._failures[oldest_key]
