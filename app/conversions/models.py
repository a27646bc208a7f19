"""Conversion tables: the firm's client accounts (linked to a referral, or organic) and the events the back
office reports about them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field


class EventType(StrEnum):
    account_opened = "account_opened"
    account_funded = "account_funded"
    assets_snapshot = "assets_snapshot"
    bundle_purchased = "bundle_purchased"
    bundle_cancelled = "bundle_cancelled"
    revenue_recorded = "revenue_recorded"
    account_closed = "account_closed"


MONEY_EVENTS = (
    EventType.account_funded,
    EventType.assets_snapshot,
    EventType.bundle_purchased,
    EventType.bundle_cancelled,
    EventType.revenue_recorded,
)
BUNDLE_EVENTS = (EventType.bundle_purchased, EventType.bundle_cancelled)

# Events of one client that share an ``occurred_at`` (a daily file with dates only) are applied in funnel order,
# whatever their ids or their order in the call or the file (DESIGN.md, "Time"): the account opens, is funded and
# valued before a bundle is bought or cancelled, revenue follows, and closing comes last. Across calls, what was
# applied stays applied: an event sent after others of the same time were applied follows them (send a client's
# events of one time in one call, or one file).
SAME_TIME_ORDER = {
    kind: rank
    for rank, kind in enumerate(
        (
            EventType.account_opened,
            EventType.account_funded,
            EventType.assets_snapshot,
            EventType.bundle_purchased,
            EventType.bundle_cancelled,
            EventType.revenue_recorded,
            EventType.account_closed,
        )
    )
}


class EventStatus(StrEnum):
    applied = "applied"
    deferred = "deferred"  # its account is not open yet: applied when account_opened arrives


class Tier(StrEnum):
    retail = "retail"
    hnw = "hnw"
    institutional = "institutional"


class AccountStatus(StrEnum):
    unopened = "unopened"  # events arrived before account_opened
    open = "open"
    closed = "closed"


class ClientAccount(SQLModel, table=True):
    """A client of the firm as the back office knows it; ``referral_id`` is empty for organic clients."""

    __tablename__ = "client_accounts"

    client_ref: str = Field(primary_key=True, max_length=80)
    status: AccountStatus = Field(
        default=AccountStatus.unopened, sa_type=enum_type(AccountStatus, "account_status"), nullable=False
    )
    identity_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary, index=True)
    enterprise: bool = False
    referral_id: str | None = Field(default=None, foreign_key="referrals.id", max_length=40, index=True)
    partner_id: str | None = Field(default=None, max_length=40, index=True)
    opened_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    funded_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    assets_fen: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    tier: Tier | None = Field(default=None, sa_type=enum_type(Tier, "client_tier"))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ConversionEvent(SQLModel, table=True):
    """One back-office event, unique by its source id; ``effects`` records what applying it changed."""

    __tablename__ = "conversion_events"
    __table_args__ = (
        sa.Index("ix_conversion_events_client_occurred", "client_ref", "occurred_at"),
        sa.Index("ix_conversion_events_created_at_id", "created_at", "id"),
        sa.Index("ix_conversion_events_deferred", "client_ref", postgresql_where=sa.text("status = 'deferred'")),
        sa.CheckConstraint("amount_fen IS NULL OR currency IS NOT NULL", name="amount_has_currency"),
    )

    id: str = id_field("cev")
    source_event_id: str = Field(max_length=100, unique=True)
    type: EventType = Field(sa_type=enum_type(EventType, "conversion_event_type"), nullable=False)
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    client_ref: str = Field(max_length=80)
    amount_fen: int | None = Field(default=None, sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, max_length=3)
    product_code: str | None = Field(default=None, max_length=40)
    identity_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    enterprise: bool = False
    status: EventStatus = Field(sa_type=enum_type(EventStatus, "conversion_event_status"), nullable=False)
    referral_id: str | None = Field(default=None, max_length=40, index=True)
    partner_id: str | None = Field(default=None, max_length=40)
    organic: bool | None = Field(default=None, description="Applied to a client no referral brought in.")
    effects: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    applied_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = created_at_field()
