"""API shapes of the catalog, and the fee rules a schedule version holds."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from app.catalog.models import (
    BundledProduct,
    FeeSchedule,
    FeeScheduleStatus,
    Partner,
    PartnerKind,
    PartnerStatus,
    Program,
    ProgramChannel,
    ProgramStatus,
    RateLimitTier,
)
from app.core.identifiers import is_valid_credit_code, normalise_credit_code
from app.core.patch import Nullable, PatchBody

Fen = Annotated[StrictInt, Field(ge=0, le=10**15, description="An amount in integer fen (0.01 CNY).")]
BasisPoints = Annotated[StrictInt, Field(ge=0, le=10_000, description="Basis points: 100 = 1%.")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
PRODUCT_CODE = re.compile(r"^[A-Z][A-Z0-9_]{2,39}$")


def _credit_code(value: str | None) -> str | None:
    if value is None:
        return None
    code = normalise_credit_code(value)
    if not is_valid_credit_code(code):
        raise ValueError("not a valid unified social credit code (GB 32100 check character)")
    return code


# --- partners ---------------------------------------------------------------------------------------------------


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, max_length=30, pattern=r"^\+?[0-9\- ]{5,30}$")


class PartnerFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: Name | None = None
    credit_code: Annotated[str | None, Nullable] = Field(
        default=None, description="Unified social credit code (18 characters)."
    )
    contacts: list[Contact] | None = Field(default=None, max_length=20)
    vat_rate_bp: BasisPoints | None = Field(default=None, description="VAT in basis points; default 600 (6%).")
    vat_inclusive: StrictBool | None = None
    payout_account_ref: Annotated[str | None, Nullable] = Field(default=None, max_length=100)
    rate_limit_tier: RateLimitTier | None = None

    @field_validator("credit_code")
    @classmethod
    def _check_credit_code(cls, value: str | None) -> str | None:
        return _credit_code(value)


class PartnerCreate(PartnerFields):
    kind: PartnerKind
    legal_name: Name


class PartnerUpdate(PatchBody, PartnerFields):
    legal_name: Name | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class PartnerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: PartnerKind
    legal_name: str
    display_name: str
    credit_code: str | None
    contacts: list[Contact]
    vat_rate_bp: int
    vat_inclusive: bool
    payout_account_ref: str | None
    rate_limit_tier: RateLimitTier
    status: PartnerStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, partner: Partner) -> PartnerOut:
        return cls.model_validate(partner)


# --- products ---------------------------------------------------------------------------------------------------


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=60, examples=["bank_wealth_product", "securities_portfolio"])
    name: Name


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=PRODUCT_CODE.pattern, examples=["BANK_WM_PLUS_EQUITY"])
    name: Name
    components: list[Component] = Field(min_length=1, max_length=10)
    allowed_partner_kinds: list[PartnerKind] = Field(min_length=1)
    active: StrictBool = True


class ProductUpdate(PatchBody):
    name: Name | None = None
    components: list[Component] | None = Field(default=None, min_length=1, max_length=10)
    allowed_partner_kinds: list[PartnerKind] | None = Field(default=None, min_length=1)
    active: StrictBool | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    code: str
    name: str
    components: list[Component]
    allowed_partner_kinds: list[PartnerKind]
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: BundledProduct) -> ProductOut:
        return cls.model_validate(product)


# --- fee rules ----------------------------------------------------------------------------------------------------


class TierAmounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retail: Fen
    hnw: Fen
    institutional: Fen


class FundedBounty(BaseModel):
    """Paid once the client's assets reach ``min_assets_fen``; a tier rise in the qualification period tops up."""

    model_config = ConfigDict(extra="forbid")

    min_assets_fen: Fen
    by_tier: TierAmounts


