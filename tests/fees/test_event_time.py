"""Late and future events (DESIGN.md, "Time"): the hold runs from when the platform records a line, never from
an earlier ``occurred_at``; events dated beyond the accepted clock skew in the future are refused one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversions import service as conversions
from app.conversions.models import ConversionEvent
from app.core.business_time import month_of
from app.core.config import Settings
from app.fees.engine import release_held
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from tests.conftest import Caller, CallerFactory
from tests.fees.conftest import Ledger, cny

E = Ledger.event
EVENTS = "/v1/conversion-events"
HOLD = timedelta(days=30)


@pytest.fixture
async def feed(caller: CallerFactory) -> Caller:
    return await caller("back_office")


async def send(client: httpx.AsyncClient, feed: Caller, *events: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(EVENTS, json={"events": list(events)}, headers=feed.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def every_earning(client_ref: str, person: str, opened: datetime) -> list[dict[str, Any]]:
    """A client's history that earns every kind of line: bounty, tier top-up, bundle fee, revenue share."""
    return [
        E("account_opened", client_ref, opened, national_id=person),
        E("account_funded", client_ref, opened + timedelta(hours=1), **cny(200_000)),
        E("assets_snapshot", client_ref, opened + timedelta(days=2), **cny(1_500_000)),
        E(
            "bundle_purchased",
            client_ref,
            opened + timedelta(days=3),
            product_code="BANK_WM_PLUS_EQUITY",
            **cny(10_000),
        ),
        E("revenue_recorded", client_ref, opened + timedelta(days=4), **cny(500)),
    ]


@pytest.mark.parametrize("late", [timedelta(minutes=10), timedelta(days=3), timedelta(weeks=7), timedelta(days=85)])
async def test_late_events_are_accepted_and_every_line_waits_its_whole_hold(
    late: timedelta,
    make_ledger: Any,
    client: httpx.AsyncClient,
    feed: Caller,
    session: AsyncSession,
) -> None:
    ledger: Ledger = await make_ledger()
    opened = datetime.now(UTC) - late - timedelta(days=4)
    referral, person = await ledger.referral(opened)
    before = datetime.now(UTC)
    results = await send(client, feed, *every_earning(f"LATE-{late.days}-{late.seconds}", person, opened))
    after = datetime.now(UTC)
    assert [item["result"] for item in results] == ["applied"] * 5

    lines = (await session.scalars(select(FeeAccrual).where(FeeAccrual.referral_id == referral))).all()
    assert {line.rule for line in lines} == {
        FeeRule.funded_bounty,
        FeeRule.tier_top_up,
        FeeRule.bundle_fee,
        FeeRule.revenue_share,
    }
    for line in lines:
        assert line.status is AccrualStatus.pending
        assert before + HOLD <= line.hold_until <= after + HOLD  # from the recording, not from occurred_at
    assert await release_held(session, before + HOLD - timedelta(minutes=1)) == 0
    assert await release_held(session, after + HOLD) == len(lines)


async def test_a_funding_reported_weeks_late_is_not_due_by_the_end_of_last_month(
    make_ledger: Any, client: httpx.AsyncClient, feed: Caller, caller: CallerFactory, session: AsyncSession
) -> None:
    ledger: Ledger = await make_ledger()
    last_month = month_of(month_of(datetime.now(UTC)).start - timedelta(seconds=1))
    # Counted from occurred_at, its hold would have ended inside last month: it would be on that statement.
    funded_at = last_month.end - timedelta(days=1) - HOLD
    referral, person = await ledger.referral(funded_at)
    await send(
        client,
        feed,
        E("account_opened", "LATE-S", funded_at, national_id=person),
        E("account_funded", "LATE-S", funded_at, **cny(20_000)),
    )
    finance = await caller("staff", role="finance")
    closed = await client.post(f"/v1/finance/periods/{last_month.name}/close", headers=finance.headers)
    assert closed.status_code == 200, closed.text
    assert ledger.partner_id not in {statement["partner_id"] for statement in closed.json()["statements"]}
    [line] = (await session.scalars(select(FeeAccrual).where(FeeAccrual.referral_id == referral))).all()
    await session.refresh(line)
    assert (line.status, line.statement_id) == (AccrualStatus.pending, None)


