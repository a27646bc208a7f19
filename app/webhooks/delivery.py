"""Sending webhook deliveries: claim, sign, send, record.

Workers claim due deliveries with ``FOR UPDATE SKIP LOCKED`` and a lease: several workers never send the same
delivery at once, and a worker killed mid-send only delays it until the lease expires (same ``webhook-id``).

A worker keeps a continuous pool of sends in flight (``DeliveryPool``) rather than rounds that wait for their
slowest send: a slow or dead endpoint holds only its own slots. Each endpoint has at most
``webhook_per_endpoint_concurrency`` sends in flight (counted over every worker's leases), one while it is failing;
failing endpoints share at most half of a pool, and claims take healthy endpoints first, fresh deliveries before
retries. Every send ends within ``webhook_timeout_s`` and reads only the start of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.core import clock
from app.core.config import Settings
from app.core.models import new_id
from app.core.outbound_urls import UnsafeTarget, normalise_target
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookEndpoint
from app.webhooks.service import secrets_in_force
from app.webhooks.signing import signed_headers

log = structlog.get_logger(__name__)

# About three days of retries after the first attempt (Standard Webhooks' schedule, stretched).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
DISABLE_AFTER_FAILURES = 50
EXCERPT_CHARS = 1000
_ATTEMPTS = WebhookAttempt.__table__  # type: ignore[attr-defined]


@dataclass
class Claimed:
    delivery_id: str
    endpoint_id: str
    url: str
    payload: dict[str, Any]
    attempts: int
    secrets: list[str]
    failing: bool = False  # its endpoint's last attempt failed


@dataclass
class AttemptResult:
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class ClaimLimits:
    """How much one claim may take: ``total`` deliveries, of which ``failing`` to failing endpoints; per endpoint
    ``per_endpoint`` in flight (``per_failing_endpoint`` while it fails) counting every worker's leases, or no
    per-endpoint limit when ``None``; never the deliveries in ``sending`` (this worker's own sends in flight)."""

    total: int
    failing: int | None = None
    per_endpoint: int | None = None
    per_failing_endpoint: int | None = None
    sending: tuple[str, ...] = ()


_CLAIM = """
WITH busy AS (
    SELECT endpoint_id, count(*) AS sending FROM webhook_deliveries
    WHERE status = 'pending' AND lease_until >= :now
    GROUP BY endpoint_id
), candidates AS (
    SELECT c.id, e.consecutive_failures > 0 AS failing, c.attempts = 0 AS fresh, c.next_attempt_at
    FROM webhook_endpoints e
    LEFT JOIN busy b ON b.endpoint_id = e.id
    CROSS JOIN LATERAL (
        SELECT d.id, d.attempts, d.next_attempt_at FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= :now
          AND (d.lease_until IS NULL OR d.lease_until < :now) AND d.id <> ALL(CAST(:sending AS text[]))
        ORDER BY d.attempts = 0 DESC, d.next_attempt_at, d.id
        LIMIT least(:total, greatest(coalesce(
            CASE WHEN e.consecutive_failures > 0 THEN CAST(:per_failing AS integer)
                 ELSE CAST(:per_endpoint AS integer) END - coalesce(b.sending, 0),
            :total), 0))
        FOR UPDATE OF d SKIP LOCKED
    ) c
    WHERE e.enabled
), chosen AS (
    SELECT id FROM (
        SELECT id, failing, fresh, next_attempt_at,
               row_number() OVER (PARTITION BY failing ORDER BY fresh DESC, next_attempt_at, id) AS place
        FROM candidates
    ) ranked
    WHERE NOT failing OR place <= :failing
    ORDER BY failing, fresh DESC, next_attempt_at, id
    LIMIT :total
)
UPDATE webhook_deliveries d SET lease_until = :lease_until, attempts = d.attempts + 1, updated_at = :now
FROM webhook_endpoints e
WHERE d.id IN (SELECT id FROM chosen) AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, e.url, d.payload, d.attempts, e.consecutive_failures > 0 AS failing
"""


async def claim_due(
    session: AsyncSession, settings: Settings, limit: int | ClaimLimits, lease: timedelta
) -> list[Claimed]:
    """Lease due deliveries of enabled endpoints, healthy endpoints first and fresh deliveries before retries,
    within ``limit`` (a number: no per-endpoint limit); commit before sending."""
    limits = limit if isinstance(limit, ClaimLimits) else ClaimLimits(limit)
    now = clock.now()
    params = {
        "now": now,
        "lease_until": now + lease,
        "total": limits.total,
        "failing": limits.total if limits.failing is None else limits.failing,
        "per_endpoint": limits.per_endpoint,
        "per_failing": limits.per_failing_endpoint,
        "sending": list(limits.sending),
    }
    rows = (await session.execute(text(_CLAIM), params)).all()
    if not rows:
        return []
    endpoints = {
        endpoint.id: endpoint
        for endpoint in await session.scalars(
            select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_({row.endpoint_id for row in rows}))
        )
    }
    return [
        Claimed(
            row.id,
            row.endpoint_id,
            row.url,
            row.payload,
            row.attempts,
            secrets_in_force(endpoints[row.endpoint_id], settings, now),
            row.failing,
        )
        for row in rows
    ]


