"""API shapes of the reports. Counts are integers, money integer fen beside ``currency``, rates fractions of 1
rounded to 4 places (``null`` when there is nothing to divide by), durations whole days (percentiles interpolate
as ``percentile_cont`` does, so a median may end in .5)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from app.catalog.models import PartnerKind
from app.conversions.models import Tier
from app.core.business_time import timezone_name
from app.referrals.models import ReferralKind


class GroupBy(StrEnum):
    partner = "partner"
    partner_kind = "partner_kind"
    program = "program"
    product = "product"
    tier = "tier"
    kind = "kind"
    month = "month"


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"
    html = "html"


AGE_BANDS: dict[str, str] = {
    "under_25": "under 25",
    "25_35": "25-35",
    "36_45": "36-45",
    "46_55": "46-55",
    "over_55": "over 55",
    "": "no age (enterprise)",
}
TARGET_AGE_BAND = "25_35"


class ReportPeriod(BaseModel):
    start: date = Field(description="First day, inclusive (business timezone).")
    end: date = Field(description="Last day, inclusive (business timezone).")
    timezone: str = Field(default_factory=timezone_name, description="The business timezone, e.g. Asia/Shanghai.")
    basis: str = Field(
        default="cohort",
        description=(
            "Referral figures follow the referrals received in the period, up to now (when they converted, what "
            "they earned): a cohort. Organic clients are those whose account opened in the period."
        ),
    )


class ReportFilters(BaseModel):
    """The filters applied; an empty list is no filter."""

    partner_ids: list[str] = Field(default_factory=list)
    partner_kinds: list[PartnerKind] = Field(default_factory=list)
    program_ids: list[str] = Field(default_factory=list)
    product_codes: list[str] = Field(default_factory=list)
    tiers: list[Tier] = Field(default_factory=list)
    kinds: list[ReferralKind] = Field(default_factory=list)


class ReportGroup(BaseModel):
    """The row's group: the dimensions of ``group_by`` are set (``null`` under ``product`` or ``tier`` means none
    yet: not converted, not funded); the others are absent."""

    partner_id: str | None = None
    partner_name: str | None = None
    partner_kind: PartnerKind | None = None
    program_id: str | None = None
    program_name: str | None = None
    product_code: str | None = None
    product_name: str | None = None
    tier: Tier | None = None
    kind: ReferralKind | None = None
    month: str | None = Field(default=None, examples=["2026-10"], description="YYYY-MM")


class ReportHeader(BaseModel):
    period: ReportPeriod
    filters: ReportFilters
    group_by: list[GroupBy]
    currency: Literal["CNY"] = "CNY"
    generated_at: datetime


# --- funnel -----------------------------------------------------------------------------------------------------


class FunnelCounts(BaseModel):
    """Referrals received, the stages they reached (``eligible``, ``account_opened``, ``funded``, ``converted``:
    ever, even if later withdrawn, but not what an attribution override gave to another referral) and the outcome
    they are in now (``existing_client`` … ``rejected``)."""

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


class FunnelRates(BaseModel):
    eligible: float | None
    account_opened: float | None
    funded: float | None
    converted: float | None


class FunnelRow(BaseModel):
    group: ReportGroup
    counts: FunnelCounts
    stage_rates: FunnelRates = Field(description="Each stage over the one before it (eligible over received).")
    overall_rates: FunnelRates = Field(description="Each stage over the referrals received.")


class FunnelReport(ReportHeader):
    report: Literal["funnel"] = "funnel"
    rows: list[FunnelRow]
    total: FunnelRow


# --- time to convert --------------------------------------------------------------------------------------------


class StageTiming(BaseModel):
    referrals: int = Field(description="Referrals that reached the stage.")
    median_days: float | None
    p90_days: float | None


class TimingRow(BaseModel):
    group: ReportGroup
    account_opened: StageTiming
    funded: StageTiming
    converted: StageTiming


class TimeToConvertReport(ReportHeader):
    report: Literal["time_to_convert"] = "time_to_convert"
    rows: list[TimingRow]
    total: TimingRow


# --- fees -------------------------------------------------------------------------------------------------------


class FeesRow(BaseModel):
    group: ReportGroup
    funded_accounts: int
    converted: int
    assets_fen: int = Field(description="Current assets of the referred accounts still open.")
    revenue_fen: int = Field(description="Revenue the back office recorded for the referred clients.")
    fees_accrued_fen: int = Field(
        description="Every fee line but reversed ones: pending + payable + statemented + paid."
    )
    fees_pending_fen: int = Field(description="Inside the hold period.")
    fees_payable_fen: int = Field(description="Payable, not on a statement yet.")
    fees_statemented_fen: int = Field(description="On a statement, not paid yet.")
    fees_paid_fen: int
    cost_per_funded_account_fen: int | None = Field(description="fees_accrued_fen / funded_accounts, half up.")
    revenue_to_fee_ratio: float | None = Field(description="revenue_fen / fees_accrued_fen.")


class FeesReport(ReportHeader):
    report: Literal["fees"] = "fees"
    rows: list[FeesRow]
    total: FeesRow


# --- client structure -------------------------------------------------------------------------------------------


class TierCounts(BaseModel):
    retail: int
    hnw: int
    institutional: int
    unknown: int = Field(description="No tier yet (not funded).")
    share_hnw_institutional: float | None = Field(description="(hnw + institutional) / the clients with a tier.")


class TierAssets(BaseModel):
    retail_fen: int
    hnw_fen: int
    institutional_fen: int


class AgeBand(BaseModel):
    band: str = Field(examples=["25_35"], description="The key of the band in each row's age counts.")
    label: str
    target: bool = Field(description="The seed's young-client goal: 25-35.")


class StructureRow(BaseModel):
    group: ReportGroup
    converted: TierCounts = Field(description="Converted referrals by their account's tier.")
    funded: TierCounts = Field(description="Funded referrals by tier.")
    assets_by_tier: TierAssets = Field(description="Assets brought in: current assets of the referred accounts.")
    received_by_age: dict[str, int] = Field(description="Referrals received, by age band (``none``: enterprises).")
    converted_by_age: dict[str, int] = Field(description="Converted referrals, by age band.")
    converted_share_25_35: float | None = Field(description="25-35 among the converted with a known age.")
    organic: TierCounts = Field(
        description="Organic clients (no referral) whose account opened in the same period (and month, tier)."
    )
    organic_assets_by_tier: TierAssets
    share_difference_points: float | None = Field(
        description="converted.share_hnw_institutional - organic.share_hnw_institutional, in percentage points."
    )


class ClientStructureReport(ReportHeader):
    report: Literal["client_structure"] = "client_structure"
    age_bands: list[AgeBand] = Field(description="The age bands of the rows' counts, in order, 25-35 marked.")
    rows: list[StructureRow]
    total: StructureRow


# --- scorecard --------------------------------------------------------------------------------------------------


class ScorecardMetric(BaseModel):
    name: str
    label: str
    unit: Literal["count", "rate", "days", "fen", "ratio"]
    partner: int | float | None = Field(description="Integers stay integers (counts, fen); averages are decimals.")
    alliance: int | float | None = Field(
        description="All partners: pooled for rates, days and ratios; per partner for volumes."
    )
    peers: int | float | None = Field(description="The same, over partners of the same kind.")
    basis: Literal["pooled", "per_partner"]


class ScorecardPartner(BaseModel):
    id: str
    name: str
    kind: PartnerKind


class Scorecard(ReportHeader):
    report: Literal["scorecard"] = "scorecard"
    partner: ScorecardPartner
    partners_in_alliance: int = Field(description="Partners with referrals in the period (under the filters).")
    partners_in_peers: int
    metrics: list[ScorecardMetric]


class ReportPack(BaseModel):
    """Every staff report over one period and filters."""

    funnel: FunnelReport
    time_to_convert: TimeToConvertReport
    fees: FeesReport
    client_structure: ClientStructureReport
