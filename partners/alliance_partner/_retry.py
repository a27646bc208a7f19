"""When and how long to wait before trying a request again."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# Connection failures where the request surely never reached the service: safe to retry whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter, honouring ``Retry-After``.

    A request is retried on 429, on 500/502/503/504 and on connection errors, at most ``max_retries`` times.
    Only requests that are safe to repeat are retried after they may have reached the service: reads,
    ``PATCH``/``DELETE``, and creations, which carry an ``Idempotency-Key`` (the same key on every attempt,
    so the service answers a repeat with the first answer). Other ``POST``s (withdraw, rotate a secret, send
    a test webhook, retry a delivery) are retried only on 429 and when the connection was never made.

    The wait before retry ``n`` (from 1) is the service's ``Retry-After`` when it gives one, else a random
    duration up to ``min(backoff_max, backoff_base * 2 ** (n - 1))`` seconds. A ``Retry-After`` longer than
    ``retry_after_max`` is not waited for: the error is raised at once.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0

    def backoff(self, retry: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (retry - 1))
        return random.uniform(0, ceiling) if ceiling > 0 else 0.0

    def delay(self, retry: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``retry``, or None to give up."""
        if retry > self.max_retries:
            return None
        if response is not None:
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is not None:
                return after if after <= self.retry_after_max else None
        return self.backoff(retry)


NO_RETRIES = RetryPolicy(max_retries=0)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def retryable_status(response: httpx.Response, replayable: bool) -> bool:
    if response.status_code == 429:
        return True  # refused before any work was done
    return replayable and response.status_code in RETRYABLE_STATUSES


def retryable_error(error: httpx.TransportError, replayable: bool) -> bool:
    return replayable or isinstance(error, _NOT_SENT)
