"""A signal's case holds the fee lines it names: the next month close leaves them out of the statement."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.schemas import FeeRules, FeeScheduleCreate
from app.core import clock
from app.core.business_time import month_of
from app.core.config import Settings
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import national_id
from tests.fees.conftest import RULES
from tests.risk.conftest import cny, event, report, run_signals, submit


async def test_the_ring_s_lines_stay_out_of_the_next_close(
    manager: Caller,
    client: httpx.AsyncClient,
    make_desk: Any,
    caller: CallerFactory,
    feed: Caller,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    real_now = manual_clock.now()
    month = month_of(month_of(real_now).start - timedelta(days=1))  # last month, closed below
    manual_clock.move_to(month.start + timedelta(days=1))
    desk = await make_desk(name="环形银行", hold_period_days=5, effective_from=date(2025, 1, 1))
    schedule = await catalog.create_fee_schedule(
        session,
        Actor.system("test"),
        FeeScheduleCreate(
            program_id=desk.program.id,
            effective_from=date(2025, 1, 1),
            rules=FeeRules.model_validate({**RULES, "bundle_fees": []}),
        ),
    )
    await catalog.activate_fee_schedule(session, Actor.system("test"), schedule.id)
    people = [national_id() for _ in range(4)]
    referrals = [(await submit(client, desk, national_id=person))["id"] for person in people]
    manual_clock.advance(timedelta(days=1))
    for n, person in enumerate(people):
        await report(
            client,
            feed,
            event("account_opened", f"HOLD-{n}", national_id=person),
            event("account_funded", f"HOLD-{n}", **cny(200_000)),
        )
    # Inside the five days' hold, three accounts are emptied down to 7.5 % of what came in: above the bounty's
    # minimum (no clawback), so their lines would be paid but for the case.
    manual_clock.advance(timedelta(days=1))
    await report(client, feed, *(event("assets_snapshot", f"HOLD-{n}", **cny(15_000)) for n in range(3)))

    found = [
        signal
        for signal in await run_signals(client, manager, session, settings)
        if signal.kind == "funded_then_emptied"
    ]
    assert [set(signal.referral_ids) for signal in found] == [set(referrals[:3])]

    manual_clock.move_to(real_now)
    finance = await caller("staff", role="finance")
    closed = await client.post(f"/v1/finance/periods/{month.name}/close", headers=finance.headers)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["under_review"]["lines"] == 3 and body["under_review"]["partners"] >= 1
    statements = [item for item in body["statements"] if item["partner_id"] == desk.partner.id]
    assert [item["line_count"] for item in statements] == [1]  # the kept client's line only
