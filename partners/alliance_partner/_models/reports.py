"""The funnel and time-to-convert reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class ReportPeriod:
    start: date
    end: date
    timezone: str
    basis: str


@dataclass(frozen=True)
class ReportFilters:
    partner_ids: list[str] = field(default_factory=list)
    partner_kinds: list[str] = field(default_factory=list)
    program_ids: list[str] = field(default_factory=list)
    product_codes: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportGroup:
    """A report row's group: the dimensions of ``group_by`` are set, the others None."""

    partner_id: str | None = None
    partner_name: str | None = None
    partner_kind: str | None = None
    program_id: str | None = None
    program_name: str | None = None
    product_code: str | None = None
    product_name: str | None = None
    tier: str | None = None
    kind: str | None = None
    month: str | None = None


@dataclass(frozen=True)
class FunnelCounts:
    """Referrals received, the stages they reached (ever) and the outcome they are in now."""

    received: int
    eligible: int
    existing_client: int
    duplicate: int
    expired: int
    withdrawn: int
    rejected: int
    account_opened: int
    funded: int
    converted: int


@dataclass(frozen=True)
class FunnelRates:
    eligible: float | None
    account_opened: float | None
    funded: float | None
    converted: float | None


@dataclass(frozen=True)
class FunnelRow:
    group: ReportGroup
    counts: FunnelCounts
    stage_rates: FunnelRates
    overall_rates: FunnelRates


@dataclass(frozen=True)
class FunnelReport:
    """Your referrals received in the period (a cohort) and how far they got, per group."""

    period: ReportPeriod
    filters: ReportFilters
    group_by: list[str]
    currency: str
    generated_at: datetime
    rows: list[FunnelRow]
    total: FunnelRow


@dataclass(frozen=True)
class StageTiming:
    referrals: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True)
class TimingRow:
    group: ReportGroup
    account_opened: StageTiming
    funded: StageTiming
    converted: StageTiming


@dataclass(frozen=True)
class TimeToConvertReport:
    """Days from receiving a referral to its account opening, funding and conversion (median, 90th percentile)."""

    period: ReportPeriod
    filters: ReportFilters
    group_by: list[str]
    currency: str
    generated_at: datetime
    rows: list[TimingRow]
    total: TimingRow
