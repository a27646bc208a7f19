"""The risk signal job (DESIGN.md, "Risk"): shortly after events arrive, the worker runs the six detectors over
what arrived since its last look and raises what they find (``app.risk.service.raise_signal`` opens the case,
which holds the fee lines of the referrals it names). Each detector is one set-based statement; thresholds are
settings (``ALLIANCE_RISK_*``).

The look is kept per scope (``app.risk.watermarks``): the worker's real-time run for every partner without a
sandbox test clock, and a clock's advance for its own partner at the clock's instants."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.risk import watermarks
from app.risk.detectors import Detected, Window
from app.risk.detectors.money import bundle_churn, funded_then_emptied
from app.risk.detectors.people import reused_consent, shared_mobile
from app.risk.detectors.volume import outlier_rates, referral_burst
from app.risk.sink import raise_detected

Detector = Callable[[AsyncSession, Window], Awaitable[list[Detected]]]

DETECTORS: tuple[Detector, ...] = (
    shared_mobile,
    referral_burst,
    reused_consent,
    funded_then_emptied,
    bundle_churn,
    outlier_rates,
)
# Rows committed by transactions still in flight at the last look carry an earlier time: looked at again.
IN_FLIGHT_MARGIN = timedelta(minutes=5)


async def detect(session: AsyncSession, window: Window) -> list[Detected]:
    """Every signal in ``window``, detector by detector (one statement each)."""
    found: list[Detected] = []
    for detector in DETECTORS:
        found.extend(await detector(session, window))
    return found


async def raise_risk_signals(
    session: AsyncSession, settings: Settings, now: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> int:
    """The worker job: detect over what arrived since the last look of this scope (the lookback on the first
    run), raise what was found, move the look to ``now``. Returns how many signals were raised."""
    scope = watermarks.scope_of(partners)
    last = await watermarks.last_look(session, scope)
    lookback = now - timedelta(days=settings.risk_lookback_days)
    since = max(last - IN_FLIGHT_MARGIN, lookback) if last is not None else lookback
    found = await detect(session, Window(since, now, settings, partners)) if since < now else []
    await watermarks.looked(session, scope, now)
    return await raise_detected(session, found, now)
