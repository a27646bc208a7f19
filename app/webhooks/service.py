"""Webhook rules: endpoints and their secrets, the outbox (``announce``), and delivery with retries.

``announce`` writes delivery rows in the caller's transaction, so a change and its announcement commit together.
Workers claim due deliveries with ``FOR UPDATE SKIP LOCKED`` and a lease: several workers never send the same
delivery at once, and a worker killed mid-send only delays it until the lease expires (same ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key
from app.core.models import new_id, utcnow
from app.core.pagination import PageParams, paginate_query
from app.core.problems import NotFound, Unprocessable
from app.core.tenancy import Tenant, owned_row, scoped
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret, signed_headers

log = structlog.get_logger(__name__)

EVENT_TYPES = (
    "referral.status_changed",
    "referral.expired",
    "statement.issued",
    "reconciliation.completed",
    "webhook.test",
)
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
_ATTEMPTS = WebhookAttempt.__table__  # type: ignore[attr-defined]
SECRET_OVERLAP = timedelta(hours=24)


class InvalidWebhookTarget(Unprocessable):
    slug, title = "invalid-webhook-target", "Invalid webhook target"


def _box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "webhook-secrets")


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_url(url: str, settings: Settings) -> None:
    """HTTPS only in production, and never a private or loopback address there (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidWebhookTarget("The URL must be http(s) with a host.")
    if settings.webhook_private_targets_allowed:
        return
    if parts.scheme != "https":
        raise InvalidWebhookTarget("Webhook URLs must use https.")
    try:
        literal = _private(parts.hostname)
    except ValueError:
        literal = parts.hostname in ("localhost",) or parts.hostname.endswith(".localhost")
    if literal:
        raise InvalidWebhookTarget("Webhook URLs must not point at private or loopback addresses.")


async def check_resolved_target(url: str, settings: Settings) -> None:
    """At delivery time: the name must not resolve to a private address (DNS can change after registration)."""
    if settings.webhook_private_targets_allowed:
        return
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or 443
    infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    if any(_private(str(info[4][0])) for info in infos):
        raise InvalidWebhookTarget("The webhook host resolves to a private or loopback address.")


# --- endpoints --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    partner_id: str,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    enabled: bool,
) -> NewEndpoint:
    check_url(url, settings)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        partner_id=partner_id,
        url=url,
        event_types=sorted(set(event_types)),
        description=description,
        enabled=enabled,
        sealed_secret=_box(settings).seal(secret.encode()),
    )
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session, actor, "webhook_endpoint.created", object_type="webhook_endpoint", object_id=endpoint.id
    )
    return NewEndpoint(endpoint, secret)


async def get_endpoint(session: AsyncSession, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    endpoint = (await session.scalars(owned_row(WebhookEndpoint, endpoint_id, tenant))).one_or_none()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


async def list_endpoints(session: AsyncSession, tenant: Tenant, params: PageParams) -> list[WebhookEndpoint]:
    statement = scoped(select(WebhookEndpoint), tenant, col(WebhookEndpoint.partner_id))
    statement = paginate_query(statement, params, col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
    return list((await session.scalars(statement)).all())


async def update_endpoint(
    session: AsyncSession, settings: Settings, tenant: Tenant, actor: Actor, endpoint_id: str, values: dict[str, Any]
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, tenant, endpoint_id)
    if "url" in values:
        check_url(values["url"], settings)
    if "event_types" in values:
        values["event_types"] = sorted(set(values["event_types"]))
    if values.get("enabled"):
        values.update(disabled_reason=None, consecutive_failures=0)
    before = {name: getattr(endpoint, name) for name in values}
    for name, value in values.items():
        setattr(endpoint, name, value)
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webhook_endpoint.updated",
        object_type="webhook_endpoint",
        object_id=endpoint.id,
        changes=audit.changes(before, values),
    )
    return endpoint


async def delete_endpoint(session: AsyncSession, tenant: Tenant, actor: Actor, endpoint_id: str) -> None:
    """Deleting keeps the delivery log: the endpoint is disabled and its pending deliveries fail."""
    endpoint = await get_endpoint(session, tenant, endpoint_id)
    await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.endpoint_id) == endpoint.id, col(WebhookDelivery.status) == DeliveryStatus.pending)
        .values(status=DeliveryStatus.failed, last_error="endpoint deleted", updated_at=utcnow())
    )
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    endpoint.event_types = []
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session, actor, "webhook_endpoint.deleted", object_type="webhook_endpoint", object_id=endpoint.id
    )


