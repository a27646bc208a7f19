"""API shapes of statements, their lines and finance's adjustments. Money is integer fen beside its ``currency``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fees.models import AccrualStatus, FeeAccrual, FeeRule, Statement, StatementStatus
from app.fees.reviews import LeftOut

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class LinesUnderReview(BaseModel):
    """Lines due by the period end that the close left out: their referral is under a risk review. They go into
    the first close after the review is cleared (or are reversed if it is confirmed)."""

    lines: int
    amount_fen: int
    currency: str = "CNY"
    partners: int

    @classmethod
    def of(cls, left_out: LeftOut) -> LinesUnderReview:
        return cls(lines=left_out.lines, amount_fen=left_out.amount_fen, partners=left_out.partners)


class StatementOut(BaseModel):
    """One partner's statement for one month: the lines' total, a negative balance carried in, net, VAT, gross.

    With ``vat_inclusive`` the lines already include VAT: ``vat_fen`` is the VAT within ``net_fen`` and
    ``gross_fen`` equals it; otherwise VAT is added on top. A negative net has no VAT and is carried into the
    partner's next statement.
    """

    id: str
    partner_id: str
    period: str = Field(examples=["2026-10"])
    period_end: date
    status: StatementStatus
    currency: str
    lines_total_fen: int
    carried_forward_fen: int = Field(description="The negative net of the previous statement, carried in (≤ 0).")
    net_fen: int = Field(description="lines_total_fen + carried_forward_fen")
    vat_rate_bp: int
    vat_inclusive: bool
    vat_fen: int
    gross_fen: int
    line_count: int
    issued_at: datetime | None
    approved_at: datetime | None
    paid_at: datetime | None
    payment_ref: str | None
    created_at: datetime
    updated_at: datetime
    under_review: LinesUnderReview | None = Field(
        default=None,
        description=(
            "On `GET /v1/statements/{id}` for a partner: its lines due by the period's end that are on no statement "
            "because they are under review; they go on a later statement once the review ends."
        ),
    )


def statement_out(statement: Statement) -> StatementOut:
    return StatementOut.model_validate(statement, from_attributes=True)


class StatementLineOut(BaseModel):
    """One ledger line on a statement, with the partner's own reference and the arithmetic that produced it."""

    id: str
    external_ref: str | None = Field(description="Your own reference for the referral (or the adjustment).")
    referral_id: str | None
    rule: FeeRule = Field(description="The fee type; claims use the same names.")
    amount_fen: int
    currency: str
    status: AccrualStatus
    occurred_at: datetime
    reverses_id: str | None
    arithmetic: dict[str, Any]
    created_at: datetime


def line_out(line: FeeAccrual) -> StatementLineOut:
    return StatementLineOut.model_validate(line, from_attributes=True)


class PartnerLeftOut(BaseModel):
    """A sandbox partner with a test clock, left out of a close on real time."""

    partner_id: str
    clock_now: datetime = Field(description="The partner's test clock.")
    reason: Literal["clock_before_period_end", "closes_on_its_clock"] = Field(
        description="Its clock has not reached the month's end, or has passed it (its advance closed the month)."
    )


class ClosedPeriod(BaseModel):
    period: str
    released_lines: int = Field(description="Held lines whose hold period ended by the period end, now payable.")
    statemented_lines: int = Field(description="Lines put on this period's draft statements by this call.")
    created_statements: int = Field(description="Statements this call created (0 when the period was closed).")
    statements: list[StatementOut] = Field(description="Every statement of the period (of the partners closed).")
    left_out: list[PartnerLeftOut] = Field(
        default_factory=list, description="Sandbox only: partners with a test clock, whose months close on it."
    )
    under_review: LinesUnderReview = Field(
        default_factory=lambda: LinesUnderReview(lines=0, amount_fen=0, partners=0),
        description="Due lines left out of the statements: their referral is under a risk review.",
    )


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_ref: str = Field(min_length=1, max_length=100, description="The bank transfer's reference.")


class AdjustmentIn(BaseModel):
    """A correction for a partner, payable with the next statement built (the next period closed)."""

    model_config = ConfigDict(extra="forbid")

    partner_id: str = Field(max_length=40)
    amount_fen: int = Field(description="Signed: negative takes money back.", ge=-(10**13), le=10**13)
    currency: Literal["CNY"] = "CNY"
    external_ref: str = Field(
        min_length=1,
        max_length=100,
        description="The reference the partner sees and claims it under: the referral's own when it corrects one.",
    )
    reason: str = Field(min_length=1, max_length=500)


class AdjustmentOut(StatementLineOut):
    partner_id: str
    statement_id: str | None
    reason: str


def adjustment_out(line: FeeAccrual) -> AdjustmentOut:
    return AdjustmentOut.model_validate(
        {
            **line_out(line).model_dump(),
            "partner_id": line.partner_id,
            "statement_id": line.statement_id,
            "reason": str(line.arithmetic.get("reason", "")),
        }
    )