@pytest.mark.parametrize(
    "ahead",
    [timedelta(seconds=330), timedelta(hours=1), timedelta(days=3), timedelta(days=3650)],
)
async def test_events_dated_beyond_the_clock_skew_are_refused_one_by_one(
    ahead: timedelta, make_ledger: Any, client: httpx.AsyncClient, feed: Caller, session: AsyncSession
) -> None:
    ledger: Ledger = await make_ledger()
    now = datetime.now(UTC)
    _, person = await ledger.referral(now - timedelta(days=1))
    future = E("account_funded", "FUT-1", now + ahead, **cny(20_000))
    results = await send(
        client,
        feed,
        E("account_opened", "FUT-1", now - timedelta(minutes=1), national_id=person),
        future,
        E("assets_snapshot", "FUT-1", now + timedelta(seconds=240), **cny(20_000)),  # inside the skew
    )
    assert [item["result"] for item in results] == ["applied", "rejected", "applied"]
    reason = results[1]["reason"]
    assert reason.startswith("occurred_at:") and "future" in reason
    assert future["occurred_at"] not in reason and str((now + ahead).year) not in reason  # no echo of the input
    assert results[1]["source_event_id"] == future["source_event_id"]
    stored = await session.scalar(
        select(ConversionEvent.id).where(ConversionEvent.source_event_id == future["source_event_id"])
    )
    assert stored is None  # refused, not kept: the same id can be sent again once corrected


async def test_the_clock_skew_is_a_setting(
    make_ledger: Any,
    client: httpx.AsyncClient,
    feed: Caller,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strict = settings.model_copy(update={"event_clock_skew_s": 0})
    monkeypatch.setattr(conversions, "get_settings", lambda: strict)
    ledger: Ledger = await make_ledger()
    now = datetime.now(UTC)
    _, person = await ledger.referral(now - timedelta(days=1))
    results = await send(client, feed, E("account_opened", "SKEW-0", now + timedelta(seconds=20), national_id=person))
    assert results[0]["result"] == "rejected" and "0 seconds" in results[0]["reason"]


async def test_a_clawback_reported_late_is_due_from_its_recording(
    make_ledger: Any, client: httpx.AsyncClient, feed: Caller, caller: CallerFactory, session: AsyncSession
) -> None:
    ledger: Ledger = await make_ledger()
    last_month = month_of(month_of(datetime.now(UTC)).start - timedelta(seconds=1))
    funded_at = last_month.start - timedelta(days=40)
    referral, person = await ledger.referral(funded_at)
    await ledger.events(
        E("account_opened", "LATE-C", funded_at, national_id=person),
        E("account_funded", "LATE-C", funded_at, **cny(20_000)),
    )  # reported on time: its hold ended before last month began
    await ledger.release(last_month.start)
    closed_at = last_month.end - timedelta(days=1)
    [result] = await send(client, feed, E("account_closed", "LATE-C", closed_at))
    assert result["result"] == "applied"

    finance = await caller("staff", role="finance")
    response = await client.post(f"/v1/finance/periods/{last_month.name}/close", headers=finance.headers)
    assert response.status_code == 200, response.text
    [statement] = [item for item in response.json()["statements"] if item["partner_id"] == ledger.partner_id]
    assert statement["lines_total_fen"] == 20_000  # the bounty; the clawback came after the month was over
    lines = {line.rule: line for line in await ledger.lines(referral)}
    await session.refresh(lines[FeeRule.clawback])
    clawback = lines[FeeRule.clawback]
    assert (clawback.amount_fen, clawback.status, clawback.statement_id) == (-20_000, AccrualStatus.payable, None)
    assert clawback.hold_until >= last_month.end