async def rotate_secret(
    session: AsyncSession, settings: Settings, tenant: Tenant, actor: Actor, endpoint_id: str
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret; the old one keeps signing alongside for ``SECRET_OVERLAP``."""
    endpoint = await get_endpoint(session, tenant, endpoint_id)
    secret = new_secret()
    endpoint.sealed_previous_secret = endpoint.sealed_secret
    endpoint.previous_secret_expires_at = utcnow() + SECRET_OVERLAP
    endpoint.sealed_secret = _box(settings).seal(secret.encode())
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session, actor, "webhook_endpoint.secret_rotated", object_type="webhook_endpoint", object_id=endpoint.id
    )
    return endpoint, secret


def secrets_in_force(endpoint: WebhookEndpoint, settings: Settings, now: datetime) -> list[str]:
    box = _box(settings)
    secrets = [box.open(endpoint.sealed_secret).decode()]
    if (
        endpoint.sealed_previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        secrets.append(box.open(endpoint.sealed_previous_secret).decode())
    return secrets


# --- the outbox ---------------------------------------------------------------------------------------------------


def envelope(event_type: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"type": event_type, "timestamp": now.isoformat(), "data": data}


_QUEUE = """
    INSERT INTO webhook_deliveries
        (id, endpoint_id, partner_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT 'msg_' || replace(CAST(gen_random_uuid() AS text), '-', ''), e.id, e.partner_id, n.event_type,
           jsonb_build_object('type', n.event_type, 'timestamp', CAST(:now AS timestamptz), 'data', {data}),
           'pending', 0, :now, :now, :now
    FROM {notices}
    JOIN webhook_endpoints e ON e.partner_id = n.partner_id AND e.enabled AND n.event_type = ANY(e.event_types)
"""
_ANNOUNCE = _QUEUE.format(
    data="n.data",
    notices="jsonb_to_recordset(CAST(:notices AS jsonb)) AS n(partner_id text, event_type text, data jsonb)",
)


async def announce(session: AsyncSession, partner_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Queue ``event_type`` for every enabled endpoint of the partner subscribed to it (same transaction)."""
    notices = [{"partner_id": partner_id, "event_type": event_type, "data": data}]
    await session.execute(text(_ANNOUNCE), {"notices": json.dumps(notices, default=str), "now": utcnow()})


def referral_transitions_queue(transitions: str) -> str:
    """The statement queueing the notices of referrals' status changes, read from the relation ``transitions``
    (``referral_id``, ``partner_id``, ``from_status``, ``to_status``, ``cause``: timeline rows) at ``:now``.

    A change is ``referral.status_changed``, and also ``referral.expired`` when it expires the referral; each notice
    carries the referral's own reference and program."""
    notices = f"""(
        SELECT t.referral_id, t.partner_id, t.from_status, t.to_status, t.cause, types.event_type
        FROM {transitions} AS t
        CROSS JOIN LATERAL unnest(
            CASE WHEN CAST(t.to_status AS text) = 'expired' THEN ARRAY['referral.status_changed', 'referral.expired']
                 ELSE ARRAY['referral.status_changed'] END
        ) AS types(event_type)
        WHERE CAST(t.from_status AS text) <> CAST(t.to_status AS text)
    ) AS n JOIN referrals r ON r.id = n.referral_id"""
    data = (
        "jsonb_build_object('referral_id', n.referral_id, 'from_status', n.from_status, 'to_status', n.to_status, "
        "'cause', n.cause, 'occurred_at', CAST(:now AS timestamptz), 'external_ref', r.external_ref, "
        "'program_id', r.program_id)"
    )
    return _QUEUE.format(data=data, notices=notices)


async def enqueue_test(session: AsyncSession, tenant: Tenant, endpoint_id: str) -> WebhookDelivery:
    endpoint = await get_endpoint(session, tenant, endpoint_id)
    now = utcnow()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        partner_id=endpoint.partner_id,
        event_type="webhook.test",
        payload=envelope("webhook.test", {"endpoint_id": endpoint.id}, now),
        next_attempt_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


# --- reading and retrying -----------------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    tenant: Tenant,
    params: PageParams,
    *,
    endpoint_id: str | None = None,
    status: DeliveryStatus | None = None,
) -> list[WebhookDelivery]:
    statement = scoped(select(WebhookDelivery), tenant, col(WebhookDelivery.partner_id))
    if endpoint_id:
        statement = statement.where(col(WebhookDelivery.endpoint_id) == endpoint_id)
    if status:
        statement = statement.where(col(WebhookDelivery.status) == status)
    statement = paginate_query(statement, params, col(WebhookDelivery.created_at), col(WebhookDelivery.id))
    return list((await session.scalars(statement)).all())


async def get_delivery(
    session: AsyncSession, tenant: Tenant, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    delivery = (await session.scalars(owned_row(WebhookDelivery, delivery_id, tenant))).one_or_none()
    if delivery is None:
        raise NotFound("No such delivery.")
    attempts = await session.scalars(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id) == delivery_id)
        .order_by(col(WebhookAttempt.attempted_at))
    )
    return delivery, list(attempts.all())


