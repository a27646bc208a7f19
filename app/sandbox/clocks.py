"""Reading partners' test clocks: small on purpose, so that the principal dependency and the worker can ask it
without importing the sandbox's jobs (no cycle through ``app.auth``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.clock import FrozenClock
from app.sandbox.models import SandboxClock


async def partner_clock(session: AsyncSession, partner_id: str) -> FrozenClock | None:
    """The partner's test clock, or None when the partner follows real time (one primary-key lookup)."""
    moment = await session.scalar(select(col(SandboxClock.now)).where(col(SandboxClock.partner_id) == partner_id))
    return FrozenClock(moment) if moment is not None else None


async def clocked_partner_ids(session: AsyncSession) -> tuple[str, ...]:
    """Every partner that has a test clock: real-time jobs leave them alone (their clock runs their jobs)."""
    return tuple((await session.scalars(select(col(SandboxClock.partner_id)).order_by("partner_id"))).all())
