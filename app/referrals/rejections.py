"""Rejecting referrals found fraudulent (DESIGN.md, "Referral funnel": ``rejected``, invalid or fraudulent), as a
risk case confirmed decides: through the transitions table, so each rejection is on the referral's timeline and
announced to the partner's webhooks like any other. The partner learns the outcome and a neutral cause, never
the signal behind it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.referrals.models import Referral, ReferralStatus
from app.referrals.transitions import ALLOWED, StatusChange, transition


async def reject_referrals(
    session: AsyncSession, referral_ids: Sequence[str], cause: str, now: datetime
) -> tuple[list[str], list[str]]:
    """Reject every referral of ``referral_ids`` that may still be rejected; returns (rejected, left as they were:
    already rejected, withdrawn, or an outcome that is final, e.g. expired)."""
    if not referral_ids:
        return [], []
    rows = (
        await session.execute(
            select(col(Referral.id), col(Referral.partner_id), col(Referral.status))
            .where(col(Referral.id).in_(list(referral_ids)))
            .order_by(col(Referral.id))
            .with_for_update()
        )
    ).all()
    changes = [
        StatusChange(referral_id, partner_id, status, ReferralStatus.rejected, cause)
        for referral_id, partner_id, status in rows
        if status is not ReferralStatus.rejected and ReferralStatus.rejected in ALLOWED[status]
    ]
    await transition(session, changes, now)
    rejected = [change.referral_id for change in changes]
    return rejected, [row[0] for row in rows if row[0] not in set(rejected)]
