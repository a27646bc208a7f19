"""Where found signals go: ``app.risk.service.raise_signal``, which opens the partner's case (or joins its open
one) and holds the fee lines of the referrals named; a fingerprint raised before adds nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.risk.detectors import Detected
from app.risk.models import RiskSignal
from app.risk.schemas import Signal, SignalKind
from app.risk.service import raise_signal

# A signal names at most this many referrals (the contract's bound); the evidence says how many there were.
MAX_REFERRALS = 10_000


def as_signal(found: Detected) -> Signal:
    evidence = dict(found.evidence)
    if len(found.referral_ids) > MAX_REFERRALS:
        evidence["referrals_named"] = {"of": len(found.referral_ids), "named": MAX_REFERRALS}
    return Signal(
        kind=SignalKind(found.kind),
        partner_id=found.partner_id,
        referral_ids=found.referral_ids[:MAX_REFERRALS],
        evidence=evidence,
        fingerprint=found.fingerprint,
    )


async def raise_detected(session: AsyncSession, found: list[Detected], now: datetime) -> int:
    """Raise each signal not raised before; how many were new (one query finds those known already)."""
    if not found:
        return 0
    fingerprints = [signal.fingerprint for signal in found]
    known = set(
        (
            await session.scalars(
                select(col(RiskSignal.fingerprint)).where(col(RiskSignal.fingerprint).in_(fingerprints))
            )
        ).all()
    )
    fresh = {signal.fingerprint: signal for signal in found if signal.fingerprint not in known}
    for signal in fresh.values():
        await raise_signal(session, as_signal(signal), now=now)
    return len(fresh)
