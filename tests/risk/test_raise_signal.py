"""A signal opens a case for its partner or joins the partner's open one; the same fingerprint adds nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.core.problems import NotFound
from app.fees import reviews
from app.risk.models import RiskCaseEvent, RiskCaseReferral, RiskSignal
from app.risk.schemas import CaseStatus, Signal, SignalKind
from app.risk.service import ForeignReferrals, raise_signal
from tests.fees.conftest import Ledger


def _signal(
    ledger: Ledger, *referral_ids: str, kind: SignalKind = SignalKind.shared_mobile, fp: str = "fp-1"
) -> Signal:
    return Signal(
        kind=kind,
        partner_id=ledger.partner_id,
        referral_ids=referral_ids,
        evidence={"thresholds": {"identities_per_mobile": 3}, "observed": {"identities": 4}, "items": ["mh:ab12"]},
        fingerprint=fp,
    )


async def _count(session: AsyncSession, model: Any, **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return int(await session.scalar(query) or 0)


async def test_a_signal_opens_a_case_and_the_same_signal_adds_nothing(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    first, _ = await ledger.referral()
    second, _ = await ledger.referral()
    case = await raise_signal(session, _signal(ledger, first, second))
    assert case.status is CaseStatus.open and case.partner_id == ledger.partner_id
    again = await raise_signal(session, _signal(ledger, first, second))
    assert again.id == case.id
    assert await _count(session, RiskSignal, case_id=case.id) == 1
    assert await _count(session, RiskCaseReferral, case_id=case.id) == 2
    kinds = (await session.scalars(select(col(RiskCaseEvent.kind)).where(col(RiskCaseEvent.case_id) == case.id))).all()
    assert sorted(kinds) == ["opened", "signal_added"]
    assert await reviews.referrals_under_review(session, [first, second]) == {first, second}
    actions = (await session.scalars(select(col(AuditEvent.action)).where(col(AuditEvent.object_id) == case.id))).all()
    assert sorted(actions) == ["risk_case.opened", "risk_case.signal_added"]


async def test_another_signal_joins_the_partners_open_case(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    other: Ledger = await make_ledger()
    first, _ = await ledger.referral()
    second, _ = await ledger.referral()
    theirs, _ = await other.referral()
    case = await raise_signal(session, _signal(ledger, first))
    joined = await raise_signal(session, _signal(ledger, first, second, kind=SignalKind.referral_burst, fp="fp-2"))
    assert joined.id == case.id
    assert await _count(session, RiskSignal, case_id=case.id) == 2
    assert await _count(session, RiskCaseReferral, case_id=case.id) == 2
    separate = await raise_signal(session, _signal(other, theirs, fp="fp-3"))
    assert separate.id != case.id


async def test_a_signal_naming_another_partners_referral_is_refused(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    other: Ledger = await make_ledger()
    theirs, _ = await other.referral()
    with pytest.raises(ForeignReferrals):
        await raise_signal(session, _signal(ledger, theirs))
    with pytest.raises(NotFound):
        await raise_signal(session, Signal(kind=SignalKind.outlier_rates, partner_id="ptn_nobody", fingerprint="x"))


def test_evidence_must_be_plain_json() -> None:
    with pytest.raises(ValueError):
        Signal(kind=SignalKind.bundle_churn, partner_id="p", fingerprint="f", evidence={"x": {1, 2}})
