"""Webhook endpoints, their deliveries, and a verified event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alliance_partner._models.common import DeliveryStatus


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class WebhookEndpointCreated(WebhookEndpoint):
    #: ``whsec_…``: shown once, at creation. Keep it secret; verify each delivery with it.
    secret: str


@dataclass(frozen=True)
class SecretRotated:
    endpoint_id: str
    #: The new secret, shown once. The previous one keeps signing (alongside) until ``previous_secret_expires_at``.
    secret: str
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True)
class WebhookDelivery:
    """One message to one endpoint; ``id`` is its ``webhook-id`` header, the same on every attempt."""

    id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class DeliveryAttempt:
    attempted_at: datetime
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int | None


@dataclass(frozen=True)
class WebhookDeliveryDetail(WebhookDelivery):
    payload: dict[str, Any]
    attempt_log: list[DeliveryAttempt]


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: ``id`` is the ``webhook-id`` (deduplicate on it: a retry repeats it), ``type`` e.g.
    ``referral.status_changed``, ``data`` the event's fields (for referrals: ``referral_id``, ``external_ref``,
    ``program_id``, ``from_status``, ``to_status``, ``cause``, ``occurred_at``)."""

    id: str
    type: str
    timestamp: datetime | None
    data: dict[str, Any]
    signed_at: datetime
