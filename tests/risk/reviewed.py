"""Set-ups shared by the tests of lines under review: a funded referral of a fees ``Ledger``, a referral's ledger
lines as stored, and a case opened by hand on one referral (a signal raised through the risk service)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.fees.models import FeeAccrual
from app.risk import service as risk
from app.risk.models import RiskCase
from app.risk.schemas import Signal, SignalKind
from tests.fees.conftest import START, Ledger, cny


async def funded(ledger: Ledger, client_ref: str) -> str:
    """A referral whose account opened and was funded with 20,000 yuan at ``START``: it earns a bounty."""
    referral_id, person = await ledger.referral()
    assert set(
        await ledger.events(
            Ledger.event("account_opened", client_ref, START, national_id=person),
            Ledger.event("account_funded", client_ref, START + timedelta(hours=1), **cny(20_000)),
        )
    ) == {"applied"}
    return referral_id


async def lines_of(session: AsyncSession, referral_id: str) -> list[FeeAccrual]:
    """The referral's ledger lines as stored now, in the order written."""
    rows = await session.scalars(
        select(FeeAccrual)
        .where(col(FeeAccrual.referral_id) == referral_id)
        .order_by(col(FeeAccrual.created_at), col(FeeAccrual.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def review(session: AsyncSession, partner_id: str, referral_id: str, fingerprint: str, now: datetime) -> RiskCase:
    """The partner's case for one referral whose account was emptied inside its hold (its lines are then held)."""
    return await risk.raise_signal(
        session,
        Signal(
            kind=SignalKind.funded_then_emptied,
            partner_id=partner_id,
            referral_ids=(referral_id,),
            evidence={"observed": {"accounts_emptied_or_closed": 1}},
            fingerprint=fingerprint,
        ),
        now=now,
    )
