"""Webhook rules: endpoints and their secrets, the outbox (``queue_notices``, ``announce``), the delivery log and
manual retries.

The outbox writes delivery rows in the caller's transaction, so a change and its announcement commit together;
``app.webhooks.delivery`` sends them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.core import clock
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key
from app.core.outbound_urls import UnsafeTarget, normalise_target
from app.core.pagination import PageParams, paginate_query
from app.core.problems import NotFound, Unprocessable
from app.core.tenancy import Tenant, owned_row, scoped
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret

EVENT_TYPES = (
    "referral.status_changed",
    "referral.expired",
    "statement.issued",
    "reconciliation.completed",
    "webhook.test",
)
SECRET_OVERLAP = timedelta(hours=24)


class InvalidWebhookTarget(Unprocessable):
    slug, title = "invalid-webhook-target", "Invalid webhook target"


def _box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "webhook-secrets")


def check_url(url: str, settings: Settings) -> str:
    """The URL in normal form, or ``InvalidWebhookTarget`` (see ``app.core.outbound_urls``; https and public
    addresses only outside development)."""
    try:
        return normalise_target(url, allow_private=settings.private_targets_allowed)
    except UnsafeTarget as exc:
        raise InvalidWebhookTarget(str(exc)) from exc


# --- endpoints --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    tenant: Tenant,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    enabled: bool,
) -> NewEndpoint:
    url = check_url(url, settings)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        partner_id=tenant.own_partner_id,
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
        values["url"] = check_url(values["url"], settings)
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
        .values(status=DeliveryStatus.failed, last_error="endpoint deleted", updated_at=clock.now())
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
    endpoint.previous_secret_expires_at = clock.now() + SECRET_OVERLAP
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


@dataclass(frozen=True)
class Notice:
    """One announcement to a partner: delivered to each of its enabled endpoints subscribed to ``event_type``."""

    partner_id: str
    event_type: str
    data: dict[str, Any]


def queue_notices_sql(notices: str) -> str:
    """The statement queueing, at ``:now``, one delivery per notice and subscribed endpoint, for the notices that
    the SELECT ``notices`` produces as rows of (partner id, event type, data as jsonb), in this order. Domains
    build their notices in SQL with it, to queue many in the statement that records their change. A notice is
    dated ``:now`` (a sandbox partner's test clock, possibly ahead of real time) but due for delivery at once:
    delivery is real-time infrastructure."""
    return f"""
    INSERT INTO webhook_deliveries
        (id, endpoint_id, partner_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT 'msg_' || replace(CAST(gen_random_uuid() AS text), '-', ''), e.id, e.partner_id, n.event_type,
           jsonb_build_object('type', n.event_type, 'timestamp', CAST(:now AS timestamptz), 'data', n.data),
           'pending', 0, least(CAST(:now AS timestamptz), statement_timestamp()), :now, :now
    FROM ({notices}) AS n(partner_id, event_type, data)
    JOIN webhook_endpoints e ON e.partner_id = n.partner_id AND e.enabled AND n.event_type = ANY(e.event_types)
"""


_QUEUE_GIVEN = queue_notices_sql(
    "SELECT partner_id, event_type, data "
    "FROM jsonb_to_recordset(CAST(:notices AS jsonb)) AS given(partner_id text, event_type text, data jsonb)"
)


async def queue_notices(session: AsyncSession, notices: Sequence[Notice], now: datetime | None = None) -> None:
    """Queue ``notices`` for the partners' subscribed endpoints, in the caller's transaction (one statement)."""
    if not notices:
        return
    given = [{"partner_id": n.partner_id, "event_type": n.event_type, "data": n.data} for n in notices]
    await session.execute(text(_QUEUE_GIVEN), {"notices": json.dumps(given, default=str), "now": now or clock.now()})


async def announce(session: AsyncSession, partner_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Queue ``event_type`` for every enabled endpoint of the partner subscribed to it (same transaction)."""
    await queue_notices(session, [Notice(partner_id, event_type, data)])


async def enqueue_test(session: AsyncSession, tenant: Tenant, endpoint_id: str) -> WebhookDelivery:
    endpoint = await get_endpoint(session, tenant, endpoint_id)
    now = clock.now()
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
    delivery.next_attempt_at = clock.now()
    delivery.lease_until = None
    session.add(delivery)
    await session.flush()
    return delivery
