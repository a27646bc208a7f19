"""The reports' summary: per-referral facts, monthly rollups built from them, and the queue of what changed.

Database triggers (see the migration that creates these tables) append to ``report_changes`` the referral or
client account that every write to ``referrals``, ``client_accounts`` and ``fee_accruals`` touches, in the
writer's own transaction (timeline entries and conversion events always come with a write to one of those). The
queue is append-only, so writers never wait on each other for it. ``app.reports.summary.refresh`` folds the queue
into the facts and rollups; a report reads the rollups and corrects them, in the same statement, for whatever is
still queued: figures are exact at any moment.

Keys never hold NULL: an empty string stands for "no tier yet", "no product", "no age" (an enterprise), so that
a key is one value and rollup rows can be upserted.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _key(length: int) -> str:
    return Field(default="", primary_key=True, max_length=length)


def _count() -> int:
    return Field(default=0, nullable=False)


def _fen() -> int:
    return Field(default=0, sa_type=sa.BigInteger, nullable=False)


class ReportChange(SQLModel, table=True):
    """A referral (or client account) whose facts may be stale. Written by triggers only."""

    __tablename__ = "report_changes"

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    referral_id: str | None = Field(default=None, max_length=40)
    client_ref: str | None = Field(default=None, max_length=80)


class ReferralFact(SQLModel, table=True):
    """One referral as the reports count it (``app.reports.summary.REFERRAL_FACTS`` says how each is derived)."""

    __tablename__ = "report_referral_facts"
    __table_args__ = (sa.Index("ix_report_referral_facts_received_on", "received_on"),)

    referral_id: str = Field(primary_key=True, max_length=40)
    partner_id: str = Field(max_length=40)
    program_id: str = Field(max_length=40)
    kind: str = Field(max_length=16)
    cohort_month: date = Field(description="The month (business timezone) the referral was received in.")
    received_on: date
    age_band: str = Field(default="", max_length=10)
    status: str = Field(max_length=32)
    reached_eligible: bool = False
    reached_opened: bool = False
    reached_funded: bool = False
    reached_converted: bool = False
    days_to_open: int | None = None
    days_to_fund: int | None = None
    days_to_convert: int | None = None
    tier: str = Field(default="", max_length=16)
    product_code: str = Field(default="", max_length=40)
    assets_fen: int = _fen()
    revenue_fen: int = _fen()
    fees_pending_fen: int = _fen()
    fees_payable_fen: int = _fen()
    fees_statemented_fen: int = _fen()
    fees_paid_fen: int = _fen()


class CohortMeasures(SQLModel):
    """What the referrals of a cohort add up to: funnel counts, money, and the splits by tier and age band the
    client-structure report needs (columns, not keys, so that they cost no rows)."""

    received: int = _count()
    eligible: int = _count()
    existing_client: int = _count()
    duplicate: int = _count()
    expired: int = _count()
    withdrawn: int = _count()
    rejected: int = _count()
    account_opened: int = _count()
    funded: int = _count()
    converted: int = _count()
    assets_fen: int = _fen()
    revenue_fen: int = _fen()
    fees_pending_fen: int = _fen()
    fees_payable_fen: int = _fen()
    fees_statemented_fen: int = _fen()
    fees_paid_fen: int = _fen()
    received_age_under_25: int = _count()
    received_age_25_35: int = _count()
    received_age_36_45: int = _count()
    received_age_46_55: int = _count()
    received_age_over_55: int = _count()
    received_age_none: int = _count()  # enterprises
    converted_age_under_25: int = _count()
    converted_age_25_35: int = _count()
    converted_age_36_45: int = _count()
    converted_age_46_55: int = _count()
    converted_age_over_55: int = _count()
    converted_age_none: int = _count()
    converted_retail: int = _count()
    converted_hnw: int = _count()
    converted_institutional: int = _count()
    converted_unknown: int = _count()  # converted before any funding: no tier
    funded_retail: int = _count()
    funded_hnw: int = _count()
    funded_institutional: int = _count()
    funded_unknown: int = _count()
    assets_retail_fen: int = _fen()
    assets_hnw_fen: int = _fen()
    assets_institutional_fen: int = _fen()


class CohortSummary(CohortMeasures, table=True):
    """The referrals received in one month, by program, kind, tier and product."""

    __tablename__ = "report_cohorts"
    __table_args__ = (sa.Index("ix_report_cohorts_empty", "cohort_month", postgresql_where=sa.text("received = 0")),)

    cohort_month: date = Field(primary_key=True)
    partner_id: str = _key(40)
    program_id: str = _key(40)
    kind: str = _key(16)
    tier: str = _key(16)
    product_code: str = _key(40)


class PartnerMonthSummary(CohortMeasures, table=True):
    """The same sums by partner and month alone: the grain of the reports read most (by partner, partner kind,
    month, without program, kind, tier or product filters), a few thousand rows a year where the rollup above
    has tens of thousands. Rebuilt by the refresh for every partner-month it touches."""

    __tablename__ = "report_partner_months"

    cohort_month: date = Field(primary_key=True)
    partner_id: str = _key(40)


class DurationSummary(SQLModel, table=True):
    """How many referrals took ``days`` whole days from receipt to a stage: the histogram percentiles come from."""

    __tablename__ = "report_durations"
    __table_args__ = (sa.Index("ix_report_durations_empty", "cohort_month", postgresql_where=sa.text("referrals = 0")),)

    cohort_month: date = Field(primary_key=True)
    partner_id: str = _key(40)
    program_id: str = _key(40)
    kind: str = _key(16)
    tier: str = _key(16)
    product_code: str = _key(40)
    stage: str = _key(16)
    days: int = Field(primary_key=True)
    referrals: int = _count()


class DurationSeries(SQLModel, table=True):
    """The same histogram by partner and month alone, one row per stage: the grain of the reports read most (by
    partner, partner kind, month), a few thousand rows a year where the histogram above has hundreds of thousands;
    under the partner id ``""``, the whole alliance's month. Rebuilt by the refresh for every partner-month it
    touches.

    ``histogram`` packs (days, referrals) pairs, days ascending, as big-endian 32-bit integers
    (``int4send``): a year of partner-months is read and unpacked in milliseconds, where arrays of integers
    take the driver tens of milliseconds to decode."""

    __tablename__ = "report_duration_series"

    cohort_month: date = Field(primary_key=True)
    partner_id: str = _key(40)
    stage: str = _key(16)
    histogram: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    # The partner-month's own figures, by percentile_cont: a report grouped by partner and month reads them as
    # they are, without unpacking (unless the queue or the days around whole months correct them).
    referrals: int = _count()
    median_days: float
    p90_days: float


class OrganicAccountFact(SQLModel, table=True):
    """A client account no referral brought in, as the client-structure baseline counts it."""

    __tablename__ = "report_organic_accounts"
    __table_args__ = (sa.Index("ix_report_organic_accounts_opened_on", "opened_on"),)

    client_ref: str = Field(primary_key=True, max_length=80)
    opened_month: date
    opened_on: date
    tier: str = Field(default="", max_length=16)
    assets_fen: int = _fen()


class OrganicSummary(SQLModel, table=True):
    """Organic accounts opened in one month, by tier."""

    __tablename__ = "report_organic"
    __table_args__ = (sa.Index("ix_report_organic_empty", "opened_month", postgresql_where=sa.text("accounts = 0")),)

    opened_month: date = Field(primary_key=True)
    tier: str = _key(16)
    accounts: int = _count()
    assets_fen: int = _fen()