class BundleFee(BaseModel):
    """Per purchase of ``product_code``: ``flat_fen`` plus ``bps`` of the amount, clamped to [min, max]."""

    model_config = ConfigDict(extra="forbid")

    product_code: str = Field(pattern=PRODUCT_CODE.pattern)
    flat_fen: Fen | None = None
    bps: BasisPoints | None = None
    min_fen: Fen | None = None
    max_fen: Fen | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.flat_fen is None and self.bps is None:
            raise ValueError("a bundle fee needs flat_fen, bps or both")
        if self.min_fen is not None and self.max_fen is not None and self.min_fen > self.max_fen:
            raise ValueError("min_fen must not exceed max_fen")
        return self


class RevenueShare(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bps: BasisPoints
    months: StrictInt = Field(ge=1, le=120)


class Caps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_referral_fen: Fen | None = Field(default=None, description="Lifetime cap per referral.")
    per_partner_month_fen: Fen | None = Field(default=None, description="Cap per partner per calendar month.")


class FeeRules(BaseModel):
    """Every rule of one schedule version. Money is integer fen; rates are basis points (≤ 10,000)."""

    model_config = ConfigDict(extra="forbid")

    funded_bounty: FundedBounty | None = None
    bundle_fees: list[BundleFee] = Field(default_factory=list, max_length=50)
    revenue_share: RevenueShare | None = None
    caps: Caps = Field(default_factory=Caps)

    @model_validator(mode="after")
    def _one_fee_per_product(self) -> Self:
        codes = [fee.product_code for fee in self.bundle_fees]
        if len(codes) != len(set(codes)):
            raise ValueError("each product_code may appear once in bundle_fees")
        return self


class FeeScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: str = Field(max_length=40)
    effective_from: date
    rules: FeeRules


class FeeScheduleUpdate(PatchBody):
    effective_from: date | None = None
    rules: FeeRules | None = None


class FeeScheduleOut(BaseModel):
    id: str
    program_id: str
    version: int
    status: FeeScheduleStatus
    effective_from: date
    effective_to: date | None
    currency: str
    rules: FeeRules
    in_use: bool = Field(description="The version has produced accruals: it can only be succeeded.")
    activated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule: FeeSchedule) -> FeeScheduleOut:
        return cls(
            id=schedule.id,
            program_id=schedule.program_id,
            version=schedule.version,
            status=schedule.status,
            effective_from=schedule.effective_from,
            effective_to=schedule.effective_to,
            currency=schedule.currency,
            rules=FeeRules.model_validate(schedule.rules),
            in_use=schedule.first_accrual_at is not None,
            activated_at=schedule.activated_at,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
        )


# --- programs ---------------------------------------------------------------------------------------------------


class ProgramFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribution_window_days: StrictInt | None = Field(default=None, ge=1, le=3650)
    qualification_period_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    hold_period_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    clawback_period_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    effective_to: Annotated[date | None, Nullable] = None
    product_codes: list[str] | None = Field(default=None, max_length=50, description="Bundled products offered.")


class ProgramCreate(ProgramFields):
    partner_id: str = Field(max_length=40)
    name: Name
    channel: ProgramChannel
    effective_from: date


class ProgramUpdate(PatchBody, ProgramFields):
    name: Name | None = None
    status: ProgramStatus | None = None
    effective_from: date | None = None


class ProgramOut(BaseModel):
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
    products: list[ProductOut]
    fee_schedule_in_force: FeeScheduleOut | None = Field(description="The active version covering today, if any.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, program: Program, products: list[BundledProduct], schedule: FeeSchedule | None) -> ProgramOut:
        return cls(
            **{name: getattr(program, name) for name in _PROGRAM_COLUMNS},
            products=[ProductOut.of(product) for product in products],
            fee_schedule_in_force=FeeScheduleOut.of(schedule) if schedule else None,
        )


_PROGRAM_COLUMNS = (
    "id",
    "partner_id",
    "name",
    "channel",
    "attribution_window_days",
    "qualification_period_days",
    "hold_period_days",
    "clawback_period_days",
    "effective_from",
    "effective_to",
    "status",
    "created_at",
    "updated_at",
)
