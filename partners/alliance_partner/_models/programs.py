"""Programs, their products and the fee schedule in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from alliance_partner._models.common import PartnerKind, ProgramChannel, ProgramStatus


@dataclass(frozen=True)
class Component:
    kind: str
    name: str


@dataclass(frozen=True)
class Product:
    """A bundled product a program offers (e.g. ``BANK_WM_PLUS_EQUITY``)."""

    id: str
    code: str
    name: str
    components: list[Component]
    allowed_partner_kinds: list[PartnerKind]
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TierAmounts:
    retail: int
    hnw: int
    institutional: int


@dataclass(frozen=True)
class FundedBounty:
    min_assets_fen: int
    by_tier: TierAmounts


@dataclass(frozen=True)
class BundleFee:
    product_code: str
    flat_fen: int | None = None
    bps: int | None = None
    min_fen: int | None = None
    max_fen: int | None = None


@dataclass(frozen=True)
class RevenueShare:
    bps: int
    months: int


@dataclass(frozen=True)
class Caps:
    per_referral_fen: int | None = None
    per_partner_month_fen: int | None = None


@dataclass(frozen=True)
class FeeRules:
    funded_bounty: FundedBounty | None = None
    bundle_fees: list[BundleFee] = field(default_factory=list)
    revenue_share: RevenueShare | None = None
    caps: Caps = field(default_factory=Caps)


@dataclass(frozen=True)
class FeeSchedule:
    """The version of a program's fee rules in force."""

    id: str
    program_id: str
    version: int
    status: str
    effective_from: date
    effective_to: date | None
    currency: str
    rules: FeeRules
    in_use: bool
    activated_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Program:
    """One of your alliance programs: where referrals go (``program_id``), its products and fees."""

    id: str
    partner_id: str
    name: str
    channel: ProgramChannel
    attribution_window_days: int
    qualification_period_days: int
    hold_period_days: int
    clawback_period_days: int
    effective_from: date
    effective_to: date | None
    status: ProgramStatus
    products: list[Product]
    fee_schedule_in_force: FeeSchedule | None
    created_at: datetime
    updated_at: datetime
