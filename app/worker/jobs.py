"""The periodic jobs: referrals whose attribution window passed expire; the personal data of unconverted
referrals is erased after the retention period; fee lines leave their hold period. Each runs in a transaction of
its own, for the partners it is given: the worker gives it every partner without a sandbox test clock (real time),
a clock's advance its own partner at the clock's instants (``app.sandbox.service``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.fees.engine import release_held
from app.referrals.attribution import expire_stale_holders
from app.referrals.batches import processing
from app.referrals.service import erase_unconverted
from app.risk.signals import raise_risk_signals


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[AsyncSession, Settings, datetime, PartnerFilter], Awaitable[int]]


async def expire_referrals(
    session: AsyncSession, settings: Settings, now: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> int:
    """Rule 4: eligible referrals whose window has passed become ``expired``, which frees their identity."""
    return await expire_stale_holders(session, now, partners=partners)


async def erase_unconverted_personal_data(
    session: AsyncSession, settings: Settings, now: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> int:
    """PIPL art. 47: erase what unconverted referrals (and batches that failed) hold after the retention period."""
    retention = timedelta(days=settings.referral_retention_days)
    erased = await erase_unconverted(session, retention, now, partners)
    return erased + await processing.discard_failed_lines(session, now - retention, partners)


async def release_held_fees(
    session: AsyncSession, settings: Settings, now: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> int:
    """Accrual lines whose hold period ended become payable."""
    return await release_held(session, now, partners)


JOBS = (
    Job("expire_referrals", expire_referrals),
    Job("erase_unconverted", erase_unconverted_personal_data),
    Job("release_held_fees", release_held_fees),
    # After the others: a referral expired or a line released in this pass is what the signals see.
    Job("risk_signals", raise_risk_signals),
)
