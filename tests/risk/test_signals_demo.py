"""No false positives: the demo's year of normal traffic (loaded as ``make run`` loads it, the signal job running
daily as the worker would) opens no case but those of the patterns the demo plants on purpose."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core import clock
from app.risk.detectors import Window
from app.risk.signals import detect
from tests.demo.conftest import LoadedDemo, demo, demo_database

__all__ = ["demo", "demo_database"]


async def test_the_demo_year_opens_no_case_but_the_planted_ones(demo: LoadedDemo) -> None:
    raised = await demo.fetch(
        "SELECT s.kind, c.partner_id, s.fingerprint, s.evidence FROM risk_signals AS s "
        "JOIN risk_cases AS c ON c.id = s.case_id ORDER BY s.fingerprint"
    )
    for row in raised:
        print("RAISED", row["kind"], row["partner_id"], row["fingerprint"], row["evidence"])

    # The whole history at once, over a lookback that covers it: the same findings, no others.
    everything = demo.settings.model_copy(update={"risk_lookback_days": 730})
    async with demo.database.sessionmaker() as session:
        found = await detect(session, Window(datetime(2000, 1, 1, tzinfo=UTC), clock.now(), everything))
    for signal in found:
        print("FOUND", signal.kind, signal.partner_id, signal.fingerprint, signal.evidence)
    assert not raised and not found
