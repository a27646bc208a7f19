"""Where found signals go: ``app.risk.service.raise_signal``, which opens (or finds, by fingerprint) the case.

Until the cases side is merged, this is the thin adapter the signal job and its tests talk to: it keeps what was
raised in the session's ``info`` so that a test (or a caller) can read it back."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.risk.detectors import Detected

RAISED = "risk_signals_raised"


async def raise_detected(session: AsyncSession, found: list[Detected]) -> int:
    """Raise each signal; how many were raised."""
    raised: dict[str, Detected] = session.info.setdefault(RAISED, {})
    for signal in found:
        raised.setdefault(signal.fingerprint, signal)
    return len(found)
