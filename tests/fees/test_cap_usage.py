"""``fee_cap_usage`` is what the ledger sums to, whatever wrote the lines: accrual with caps that bind, clawbacks
inside the hold (both lines reversed) and after it (a payable negative line), and attribution moves (the old
holder's lines reversed, the new holder's accrued)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import timezone_name
from app.referrals.overrides import move_attribution
from tests.factories.referrals import national_id
from tests.fees.conftest import ACTOR, RULES, START, Ledger, cny
from tests.fees.test_moves import _claim, _received_before_start

E = Ledger.event
CAPPED = {**RULES, "caps": {"per_referral_fen": 300_000, "per_partner_month_fen": 450_000}}
BUNDLE = {"product_code": "BANK_WM_PLUS_EQUITY", **cny(100_000)}

_DIFFERENCES = text(
    """
    SELECT coalesce(u.partner_id, l.partner_id), coalesce(u.month, l.month), u.used_fen, l.used
    FROM fee_cap_usage AS u
    FULL JOIN (SELECT partner_id, to_char(occurred_at AT TIME ZONE :zone, 'YYYY-MM') AS month, sum(amount_fen) AS used
               FROM fee_accruals
               WHERE rule IN ('funded_bounty', 'tier_top_up', 'bundle_fee', 'revenue_share', 'cap',
                              'attribution_moved')
                 AND status <> 'reversed'
               GROUP BY 1, 2) AS l
      ON l.partner_id = u.partner_id AND l.month = u.month
    WHERE coalesce(u.used_fen, 0) <> coalesce(l.used, 0)
    """
)


async def _differences(session: AsyncSession) -> list[Any]:
    return list((await session.execute(_DIFFERENCES, {"zone": timezone_name()})).all())


async def test_usage_equals_the_ledger_after_events_clawbacks_and_moves(
    make_ledger: Any, session: AsyncSession
) -> None:
    held: Ledger = await make_ledger(CAPPED)  # 30-day hold: a clawback inside it cancels
    payable: Ledger = await make_ledger(CAPPED, hold_period_days=0)  # no hold: a clawback deducts
    mover: Ledger = await make_ledger(CAPPED)  # the partner an attribution is moved away from
    target: Ledger = await make_ledger(RULES)

    for ledger, prefix in ((held, "H"), (payable, "P")):
        for n in range(4):
            _referral, person = await ledger.referral()
            client = f"{prefix}-{n}"
            start = START + timedelta(days=20 * n)  # across two business months
            events = [
                E("account_opened", client, start, national_id=person),
                E("account_funded", client, start + timedelta(hours=1), **cny(2_000_000 if n % 2 else 20_000)),
                E("bundle_purchased", client, start + timedelta(hours=2), **BUNDLE),
                E("revenue_recorded", client, start + timedelta(days=3), **cny(50_000)),
            ]
            assert set(await ledger.events(*events)) == {"applied"}
            if n % 2 == 0:
                await ledger.events(E("bundle_cancelled", client, start + timedelta(days=4), **BUNDLE))
            if n == 3:
                await ledger.events(E("account_closed", client, start + timedelta(days=6)))
    assert await _differences(session) == []
    assert (await session.scalar(text("SELECT count(*) FROM fee_accruals WHERE rule = 'cap'"))) > 0
    assert (await session.scalar(text("SELECT count(*) FROM fee_accruals WHERE status = 'reversed'"))) > 0

    # An attribution move away from a referral with held and capped lines, to another partner's referral.
    person = national_id()
    holder, later = await _claim(mover, person), await _claim(target, person)
    await _received_before_start(session, holder, later)
    await mover.events(
        E("account_opened", "M-1", START, national_id=person),
        E("account_funded", "M-1", START + timedelta(hours=1), **cny(8_000_000)),
        E("bundle_purchased", "M-1", START + timedelta(hours=2), **BUNDLE),
    )
    moved = await move_attribution(session, ACTOR, later, "consent evidence of the other bank predates")
    assert moved.moved and moved.reversed.net_fen < 0
    assert await _differences(session) == []
    # The new holder's later events accrue on top, with the old holder's month given back.
    await target.events(E("revenue_recorded", "M-1", START + timedelta(days=5), **cny(80_000)))
    assert await _differences(session) == []
