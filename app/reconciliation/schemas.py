"""API shapes of claims, reconciliation results, disputes and finance's resolutions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from app.fees.models import FeeRule, StatementStatus
from app.reconciliation.models import Claim, MatchClass, ReconciliationItem, Resolution

MAX_CLAIM_LINES = 200_000


class ClaimLineIn(BaseModel):
    """One line of the partner's claim: what it believes it earned for one reference and fee type."""

    model_config = ConfigDict(extra="forbid")

    external_ref: str = Field(min_length=1, max_length=100, description="Your own reference.")
    fee_type: FeeRule = Field(description="The statement lines' `rule` names.")
    amount_fen: int = Field(
        validation_alias=AliasChoices("amount_fen", "amount"),
        ge=-(10**13),
        le=10**13,
        description="Signed, in fen (`amount` is accepted too). One line per reference and fee type: the total.",
    )
    currency: Literal["CNY"] = "CNY"


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[ClaimLineIn] = Field(max_length=MAX_CLAIM_LINES)


class ClaimOut(BaseModel):
    id: str
    statement_id: str
    format: str
    line_count: int
    claimed_total_fen: int = Field(description="The claim's total on the statement's VAT basis.")
    created_at: datetime


def claim_out(claim: Claim) -> ClaimOut:
    return ClaimOut.model_validate(claim, from_attributes=True)


class ClassTotals(BaseModel):
    items: int
    ours_fen: int
    theirs_fen: int
    difference_fen: int = Field(description="theirs - ours")
    open: int = Field(description="Items not yet resolved by finance (matched items are never open).")


class ItemOut(BaseModel):
    """One (reference, fee type) of the statement: our total, the claim's, the class and its resolution.

    ``reason`` (unknown items only) says why the line is not ours: ``not_attributed`` (no referral of yours
    with that reference), ``expired``, ``duplicate``, ``existing_client``, ``ineligible`` (rejected or
    withdrawn), ``not_yet_due`` (the fee exists but is due on a later statement), ``on_another_statement``, or
    ``not_earned`` (the referral is yours but earned no such fee).
    """

    id: str
    statement_id: str
    claim_id: str
    partner_id: str
    external_ref: str
    fee_type: str
    match_class: MatchClass
    ours_fen: int | None
    theirs_fen: int | None
    difference_fen: int | None
    reason: str | None
    disputed: bool
    dispute_reason: str | None
    resolution: Resolution | None
    resolution_note: str | None
    adjustment_id: str | None = Field(description="The adjustment line an accepted claim created.")
    resolved_at: datetime | None
    created_at: datetime


def item_out(item: ReconciliationItem) -> ItemOut:
    return ItemOut.model_validate(item, from_attributes=True)


class ReconciliationOut(BaseModel):
    """The matching result of the statement's current claim: totals per class, then a page of its items."""

    statement_id: str
    statement_status: StatementStatus
    claim: ClaimOut | None = Field(description="The current claim; null before the first upload.")
    totals: dict[MatchClass, ClassTotals]
    open_items: int
    data: list[ItemOut]
    next_cursor: str | None


class DisputeLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(max_length=40)
    reason: str = Field(min_length=1, max_length=500)


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[DisputeLine] = Field(min_length=1, max_length=1000)


class DisputeOut(BaseModel):
    statement_id: str
    statement_status: StatementStatus
    items: list[ItemOut]


class ResolutionIn(BaseModel):
    """``accept_ours``: our figure stands. ``accept_theirs``: the difference (theirs - ours) becomes an
    adjustment line on the partner's next statement. ``write_off``: the difference is dropped."""

    model_config = ConfigDict(extra="forbid")

    resolution: Resolution
    note: str = Field(min_length=1, max_length=500)
