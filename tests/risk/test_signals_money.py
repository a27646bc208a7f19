"""Accounts funded then emptied or closed inside the hold period; bundles bought then cancelled in the cooling-off
period, again and again."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import Settings
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, national_id
from tests.risk.conftest import cny, event, report, run_signals, submit
from tests.risk.outcomes import Books, hold_then_close_case, pay_fees


async def _funded_client(
    client: httpx.AsyncClient, desk: PartnerDesk, feed: Caller, client_ref: str, yuan: int = 200_000
) -> str:
    """A client referred four days ago, whose account opened three days ago and was funded two days ago."""
    person = national_id()
    manual = clock.current()
    assert isinstance(manual, clock.ManualClock)
    now = manual.now()
    manual.move_to(now - timedelta(days=4))
    referral = await submit(client, desk, national_id=person)
    manual.move_to(now)
    await report(
        client,
        feed,
        event("account_opened", client_ref, now - timedelta(days=3), national_id=person),
        event("account_funded", client_ref, now - timedelta(days=2), **cny(yuan)),
    )
    return str(referral["id"])


async def test_accounts_funded_then_emptied_or_closed_inside_the_hold(
    manager: Caller,
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    feed: Caller,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    ring = [await _funded_client(client, bank, feed, f"RING-{n}") for n in range(3)]
    kept = await _funded_client(client, bank, feed, "KEPT-1")
    now = clock.now()
    await report(
        client,
        feed,
        event("assets_snapshot", "RING-0", now - timedelta(days=1), **cny(1_000)),  # 0.5 % of what came in
        event("assets_snapshot", "RING-1", now - timedelta(days=1), **cny(0)),
        event("account_closed", "RING-1", now - timedelta(hours=12)),
        event("account_closed", "RING-2", now - timedelta(hours=1)),
        event("assets_snapshot", "KEPT-1", now - timedelta(days=1), **cny(150_000)),  # a normal dip
    )
    # Another partner's one client that left: one account is not a ring.
    await _funded_client(client, other_bank, feed, "ALONE-1")
    await report(client, feed, event("account_closed", "ALONE-1", now))

    found = [
        signal
        for signal in await run_signals(client, manager, session, settings)
        if signal.kind == "funded_then_emptied"
    ]

    assert [(signal.partner_id, set(signal.referral_ids)) for signal in found] == [(bank.partner.id, set(ring))]
    observed = found[0].evidence["observed"]
    assert observed["accounts_funded"] == 4 and observed["accounts_emptied_or_closed"] == 3
    assert observed["accounts_closed"] == 2 and observed["rate_bp"] == 7500
    assert kept not in found[0].referral_ids
    assert found[0].evidence["thresholds"]["accounts"] == settings.risk_emptied_accounts


async def test_bundles_cancelled_in_the_cooling_off_period_again_and_again(
    manager: Caller,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    feed: Caller,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    await pay_fees(session, bank)  # each funded client earns a bounty; the bundles earn nothing
    now = clock.now()
    churned = []
    for n in range(5):
        churned.append(await _funded_client(client, bank, feed, f"CHURN-{n}"))
        await report(
            client,
            feed,
            event("bundle_purchased", f"CHURN-{n}", now - timedelta(days=1), product_code="INS_A", **cny(10_000)),
            event("bundle_cancelled", f"CHURN-{n}", now - timedelta(hours=2), product_code="INS_A", **cny(10_000)),
        )
    # The other partner: its clients keep their bundles, but for one.
    for n in range(5):
        await _funded_client(client, other_bank, feed, f"KEEP-{n}")
        await report(
            client,
            feed,
            event("bundle_purchased", f"KEEP-{n}", now - timedelta(days=1), product_code="INS_A", **cny(10_000)),
        )
    await report(client, feed, event("bundle_cancelled", "KEEP-0", now, product_code="INS_A", **cny(10_000)))

    found = [
        signal for signal in await run_signals(client, manager, session, settings) if signal.kind == "bundle_churn"
    ]

    assert [(signal.partner_id, set(signal.referral_ids)) for signal in found] == [(bank.partner.id, set(churned))]
    observed = found[0].evidence["observed"]
    assert observed["bundles_purchased"] == 5 and observed["bundles_cancelled_in_cooling_off"] == 5
    assert observed["rate_bp"] == 10_000
    assert found[0].evidence["thresholds"]["cooling_off_days"] == settings.risk_cooling_off_days

    await hold_then_close_case(Books(client, session, caller), bank, found[0], "cleared")