async def retry_delivery(session: AsyncSession, tenant: Tenant, delivery_id: str) -> WebhookDelivery:
    """Send again as soon as a worker is free (same ``webhook-id``); a delivered one is sent once more too."""
    delivery, _ = await get_delivery(session, tenant, delivery_id)
    delivery.status = DeliveryStatus.pending
    delivery.next_attempt_at = utcnow()
    delivery.lease_until = None
    session.add(delivery)
    await session.flush()
    return delivery


# --- delivery -------------------------------------------------------------------------------------------------------


@dataclass
class Claimed:
    delivery_id: str
    endpoint_id: str
    url: str
    payload: dict[str, Any]
    attempts: int
    secrets: list[str]


@dataclass
class AttemptResult:
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def claim_due(session: AsyncSession, settings: Settings, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of enabled endpoints; commit before sending."""
    now = utcnow()
    rows = (
        await session.execute(
            text(
                """
                UPDATE webhook_deliveries d SET lease_until = :lease_until, attempts = d.attempts + 1, updated_at = :now
                FROM webhook_endpoints e
                WHERE d.id IN (
                    SELECT d2.id FROM webhook_deliveries d2 JOIN webhook_endpoints e2 ON e2.id = d2.endpoint_id
                    WHERE d2.status = 'pending' AND d2.next_attempt_at <= :now AND e2.enabled
                      AND (d2.lease_until IS NULL OR d2.lease_until < :now)
                    ORDER BY d2.next_attempt_at
                    LIMIT :limit
                    FOR UPDATE OF d2 SKIP LOCKED
                ) AND e.id = d.endpoint_id
                RETURNING d.id, d.endpoint_id, e.url, d.payload, d.attempts
                """
            ),
            {"now": now, "lease_until": now + lease, "limit": limit},
        )
    ).all()
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
        )
        for row in rows
    ]


async def send(client: httpx.AsyncClient, settings: Settings, claimed: Claimed) -> AttemptResult:
    body = json.dumps(claimed.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = signed_headers(claimed.secrets, claimed.delivery_id, int(time.time()), body)
    started = time.perf_counter()
    try:
        await check_resolved_target(claimed.url, settings)
        response = await client.post(claimed.url, content=body, headers=headers)
    except (httpx.HTTPError, OSError, InvalidWebhookTarget) as exc:
        return AttemptResult(
            None, None, f"{type(exc).__name__}: {exc}"[:500], int((time.perf_counter() - started) * 1000)
        )
    return AttemptResult(response.status_code, response.text[:1000], None, int((time.perf_counter() - started) * 1000))


async def record_attempts(session: AsyncSession, outcomes: list[tuple[Claimed, AttemptResult]]) -> None:
    """One round's outcomes, set-based: each delivery succeeded, retried later on the schedule, or failed for good
    once the schedule is spent; endpoints count consecutive failures and are disabled past the threshold."""
    now = utcnow()
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
    """One round: lease due deliveries, send them concurrently, record each outcome. Returns how many were sent."""
    async with sessionmaker() as session, session.begin():
        claimed = await claim_due(session, settings, limit, lease)
    if not claimed:
        return 0
    results = await asyncio.gather(*(send(client, settings, item) for item in claimed))
    async with sessionmaker() as session, session.begin():
        await record_attempts(session, list(zip(claimed, results, strict=True)))
    for item, result in zip(claimed, results, strict=True):
        log.info("webhook_attempt", delivery_id=item.delivery_id, status_code=result.status_code, ok=result.ok)
    return len(claimed)
