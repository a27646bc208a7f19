from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.catalog.models import FeeSchedule
from app.conversions.models import ConversionEvent
from app.fees.engine import accrue, release_held
from app.fees.models import FeeAccrual
from tests.fees.conftest import RULES, START, Ledger, cny

E = Ledger.event


async def test_bounty_by_tier_with_top_up_in_the_qualification_period(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "L-1", START, national_id=person),
        E("account_funded", "L-1", START + timedelta(hours=1), **cny(200_000)),
        E("assets_snapshot", "L-1", START + timedelta(days=30), **cny(1_500_000)),
    )
    await ledger.release(START + timedelta(days=61))
    assert await ledger.summary(referral) == [("funded_bounty", 20_000, "payable"), ("tier_top_up", 130_000, "payable")]
    line = (await ledger.lines(referral))[1]
    assert line.arithmetic == {"from_tier": "retail", "to_tier": "hnw", "difference_of": [150_000, 20_000]}


async def test_no_bounty_below_the_minimum_until_assets_reach_it(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "L-2", START, national_id=person),
        E("account_funded", "L-2", START, **cny(5_000)),
    )
    assert await ledger.summary(referral) == []
    await ledger.events(E("account_funded", "L-2", START + timedelta(days=3), **cny(6_000)))
    await ledger.release(START + timedelta(days=34))
    assert await ledger.summary(referral) == [("funded_bounty", 20_000, "payable")]


async def test_bundle_fee_flat_plus_bps_clamped(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "L-3", START, national_id=person),
        E("bundle_purchased", "L-3", START, product_code="BANK_WM_PLUS_EQUITY", amount=333_333, currency="CNY"),
        E("bundle_purchased", "L-3", START, product_code="BANK_WM_PLUS_EQUITY", amount=10_000, currency="CNY"),
        E("bundle_purchased", "L-3", START, product_code="BANK_WM_PLUS_EQUITY", amount=10**12, currency="CNY"),
        E("bundle_purchased", "L-3", START, product_code="NOT_IN_SCHEDULE", amount=10**6, currency="CNY"),
    )
    amounts = sorted(amount for _, amount, _ in await ledger.summary(referral))
    # 10,000 + 333,333 x 0.3% = 10,999.999 -> min 12,000 | 10,000 + 30 -> 12,000 | max 500,000
    assert amounts == [12_000, 12_000, 500_000]


async def test_revenue_share_only_in_the_first_months(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "L-4", START, national_id=person),
        E("revenue_recorded", "L-4", START + timedelta(days=100), amount=12_345, currency="CNY"),
        E("revenue_recorded", "L-4", START + timedelta(days=400), amount=99_999, currency="CNY"),
    )
    await ledger.release(START + timedelta(days=431))
    assert await ledger.summary(referral) == [("revenue_share", 1_235, "payable")]  # 1,234.5 rounds half up


async def test_caps_cut_with_a_recorded_line(make_ledger) -> None:  # type: ignore[no-untyped-def]
    rules = {**RULES, "caps": {"per_referral_fen": 100_000}}
    ledger: Ledger = await make_ledger(rules)
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "L-5", START, national_id=person),
        E("account_funded", "L-5", START, **cny(2_000_000)),
        E("bundle_purchased", "L-5", START + timedelta(days=1), product_code="BANK_WM_PLUS_EQUITY", **cny(10_000)),
    )
    await ledger.release(START + timedelta(days=32))
    assert await ledger.summary(referral) == [
        ("funded_bounty", 150_000, "payable"),
        ("cap", -50_000, "payable"),
        ("bundle_fee", 13_000, "payable"),  # 10,000 flat + 0.3% of 1,000,000 fen
        ("cap", -13_000, "payable"),
    ]
    cap = (await ledger.lines(referral))[1]
    assert cap.arithmetic == {"cap": "per_referral", "line_fen": 150_000, "allowed_fen": 100_000}
    assert sum(line.amount_fen for line in await ledger.lines(referral)) == 100_000