async def _excerpt(response: httpx.Response) -> str:
    """The start of the answer, without reading more of it than needed."""
    head = bytearray()
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= 4 * EXCERPT_CHARS:
            break
    return bytes(head).decode(response.encoding or "utf-8", errors="replace")[:EXCERPT_CHARS]


async def send(client: httpx.AsyncClient, settings: Settings, claimed: Claimed) -> AttemptResult:
    """One attempt. A target refused by the outbound rules (checked again here and at the connection, for URLs
    stored under older rules and names that now resolve elsewhere) is an attempt with an error, never sent."""
    body = json.dumps(claimed.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = signed_headers(claimed.secrets, claimed.delivery_id, int(time.time()), body)
    started = time.perf_counter()
    try:
        url = normalise_target(claimed.url, allow_private=settings.private_targets_allowed)
        async with (
            asyncio.timeout(settings.webhook_timeout_s),
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            excerpt = await _excerpt(response)
    except TimeoutError:
        error = f"TimeoutError: no answer within {settings.webhook_timeout_s:g} s"
        return AttemptResult(None, None, error, int((time.perf_counter() - started) * 1000))
    except (httpx.HTTPError, OSError, UnsafeTarget) as exc:
        return AttemptResult(
            None, None, f"{type(exc).__name__}: {exc}"[:500], int((time.perf_counter() - started) * 1000)
        )
    return AttemptResult(response.status_code, excerpt, None, int((time.perf_counter() - started) * 1000))


async def record_attempts(session: AsyncSession, outcomes: list[tuple[Claimed, AttemptResult]]) -> None:
    """One round's outcomes, set-based: each delivery succeeded, retried later on the schedule, or failed for good
    once the schedule is spent; endpoints count consecutive failures and are disabled past the threshold."""
    now = clock.now()
    await session.execute(
        insert(_ATTEMPTS),
        [
            {
                "id": new_id("wha"),
                "delivery_id": claimed.delivery_id,
                "attempted_at": now,
                "status_code": result.status_code,
                "response_excerpt": result.excerpt,
                "error": result.error,
                "duration_ms": result.duration_ms,
            }
            for claimed, result in outcomes
        ],
    )
    rows = []
    for claimed, result in outcomes:
        if result.ok:
            status, next_at, delivered = DeliveryStatus.succeeded, None, now
        elif claimed.attempts > len(RETRY_DELAYS):
            status, next_at, delivered = DeliveryStatus.failed, None, None
        else:
            status, next_at, delivered = DeliveryStatus.pending, now + RETRY_DELAYS[claimed.attempts - 1], None
        rows.append((claimed.delivery_id, status.value, next_at, delivered, result.status_code, result.error))
    await session.execute(
        text(
            """
            UPDATE webhook_deliveries d
            SET status = o.status, next_attempt_at = coalesce(o.next_at, d.next_attempt_at), delivered_at = o.delivered,
                last_status_code = o.code, last_error = o.error, lease_until = NULL, updated_at = :now
            FROM unnest(CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:next_ats AS timestamptz[]),
                        CAST(:delivered AS timestamptz[]), CAST(:codes AS integer[]), CAST(:errors AS text[]))
                 AS o(id, status, next_at, delivered, code, error)
            WHERE d.id = o.id
            """
        ),
        {
            "ids": [row[0] for row in rows],
            "statuses": [row[1] for row in rows],
            "next_ats": [row[2] for row in rows],
            "delivered": [row[3] for row in rows],
            "codes": [row[4] for row in rows],
            "errors": [row[5] for row in rows],
            "now": now,
        },
    )
    await _count_failures(session, outcomes)


async def _count_failures(session: AsyncSession, outcomes: list[tuple[Claimed, AttemptResult]]) -> None:
    endpoint_ids = sorted({claimed.endpoint_id for claimed, _ in outcomes})
    endpoints = {
        endpoint.id: endpoint
        for endpoint in await session.scalars(
            select(WebhookEndpoint)
            .where(col(WebhookEndpoint.id).in_(endpoint_ids))
            .order_by(col(WebhookEndpoint.id))
            .with_for_update()
        )
    }
    for claimed, result in outcomes:
        endpoint = endpoints[claimed.endpoint_id]
        endpoint.consecutive_failures = 0 if result.ok else endpoint.consecutive_failures + 1
    for endpoint in endpoints.values():
        if endpoint.enabled and endpoint.consecutive_failures >= DISABLE_AFTER_FAILURES:
            endpoint.enabled = False
            endpoint.disabled_reason = f"disabled after {endpoint.consecutive_failures} consecutive failed attempts"
            await audit.record(
                session,
                Actor.system("webhooks"),
                "webhook_endpoint.disabled",
                object_type="webhook_endpoint",
                object_id=endpoint.id,
                reason=endpoint.disabled_reason,
            )
        session.add(endpoint)
    await session.flush()


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    limit: int = 50,
    lease: timedelta = timedelta(seconds=60),
) -> int:
    """One round: lease due deliveries, send them concurrently, record each outcome. Returns how many were sent.

    For tests, benchmarks and one-off passes; the worker keeps a ``DeliveryPool`` instead."""
    async with sessionmaker() as session, session.begin():
        claimed = await claim_due(session, settings, limit, lease)
    if not claimed:
        return 0
    results = await asyncio.gather(*(send(client, settings, item) for item in claimed))
    await _record(sessionmaker, list(zip(claimed, results, strict=True)))
    return len(claimed)


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], outcomes: list[tuple[Claimed, AttemptResult]]
) -> None:
    async with sessionmaker() as session, session.begin():
        await record_attempts(session, outcomes)
    for item, result in outcomes:
        log.info("webhook_attempt", delivery_id=item.delivery_id, status_code=result.status_code, ok=result.ok)


