"""Webhook tables: partners' endpoints, the delivery outbox (written in the transaction of the change it
announces) and every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index("ix_webhook_endpoints_created_at_id", "created_at", "id"),)

    id: str = id_field("whe")
    partner_id: str = Field(foreign_key="partners.id", max_length=40, index=True)
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] = Field(sa_type=ARRAY(sa.String(60)), nullable=False)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=300)
    # Signing secrets, sealed with the master key; the previous one keeps signing until it expires (rotation).
    sealed_secret: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    sealed_previous_secret: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    consecutive_failures: int = 0
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"  # retries exhausted (dead letter), or endpoint disabled


class WebhookDelivery(SQLModel, table=True):
    """One message to one endpoint; its ``id`` is the ``webhook-id`` header, the same on every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
        sa.Index("ix_webhook_deliveries_partner_created", "partner_id", "created_at", "id"),
    )

    id: str = id_field("msg")
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40, index=True)
    partner_id: str = Field(max_length=40)
    event_type: str = Field(max_length=60)
    payload: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    status: DeliveryStatus = Field(
        default=DeliveryStatus.pending, sa_type=enum_type(DeliveryStatus, "delivery_status"), nullable=False
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    lease_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: str = id_field("wha")
    delivery_id: str = Field(foreign_key="webhook_deliveries.id", max_length=40)
    attempted_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    status_code: int | None = None
    response_excerpt: str | None = Field(default=None, max_length=1000)
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int | None = None
