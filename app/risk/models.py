"""Risk tables: a case per partner under review, the signals that opened or fed it, the referrals it names,
and its timeline. Written by the risk domain only; fee lines are held by the fees domain
(``app.fees.reviews``), which risk calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field
from app.risk.schemas import CaseEventKind, CaseOutcome, CaseStatus, SignalKind


class RiskCase(SQLModel, table=True):
    """A partner under review. At most one open case per partner (the database says so): every new signal for
    the partner joins it."""

    __tablename__ = "risk_cases"
    __table_args__ = (
        sa.Index("uq_risk_cases_open_partner", "partner_id", unique=True, postgresql_where=sa.text("status = 'open'")),
        sa.Index("ix_risk_cases_created_at_id", "created_at", "id"),
        sa.Index("ix_risk_cases_status_assignee", "status", "assignee_id"),
    )

    id: str = id_field("rsk")
    partner_id: str = Field(foreign_key="partners.id", max_length=40, index=True)
    status: CaseStatus = Field(
        default=CaseStatus.open, sa_type=enum_type(CaseStatus, "risk_case_status"), nullable=False
    )
    outcome: CaseOutcome | None = Field(default=None, sa_type=enum_type(CaseOutcome, "risk_case_outcome"))
    assignee_id: str | None = Field(default=None, max_length=80)
    reason: str | None = Field(default=None, max_length=500)
    opened_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    closed_by: str | None = Field(default=None, max_length=80)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class RiskSignal(SQLModel, table=True):
    """One signal, once: its fingerprint is unique."""

    __tablename__ = "risk_signals"

    id: str = id_field("sig")
    case_id: str = Field(foreign_key="risk_cases.id", max_length=40, index=True)
    kind: SignalKind = Field(sa_type=enum_type(SignalKind, "risk_signal_kind"), nullable=False)
    fingerprint: str = Field(max_length=160, unique=True)
    referral_ids: list[str] = Field(default_factory=list, sa_type=JSONB, nullable=False)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    raised_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class RiskCaseReferral(SQLModel, table=True):
    """A referral a case names."""

    __tablename__ = "risk_case_referrals"

    case_id: str = Field(foreign_key="risk_cases.id", max_length=40, primary_key=True)
    referral_id: str = Field(foreign_key="referrals.id", max_length=40, primary_key=True, index=True)
    added_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class RiskCaseEvent(SQLModel, table=True):
    """The case's timeline: opened, signal added, assigned, note, closed."""

    __tablename__ = "risk_case_events"
    __table_args__ = (sa.Index("ix_risk_case_events_case_seq", "case_id", "seq"),)

    id: str = id_field("rce")
    # The order written, whatever the instant (a signal opening a case adds two events at one time).
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), nullable=False))
    case_id: str = Field(foreign_key="risk_cases.id", max_length=40)
    kind: CaseEventKind = Field(sa_type=enum_type(CaseEventKind, "risk_case_event_kind"), nullable=False)
    actor_id: str | None = Field(default=None, max_length=80)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
