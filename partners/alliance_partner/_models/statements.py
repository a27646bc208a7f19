"""Monthly statements, your claim against one, and the reconciliation of the two."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from alliance_partner._models.common import AccrualStatus, FeeType, MatchClass, Resolution, StatementStatus


@dataclass(frozen=True, kw_only=True)
class ClaimLine:
    """One line of your claim: what you believe a statement owes you for one reference and fee type (the
    total, signed, in fen). ``fee_type`` uses the statement lines' ``rule`` names."""

    external_ref: str
    fee_type: FeeType
    amount_fen: int
    currency: str = "CNY"


@dataclass(frozen=True)
class Statement:
    """One month of your fees: the lines' total, a negative balance carried in, net, VAT and gross (fen).

    With ``vat_inclusive`` the lines already include VAT (``vat_fen`` is the VAT within ``net_fen``);
    otherwise VAT is added on top. A negative net has no VAT and is carried into your next statement.
    """

    id: str
    partner_id: str
    period: str
    period_end: date
    status: StatementStatus
    currency: str
    lines_total_fen: int
    carried_forward_fen: int
    net_fen: int
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


@dataclass(frozen=True)
class StatementLine:
    """One fee line of a statement, with your reference and the arithmetic that produced it."""

    id: str
    external_ref: str | None
    referral_id: str | None
    rule: FeeType
    amount_fen: int
    currency: str
    status: AccrualStatus
    occurred_at: datetime
    reverses_id: str | None
    arithmetic: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    id: str
    statement_id: str
    format: str
    line_count: int
    claimed_total_fen: int
    created_at: datetime


@dataclass(frozen=True)
class ClassTotals:
    items: int
    ours_fen: int
    theirs_fen: int
    difference_fen: int
    open: int


@dataclass(frozen=True)
class ReconciliationItem:
    """One (reference, fee type) of a statement: our total, your claim's, how they compare, what finance did.

    ``reason`` (``unknown`` items) says why the line is not yours: ``not_attributed``, ``expired``,
    ``duplicate``, ``existing_client``, ``ineligible``, ``not_yet_due``, ``on_another_statement``, ``not_earned``.
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
    adjustment_id: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Reconciliation:
    """The matching of a statement's current claim: totals per class, and a page of its items (newest first;
    ``list_reconciliation_items`` walks them all)."""

    statement_id: str
    statement_status: StatementStatus
    claim: Claim | None
    totals: dict[str, ClassTotals]
    open_items: int
    data: list[ReconciliationItem]
    next_cursor: str | None


@dataclass(frozen=True)
class Dispute:
    statement_id: str
    statement_status: StatementStatus
    items: list[ReconciliationItem]
