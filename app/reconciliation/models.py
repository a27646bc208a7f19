"""Reconciliation tables: the partner's claim for a statement, and the discrepancies finance resolves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field


class Claim(SQLModel, table=True):
    """The partner's own list of what it believes a statement owes it; a re-upload replaces it."""

    __tablename__ = "claims"

    id: str = id_field("clm")
    statement_id: str = Field(foreign_key="statements.id", max_length=40, index=True)
    partner_id: str = Field(max_length=40)
    format: str = Field(max_length=10)
    line_count: int
    claimed_total_fen: int = Field(sa_type=sa.BigInteger, nullable=False)
    superseded: bool = False
    created_at: datetime = created_at_field()


class ClaimLine(SQLModel, table=True):
    __tablename__ = "claim_lines"
    __table_args__ = (sa.Index("ix_claim_lines_claim_ref", "claim_id", "external_ref", "fee_type"),)

    claim_id: str = Field(foreign_key="claims.id", primary_key=True, max_length=40)
    line_no: int = Field(primary_key=True)
    external_ref: str = Field(max_length=100)
    fee_type: str = Field(max_length=30)
    amount_fen: int = Field(sa_type=sa.BigInteger, nullable=False)


class MatchClass(StrEnum):
    matched = "matched"
    amount_mismatch = "amount_mismatch"
    unclaimed = "unclaimed"
    unknown = "unknown"
    duplicate_claim = "duplicate_claim"


class Resolution(StrEnum):
    accept_ours = "accept_ours"
    accept_theirs = "accept_theirs"
    write_off = "write_off"


class ReconciliationItem(SQLModel, table=True):
    """One matched key (reference, fee type) of a statement: ours, theirs, the class and its resolution."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (sa.Index("ix_reconciliation_items_statement", "statement_id", "match_class"),)

    id: str = id_field("rci")
    statement_id: str = Field(foreign_key="statements.id", max_length=40)
    claim_id: str = Field(foreign_key="claims.id", max_length=40)
    partner_id: str = Field(max_length=40)
    external_ref: str = Field(max_length=100)
    fee_type: str = Field(max_length=30)
    match_class: MatchClass = Field(sa_type=enum_type(MatchClass, "match_class"), nullable=False)
    ours_fen: int | None = Field(default=None, sa_type=sa.BigInteger)
    theirs_fen: int | None = Field(default=None, sa_type=sa.BigInteger)
    difference_fen: int | None = Field(default=None, sa_type=sa.BigInteger, description="theirs - ours")
    reason: str | None = Field(default=None, max_length=60, description="For unknown lines: why it is not ours.")
    disputed: bool = False
    dispute_reason: str | None = Field(default=None, max_length=500)
    resolution: Resolution | None = Field(default=None, sa_type=enum_type(Resolution, "reconciliation_resolution"))
    resolution_note: str | None = Field(default=None, max_length=500)
    adjustment_id: str | None = Field(default=None, max_length=40)
    resolved_by: str | None = Field(default=None, max_length=80)
    resolved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = created_at_field()

    @property
    def open(self) -> bool:
        return self.match_class is not MatchClass.matched and self.resolution is None