async def test_partner_monthly_cap(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger({**RULES, "caps": {"per_partner_month_fen": 30_000}})
    first, first_person = await ledger.referral()
    second, second_person = await ledger.referral()
    await ledger.events(
        E("account_opened", "M-1", START, national_id=first_person),
        E("account_funded", "M-1", START, **cny(20_000)),
        E("account_opened", "M-2", START, national_id=second_person),
        E("account_funded", "M-2", START + timedelta(minutes=1), **cny(20_000)),
    )
    totals = [sum(line.amount_fen for line in await ledger.lines(referral)) for referral in (first, second)]
    assert totals == [20_000, 10_000]


async def test_hold_period_then_release(make_ledger, session) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral(datetime.now(UTC))
    now = datetime.now(UTC)
    await ledger.events(
        E("account_opened", "H-1", now, national_id=person), E("account_funded", "H-1", now, **cny(20_000)), now=now
    )
    [line] = await ledger.lines(referral)
    assert line.status == "pending" and line.hold_until == now + timedelta(days=30)
    assert await release_held(session, now + timedelta(days=29)) == 0
    assert await release_held(session, now + timedelta(days=30)) >= 1
    assert await ledger.summary(referral) == [("funded_bounty", 20_000, "payable")]


async def test_clawback_during_hold_cancels_and_after_hold_deducts(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    in_hold, in_hold_person = await ledger.referral(datetime.now(UTC))
    now = datetime.now(UTC)
    await ledger.events(
        E("account_opened", "C-1", now, national_id=in_hold_person),
        E("account_funded", "C-1", now, **cny(20_000)),
        E("account_closed", "C-1", now + timedelta(minutes=1)),
    )
    assert await ledger.summary(in_hold) == [("funded_bounty", 20_000, "reversed"), ("clawback", -20_000, "reversed")]

    paid, paid_person = await ledger.referral()
    await ledger.events(
        E("account_opened", "C-2", START, national_id=paid_person), E("account_funded", "C-2", START, **cny(20_000))
    )
    await ledger.release(START + timedelta(days=31))
    await ledger.events(E("assets_snapshot", "C-2", START + timedelta(days=60), **cny(1_000)))
    assert await ledger.summary(paid) == [("funded_bounty", 20_000, "payable"), ("clawback", -20_000, "payable")]


async def test_clawback_only_inside_the_clawback_period(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "C-3", START, national_id=person),
        E("account_funded", "C-3", START, **cny(20_000)),
        E("account_closed", "C-3", START + timedelta(days=181)),
    )
    await ledger.release(START + timedelta(days=212))
    assert await ledger.summary(referral) == [("funded_bounty", 20_000, "payable")]


async def test_bundle_cancelled_reverses_that_products_fee(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger(hold_period_days=0)  # the fee is payable when the cancellations come
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "C-4", START, national_id=person),
        E("bundle_purchased", "C-4", START, product_code="BANK_WM_PLUS_EQUITY", **cny(100_000)),
        E("bundle_cancelled", "C-4", START + timedelta(days=10), product_code="BANK_WM_PLUS_EQUITY", **cny(100_000)),
        E("bundle_cancelled", "C-4", START + timedelta(days=11), product_code="BANK_WM_PLUS_EQUITY", **cny(100_000)),
    )
    assert await ledger.summary(referral) == [("bundle_fee", 40_000, "payable"), ("clawback", -40_000, "payable")]


async def test_replay_and_rerun_are_no_ops(make_ledger, session) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    events = [E("account_opened", "R-1", START, national_id=person), E("account_funded", "R-1", START, **cny(20_000))]
    await ledger.events(*events)
    assert await ledger.events(*events) == ["duplicate", "duplicate"]
    stored = list((await session.scalars(select(ConversionEvent).where(ConversionEvent.client_ref == "R-1"))).all())
    from app.conversions.models import ClientAccount
    from app.referrals.models import Referral

    accounts = {"R-1": await session.get(ClientAccount, "R-1")}
    referrals = {referral: await session.get(Referral, referral)}
    assert await accrue(session, stored, accounts, referrals, datetime.now(UTC)) == 0  # type: ignore[arg-type]
    assert len(await ledger.lines(referral)) == 1


async def test_the_version_in_force_on_the_event_day_prices_it_and_is_frozen(make_ledger, session) -> None:  # type: ignore[no-untyped-def]
    ledger: Ledger = await make_ledger()
    referral, person = await ledger.referral()
    await ledger.events(
        E("account_opened", "V-1", START, national_id=person), E("account_funded", "V-1", START, **cny(20_000))
    )
    [line] = await ledger.lines(referral)
    schedule = await session.get(FeeSchedule, line.fee_schedule_id)
    assert schedule is not None and schedule.first_accrual_at is not None
    assert line.source_key.endswith(":funded_bounty")
    assert (await session.scalar(select(FeeAccrual.external_ref).where(FeeAccrual.id == line.id))) is not None
