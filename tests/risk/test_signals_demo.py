"""No false positives: the demo's year of normal traffic (loaded as ``make run`` loads it, the signal job running
weekly with the other jobs, as the worker would run it) opens no case but those of the two patterns the demo
plants on purpose (``app.demo.story._Planted``): an insurer's agent's mobile number on four clients, and a ring
of six bank VIPs funded then emptied inside the hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.core import clock
from app.core.business_time import business_day
from app.demo.story import BANK, INSURER
from app.risk.detectors import Window
from app.risk.detectors.volume import referral_burst
from app.risk.signals import detect
from tests.demo.conftest import LoadedDemo, demo, demo_database

__all__ = ["demo", "demo_database"]
PLANTED = {("shared_mobile", INSURER), ("funded_then_emptied", BANK)}
RING_ACCOUNTS = 6
# Accounts funded and then closed, or left with at most the threshold's share of the funding, inside the program's
# hold: written here from DESIGN.md's words, not taken from the detector.
EMPTIED_INSIDE_THE_HOLD = """
    SELECT DISTINCT r.id FROM referrals AS r
    JOIN programs AS p ON p.id = r.program_id
    JOIN conversion_events AS funded ON funded.referral_id = r.id
         AND funded.type = 'account_funded' AND funded.amount_fen > 0
    JOIN conversion_events AS later ON later.client_ref = funded.client_ref
         AND later.occurred_at >= funded.occurred_at
         AND later.occurred_at < funded.occurred_at + p.hold_period_days * interval '1 day'
    WHERE r.partner_id = $1
      AND (later.type = 'account_closed'
           OR (later.type = 'assets_snapshot' AND later.amount_fen * 10000 <= funded.amount_fen * $2))
"""


async def test_the_demo_year_opens_no_case_but_the_planted_ones(demo: LoadedDemo) -> None:
    raised = await demo.fetch(
        "SELECT s.kind, c.partner_id, c.status, s.referral_ids, s.evidence FROM risk_signals AS s "
        "JOIN risk_cases AS c ON c.id = s.case_id ORDER BY s.raised_at"
    )
    assert {(row["kind"], row["partner_id"]) for row in raised} == PLANTED
    assert {row["status"] for row in raised} == {"open"}  # for the console to show

    named: dict[str, set[str]] = {kind: set() for kind, _ in PLANTED}
    for row in raised:
        named[row["kind"]] |= set(json.loads(row["referral_ids"]))
    recycled = await demo.fetch(
        "SELECT id FROM referrals WHERE partner_id = $1 AND mobile_hash IN ("
        " SELECT mobile_hash FROM referrals GROUP BY mobile_hash HAVING count(DISTINCT identity_hash) > 1)",
        INSURER,
    )
    assert named["shared_mobile"] == {row["id"] for row in recycled} and len(recycled) == 4
    # The ring's six, submitted in one of the bank's syncs, and whichever clients of the bank's own traffic emptied
    # their accounts in the same weeks (how many depends on the day the demo is loaded): the signal names only
    # accounts emptied inside the hold.
    threshold = demo.settings.risk_emptied_below_bp
    emptied = {row["id"] for row in await demo.fetch(EMPTIED_INSIDE_THE_HOLD, BANK, threshold)}
    assert named["funded_then_emptied"] <= emptied
    submitted_together = await demo.fetch(
        "SELECT count(*) AS n FROM referrals WHERE id = ANY($1::text[]) GROUP BY created_at ORDER BY n DESC LIMIT 1",
        sorted(named["funded_then_emptied"]),
    )
    assert submitted_together[0]["n"] >= RING_ACCOUNTS

    # The whole year at once, over a lookback that covers it: nothing but the planted patterns.
    everything = demo.settings.model_copy(update={"risk_lookback_days": 730})
    async with demo.database.sessionmaker() as session:
        found = await detect(session, Window(datetime(2000, 1, 1, tzinfo=UTC), clock.now(), everything))
        # And the burst at the end of every day of the year, not only when the weekly job looked.
        first = (await demo.fetch("SELECT min(created_at) AS at FROM referrals"))[0]["at"]
        day = business_day(first)
        while day <= business_day(clock.now()):
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            found += await referral_burst(session, Window(end - timedelta(days=1), end, demo.settings))
            day += timedelta(days=1)
    assert {(signal.kind, signal.partner_id) for signal in found} <= PLANTED, [
        (signal.kind, signal.partner_id, signal.evidence) for signal in found
    ]
