"""Catalog tables: partners, their programs, the bundled products programs offer, and versioned fee schedules."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field


class PartnerKind(StrEnum):
    bank = "bank"
    insurer = "insurer"
    corporate = "corporate"


class PartnerStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    terminated = "terminated"


class RateLimitTier(StrEnum):
    standard = "standard"
    elevated = "elevated"
    bulk = "bulk"


# API calls per second per client, by the partner's tier (a client's own setting overrides it).
RATE_LIMIT_TIERS: dict[RateLimitTier, int] = {
    RateLimitTier.standard: 50,
    RateLimitTier.elevated: 200,
    RateLimitTier.bulk: 1000,
}


class Partner(SQLModel, table=True):
    __tablename__ = "partners"
    __table_args__ = (
        sa.CheckConstraint("vat_rate_bp BETWEEN 0 AND 10000", name="vat_rate_in_range"),
        sa.Index("ix_partners_created_at_id", "created_at", "id"),
    )

    id: str = id_field("ptn")
    kind: PartnerKind = Field(sa_type=enum_type(PartnerKind, "partner_kind"), nullable=False)
    legal_name: str = Field(max_length=200)
    display_name: str = Field(max_length=200)
    credit_code: str | None = Field(default=None, max_length=18, unique=True)
    contacts: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB, nullable=False)
    vat_rate_bp: int = Field(default=600, description="VAT in basis points: 600 = 6%.")
    vat_inclusive: bool = Field(default=False, description="The partner invoices amounts that include VAT.")
    payout_account_ref: str | None = Field(default=None, max_length=100)
    rate_limit_tier: RateLimitTier = Field(
        default=RateLimitTier.standard, sa_type=enum_type(RateLimitTier, "rate_limit_tier"), nullable=False
    )
    status: PartnerStatus = Field(
        default=PartnerStatus.active, sa_type=enum_type(PartnerStatus, "partner_status"), nullable=False, index=True
    )
    status_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ProgramChannel(StrEnum):
    vip_referral = "vip_referral"
    insurance_bundle = "insurance_bundle"
    employee_plan = "employee_plan"
    enterprise_services = "enterprise_services"


class ProgramStatus(StrEnum):
    active = "active"
    paused = "paused"
    closed = "closed"


class Program(SQLModel, table=True):
    __tablename__ = "programs"
    __table_args__ = (
        sa.CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="effective_range"),
        sa.CheckConstraint(
            "attribution_window_days > 0 AND qualification_period_days >= 0 AND hold_period_days >= 0 "
            "AND clawback_period_days >= 0",
            name="periods_non_negative",
        ),
        sa.Index("ix_programs_created_at_id", "created_at", "id"),
    )

    id: str = id_field("prg")
    partner_id: str = Field(foreign_key="partners.id", max_length=40, index=True)
    name: str = Field(max_length=200)
    channel: ProgramChannel = Field(sa_type=enum_type(ProgramChannel, "program_channel"), nullable=False)
    attribution_window_days: int = 90
    qualification_period_days: int = 90
    hold_period_days: int = 30
    clawback_period_days: int = 180
    effective_from: date
    effective_to: date | None = None
    status: ProgramStatus = Field(
        default=ProgramStatus.active, sa_type=enum_type(ProgramStatus, "program_status"), nullable=False
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class BundledProduct(SQLModel, table=True):
    __tablename__ = "bundled_products"
    __table_args__ = (sa.Index("ix_bundled_products_created_at_id", "created_at", "id"),)

    id: str = id_field("prd")
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    components: list[dict[str, Any]] = Field(sa_type=JSONB, nullable=False)
    allowed_partner_kinds: list[str] = Field(sa_type=ARRAY(sa.String(16)), nullable=False)
    active: bool = True
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ProgramProduct(SQLModel, table=True):
    """A bundled product a program offers."""

    __tablename__ = "program_products"

    program_id: str = Field(foreign_key="programs.id", primary_key=True, max_length=40)
    product_id: str = Field(foreign_key="bundled_products.id", primary_key=True, max_length=40, index=True)


class FeeScheduleStatus(StrEnum):
    draft = "draft"
    active = "active"


class FeeSchedule(SQLModel, table=True):
    """One version of a program's fee rules, in force from ``effective_from`` until the next active version.

    ``rules`` is validated by ``app.catalog.schemas.FeeRules``: amounts in integer fen, rates in basis points.
    """

    __tablename__ = "fee_schedules"
    __table_args__ = (
        sa.UniqueConstraint("program_id", "version", name="uq_fee_schedules_program_version"),
        sa.CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="effective_range"),
        sa.Index("ix_fee_schedules_created_at_id", "created_at", "id"),
    )

    id: str = id_field("fee")
    program_id: str = Field(foreign_key="programs.id", max_length=40, index=True)
    version: int
    status: FeeScheduleStatus = Field(
        default=FeeScheduleStatus.draft, sa_type=enum_type(FeeScheduleStatus, "fee_schedule_status"), nullable=False
    )
    effective_from: date
    effective_to: date | None = Field(default=None, description="Set when a later version is activated.")
    currency: str = Field(default="CNY", max_length=3)
    rules: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    first_accrual_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        description="Set by the fee engine; the version is then in use.",
    )
    activated_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
