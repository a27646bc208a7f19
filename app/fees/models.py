"""Fee tables: the append-only accrual ledger and the monthly statements built from it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field


class FeeRule(StrEnum):
    funded_bounty = "funded_bounty"
    tier_top_up = "tier_top_up"
    bundle_fee = "bundle_fee"
    revenue_share = "revenue_share"
    cap = "cap"  # the part of a line a cap cut off (negative)
    clawback = "clawback"  # a later negative line reversing an earlier one
    adjustment = "adjustment"  # finance's correction, carried into the next period
    attribution_moved = "attribution_moved"  # the opposite of a line whose referral lost its attribution
    risk_confirmed = "risk_confirmed"  # the opposite of a line of a referral a risk case confirmed as abuse


class AccrualStatus(StrEnum):
    pending = "pending"  # inside its hold period
    payable = "payable"
    statemented = "statemented"
    paid = "paid"
    reversed = "reversed"  # cancelled during its hold period by a later negative line (which is reversed too)


class FeeAccrual(SQLModel, table=True):
    """One ledger line. Never edited but for its status; a correction is another line.

    ``source_key`` makes accrual exactly-once: one line per (event, rule) whatever is replayed.
    """

    __tablename__ = "fee_accruals"
    __table_args__ = (
        # Partial where most lines would be dead weight to the queries (docs/indexes.md, "fee_accruals").
        sa.Index(
            "ix_fee_accruals_partner_due",
            "partner_id",
            "hold_until",
            postgresql_where=sa.text("status = 'payable' AND statement_id IS NULL"),
        ),
        sa.Index("ix_fee_accruals_referral", "referral_id", "rule"),
        sa.Index("ix_fee_accruals_hold", "hold_until", postgresql_where=sa.text("status = 'pending'")),
        sa.Index("ix_fee_accruals_statement", "statement_id", postgresql_where=sa.text("statement_id IS NOT NULL")),
        sa.Index("ix_fee_accruals_created_at_id", "created_at", "id"),
    )

    id: str = id_field("acr")
    source_key: str = Field(max_length=160, unique=True)
    partner_id: str = Field(foreign_key="partners.id", max_length=40)
    referral_id: str | None = Field(default=None, foreign_key="referrals.id", max_length=40)
    external_ref: str | None = Field(default=None, max_length=100, description="The partner's own reference.")
    conversion_event_id: str | None = Field(default=None, max_length=40)
    fee_schedule_id: str | None = Field(default=None, foreign_key="fee_schedules.id", max_length=40)
    rule: FeeRule = Field(sa_type=enum_type(FeeRule, "fee_rule"), nullable=False)
    amount_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    currency: str = Field(default="CNY", max_length=3)
    status: AccrualStatus = Field(sa_type=enum_type(AccrualStatus, "accrual_status"), nullable=False)
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    hold_until: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    reverses_id: str | None = Field(default=None, max_length=40, description="The line this one reverses or caps.")
    statement_id: str | None = Field(default=None, max_length=40)
    arithmetic: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class StatementStatus(StrEnum):
    draft = "draft"
    issued = "issued"
    disputed = "disputed"
    approved = "approved"
    paid = "paid"


class Statement(SQLModel, table=True):
    """One partner, one month. Frozen once issued; net, VAT and gross are sums and one rounding each."""

    __tablename__ = "statements"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "period", name="uq_statements_partner_period"),
        sa.Index("ix_statements_created_at_id", "created_at", "id"),
    )

    id: str = id_field("stm")
    partner_id: str = Field(foreign_key="partners.id", max_length=40)
    period: str = Field(max_length=7, index=True, description="YYYY-MM")
    period_end: date
    status: StatementStatus = Field(
        default=StatementStatus.draft, sa_type=enum_type(StatementStatus, "statement_status"), nullable=False
    )
    currency: str = Field(default="CNY", max_length=3)
    lines_total_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    carried_forward_fen: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    net_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    vat_rate_bp: int
    vat_inclusive: bool
    vat_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    gross_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    line_count: int
    issued_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    approved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    paid_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    payment_ref: str | None = Field(default=None, max_length=100)
    # Four eyes (DESIGN.md, "People"): who issued, approved and paid, as audit actor ids (an API client's id, or
    # ``person:<username>``).
    issued_by: str | None = Field(default=None, max_length=80)
    approved_by: str | None = Field(default=None, max_length=80)
    paid_by: str | None = Field(default=None, max_length=80)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class FeeCapUsage(SQLModel, table=True):
    """What a partner's lines use of its monthly cap in one business month: the sum of the capped rules' lines
    (``app.fees.engine.CAPPED_RULES``) not reversed, kept exact by every write of such a line (``app.fees.cap_usage``),
    so that accrual locks and reads one row instead of summing the ledger."""

    __tablename__ = "fee_cap_usage"

    partner_id: str = Field(primary_key=True, foreign_key="partners.id", max_length=40)
    month: str = Field(primary_key=True, max_length=7, description="YYYY-MM, business month")
    used_fen: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)


class FeeReviewHold(SQLModel, table=True):
    """One referral under one review (a risk case): its lines are held until ``released_at``."""

    __tablename__ = "fee_review_holds"
    __table_args__ = (
        sa.Index("ix_fee_review_holds_open", "referral_id", postgresql_where=sa.text("released_at IS NULL")),
    )

    review_id: str = Field(max_length=40, primary_key=True)
    referral_id: str = Field(foreign_key="referrals.id", max_length=40, primary_key=True)
    held_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    released_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
