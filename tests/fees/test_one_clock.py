"""One clock (DESIGN.md, "Time"): every rule reads ``app.core.clock``, so a test moves time by moving the clock,
not by rewriting rows, and a window's expiry or a hold's release happens only once the clock has passed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.clock import ManualClock
from app.core.config import Settings
from app.worker import jobs
from tests.conftest import CallerFactory
from tests.factories.referrals import individual
from tests.fees.conftest import RULES, Ledger, cny

# Far from the real time on purpose: whatever the rules do here, they can only have learnt it from the clock.
MARCH = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
E = Ledger.event


async def test_a_referral_expires_only_once_the_clock_passes_its_window(
    client: httpx.AsyncClient, make_desk: Any, session: AsyncSession, settings: Settings, manual_clock: ManualClock
) -> None:
    manual_clock.move_to(MARCH)
    desk = await make_desk(attribution_window_days=90)
    submitted = await client.post("/v1/referrals", json=individual(desk.program.id), headers=desk.headers())
    assert submitted.status_code == 201, submitted.text
    referral = submitted.json()
    assert datetime.fromisoformat(referral["window_ends_at"]) == MARCH + timedelta(days=90)

    async def status() -> str:
        response = await client.get(f"/v1/referrals/{referral['id']}", headers=desk.caller.headers)
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    manual_clock.advance(timedelta(days=90) - timedelta(seconds=1))
    assert await jobs.expire_referrals(session, settings, clock.now()) == 0
    assert await status() == "eligible"
    manual_clock.advance(timedelta(seconds=1))
    assert await jobs.expire_referrals(session, settings, clock.now()) == 1
    assert await status() == "expired"


async def test_a_fee_is_held_until_the_clock_passes_the_hold(
    make_ledger: Any,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    session: AsyncSession,
    settings: Settings,
    manual_clock: ManualClock,
) -> None:
    manual_clock.move_to(MARCH)
    ledger: Ledger = await make_ledger(RULES, hold_period_days=30)
    referral_id, person = await ledger.referral(MARCH)
    manual_clock.advance(timedelta(days=2))  # the back office reports the funding two days after it happened
    events = [
        E("account_opened", "CLK-1", MARCH, national_id=person),
        E("account_funded", "CLK-1", MARCH + timedelta(hours=1), **cny(20_000)),
    ]
    feed = await caller("back_office")
    response = await client.post("/v1/conversion-events", json={"events": events}, headers=feed.headers)
    assert [item["result"] for item in response.json()["results"]] == ["applied", "applied"], response.text
    recorded = clock.now()
    [line] = await ledger.lines(referral_id)
    assert (line.status, line.hold_until) == ("pending", recorded + timedelta(days=30))

    manual_clock.move_to(recorded + timedelta(days=30) - timedelta(seconds=1))
    assert await jobs.release_held_fees(session, settings, clock.now()) == 0
    manual_clock.advance(timedelta(seconds=1))
    assert await jobs.release_held_fees(session, settings, clock.now()) == 1
    assert await ledger.summary(referral_id) == [("funded_bounty", 20_000, "payable")]
