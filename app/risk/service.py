"""Risk cases (DESIGN.md, "Risk"): a signal opens a case for alliance managers, or joins the partner's open one;
while a case is open the fee lines of its referrals stay on hold (``app.fees.reviews``); closing it — cleared
(the lines go into the next close) or confirmed (the lines reversed, the referrals rejected) — is audited.

The detectors (``app.risk.signals``) call ``raise_signal``; the staff API and the console call the rest. The
caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.core import clock
from app.core.models import new_id
from app.core.problems import NotFound, Unprocessable
from app.fees import reviews
from app.risk.models import RiskCase, RiskCaseEvent, RiskCaseReferral, RiskSignal
from app.risk.schemas import CaseEventKind, CaseStatus, Signal

_SIGNALS = RiskSignal.__table__  # type: ignore[attr-defined]
_CASE_REFERRALS = RiskCaseReferral.__table__  # type: ignore[attr-defined]
_DETECTOR = Actor.system("risk-signals")


class ForeignReferrals(Unprocessable):
    slug, title = "signal-foreign-referrals", "Referrals of another partner"


async def _open_case(session: AsyncSession, partner_id: str, now: datetime) -> tuple[RiskCase, bool]:
    """The partner's open case, opened now if it has none (``uq_risk_cases_open_partner``: racing signals of one
    partner open one case). Locked for the rest of the transaction."""
    case_id = new_id("rsk")
    inserted = await session.execute(
        text(
            "INSERT INTO risk_cases (id, partner_id, status, opened_at, created_at, updated_at) "
            "VALUES (:id, :partner_id, 'open', :now, :now, :now) "
            "ON CONFLICT (partner_id) WHERE status = 'open' DO NOTHING RETURNING id"
        ),
        {"id": case_id, "partner_id": partner_id, "now": now},
    )
    opened = inserted.scalar_one_or_none() is not None
    case = (
        await session.scalars(
            select(RiskCase)
            .where(col(RiskCase.partner_id) == partner_id, col(RiskCase.status) == CaseStatus.open)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return case, opened


async def _check_referrals(session: AsyncSession, signal: Signal) -> None:
    if not signal.referral_ids:
        return
    foreign = await session.scalar(
        text("SELECT count(*) FROM referrals WHERE id = ANY(:ids) AND partner_id = :partner_id"),
        {"ids": list(signal.referral_ids), "partner_id": signal.partner_id},
    )
    if int(foreign or 0) != len(signal.referral_ids):
        raise ForeignReferrals("Every referral a signal names must be one of its partner's.")


async def raise_signal(session: AsyncSession, signal: Signal, *, now: datetime | None = None) -> RiskCase:
    """Record ``signal`` on its partner's open case (opening one if there is none) and hold the fee lines of its
    referrals. Idempotent by ``signal.fingerprint``: a signal already raised adds nothing and returns the case it
    went to (even if that case is closed since). Raises ``ForeignReferrals`` (422) when a referral named is not
    the partner's, ``NotFound`` for an unknown partner."""
    now = now or clock.now()
    known = await session.scalar(
        select(col(RiskSignal.case_id)).where(col(RiskSignal.fingerprint) == signal.fingerprint)
    )
    if known is not None:
        return await _case(session, known)
    partner = await session.scalar(text("SELECT id FROM partners WHERE id = :id"), {"id": signal.partner_id})
    if partner is None:
        raise NotFound("No such partner.")
    await _check_referrals(session, signal)
    case, opened = await _open_case(session, signal.partner_id, now)
    signal_id = new_id("sig")
    written = await session.execute(
        insert(_SIGNALS)
        .values(
            id=signal_id,
            case_id=case.id,
            kind=signal.kind.value,
            fingerprint=signal.fingerprint,
            referral_ids=list(signal.referral_ids),
            evidence=signal.evidence,
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(_SIGNALS.c.id)
    )
    if written.scalar_one_or_none() is None:  # raced by the same signal: the other transaction recorded it
        known = await session.scalar(
            select(col(RiskSignal.case_id)).where(col(RiskSignal.fingerprint) == signal.fingerprint)
        )
        return await _case(session, known or case.id)
    added: list[str] = []
    if signal.referral_ids:
        rows = [{"case_id": case.id, "referral_id": rid, "added_at": now} for rid in signal.referral_ids]
        added = list(
            (
                await session.execute(
                    insert(_CASE_REFERRALS)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .returning(_CASE_REFERRALS.c.referral_id)
                )
            ).scalars()
        )
        await reviews.hold_referrals(session, case.id, signal.referral_ids, now)
    if opened:
        _event(session, case.id, CaseEventKind.opened, _DETECTOR.id, now, partner_id=case.partner_id)
        await audit.record(
            session,
            _DETECTOR,
            "risk_case.opened",
            object_type="risk_case",
            object_id=case.id,
            partner_id=case.partner_id,
        )
    _event(
        session,
        case.id,
        CaseEventKind.signal_added,
        _DETECTOR.id,
        now,
        signal_id=signal_id,
        kind=signal.kind.value,
        referrals_added=len(added),
    )
    await audit.record(
        session,
        _DETECTOR,
        "risk_case.signal_added",
        object_type="risk_case",
        object_id=case.id,
        signal_id=signal_id,
        kind=signal.kind.value,
        referrals_added=len(added),
    )
    case.updated_at = now
    session.add(case)
    await session.flush()
    return case


def _event(
    session: AsyncSession, case_id: str, event: CaseEventKind, actor_id: str | None, now: datetime, **details: object
) -> None:
    session.add(RiskCaseEvent(case_id=case_id, kind=event, actor_id=actor_id, details=dict(details), at=now))


async def _case(session: AsyncSession, case_id: str) -> RiskCase:
    case = await session.get(RiskCase, case_id)
    if case is None:
        raise NotFound("No such risk case.")
    return case
