"""A signal's case holds the fee lines it names: the next month close leaves them out of the statement; confirmed,
they are reversed and the referrals rejected. (Accounts funded then emptied inside the hold, kept above the bounty's
minimum so that their lines still stand: ``test_signals_money.py`` empties them below it, and the engine claws the
bounties back.)"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.business_time import month_of
from app.core.config import Settings
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import national_id
from tests.risk.conftest import cny, event, report, run_signals, submit
from tests.risk.outcomes import Books, hold_then_close_case, pay_fees


async def test_the_ring_s_lines_stay_out_of_the_close_and_confirming_reverses_them(
    manager: Caller,
    client: httpx.AsyncClient,
    make_desk: Any,
    caller: CallerFactory,
    feed: Caller,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    month = month_of(month_of(manual_clock.now()).start - timedelta(days=1))  # last month
    manual_clock.move_to(month.start + timedelta(days=1))
    desk = await make_desk(name="环形银行", hold_period_days=5, effective_from=date(2025, 1, 1))
    await pay_fees(session, desk)
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

    held = await hold_then_close_case(Books(client, session, caller), desk, found[0], "confirmed")
    statements = [item for item in held["statements"] if item["partner_id"] == desk.partner.id]
    assert [item["line_count"] for item in statements] == [1]  # the kept client's line only