def _outcome(task: asyncio.Task[AttemptResult]) -> AttemptResult:
    """The result of a send; one that broke unexpectedly is a failed attempt rather than a lost one."""
    failure = task.exception()
    if failure is None:
        return task.result()
    log.error("webhook_send_broke", error_class=type(failure).__name__)
    return AttemptResult(None, None, type(failure).__name__, 0)


class DeliveryPool:
    """Up to ``webhook_concurrency`` sends in flight, claimed as slots free up (see the module's docstring)."""

    IN_FLIGHT_POLL_S = 0.2  # how soon a delivery that fell due is claimed while sends are in flight
    # While nothing is due, the wait between claims doubles up to this: an idle worker that polls for batches
    # every 0.2 s would otherwise run the claim five times a second beside the batch it is processing.
    IDLE_MAX_S = 1.0

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        lease: timedelta | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.client = client
        self.capacity = settings.webhook_concurrency
        self.lease = lease or timedelta(seconds=settings.webhook_lease_s)
        self._in_flight: dict[asyncio.Task[AttemptResult], Claimed] = {}

    def _limits(self) -> ClaimLimits:
        failing = sum(claimed.failing for claimed in self._in_flight.values())
        return ClaimLimits(
            total=self.capacity - len(self._in_flight),
            failing=max(self.capacity // 2 - failing, 0),
            per_endpoint=self.settings.webhook_per_endpoint_concurrency,
            per_failing_endpoint=1,
            sending=tuple(claimed.delivery_id for claimed in self._in_flight.values()),
        )

    async def _claim(self) -> int:
        limits = self._limits()
        if limits.total <= 0:
            return 0
        async with self.sessionmaker() as session, session.begin():
            claimed = await claim_due(session, self.settings, limits, self.lease)
        for item in claimed:
            self._in_flight[asyncio.create_task(send(self.client, self.settings, item))] = item
        return len(claimed)

    async def _settle(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for sends to end; record those that ended (in one transaction)."""
        done, _ = await asyncio.wait(self._in_flight, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return 0
        outcomes = [(self._in_flight.pop(task), _outcome(task)) for task in done]
        await _record(self.sessionmaker, outcomes)
        return len(outcomes)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 1.0, until_idle: bool = False) -> int:
        """Deliver until ``stop`` (then finish the sends in flight), or, with ``until_idle``, until nothing is due
        nor in flight. Returns how many attempts were made."""
        attempts, loop, claim_after, idle = 0, asyncio.get_running_loop(), 0.0, idle_s
        while True:
            if not stop.is_set() and loop.time() >= claim_after:
                try:
                    await self._claim()
                except Exception as exc:  # the database is away, say: try again after ``idle_s``
                    log.exception("webhook_claim_failed", error_class=type(exc).__name__)
                    claim_after = loop.time() + idle_s
            if self._in_flight:
                idle = idle_s
                try:
                    attempts += await self._settle(self.IN_FLIGHT_POLL_S)
                except Exception as exc:  # those sends are made again once their leases expire
                    log.exception("webhook_record_failed", error_class=type(exc).__name__)
                continue
            if stop.is_set() or until_idle:
                return attempts
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle)
            idle = min(idle * 2, max(idle_s, self.IDLE_MAX_S))
