"""API shapes of webhook endpoints and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.core.outbound_urls import TargetUrl
from app.core.patch import Nullable, PatchBody
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

EventTypeName = Literal["referral.status_changed", "referral.expired", "statement.issued", "reconciliation.completed"]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: TargetUrl
    event_types: list[EventTypeName] = Field(min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=200)
    enabled: StrictBool = True


class EndpointUpdate(PatchBody):
    url: TargetUrl | None = None
    event_types: list[EventTypeName] | None = Field(default=None, min_length=1, max_length=10)
    description: Annotated[str | None, Nullable] = Field(default=None, max_length=200)
    enabled: StrictBool | None = None


class EndpointOut(BaseModel):
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

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls(**{name: getattr(endpoint, name) for name in cls.model_fields})


class EndpointCreated(EndpointOut):
    secret: Annotated[str, Field(description="`whsec_…`: shown once. Verify each delivery's signature with it.")]


class SecretRotated(BaseModel):
    endpoint_id: str
    secret: str = Field(description="Shown once; the previous secret keeps signing until `previous_secret_expires_at`.")
    previous_secret_expires_at: datetime | None


class DeliveryOut(BaseModel):
    id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    endpoint_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(**{name: getattr(delivery, name) for name in cls.model_fields})


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls.model_validate(attempt)


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]
