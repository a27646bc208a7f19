"""The overview's figures against counts taken here, straight from the referrals' timelines: the story's
January-March 2026, and the cards, the funnel and the monthly trend adding up to one another."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog.models import PartnerKind
from app.console.manager import overview, periods
from app.core.tenancy import Tenant
from tests.reports.conftest import Book

STAFF = Tenant.everyone(Actor(id="person:test", kind="staff"))
TODAY = date(2026, 12, 3)


async def _reached(session: AsyncSession, start: str, end: str, stage: str) -> int:
    """Referrals received (Beijing days) in [start, end] whose timeline ever reached ``stage``."""
    return int(
        await session.scalar(
            text(
                "SELECT count(DISTINCT r.id) FROM referrals r JOIN referral_events e ON e.referral_id = r.id "
                "WHERE (r.created_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN :start AND :end "
                "AND e.to_status::text = :stage"
            ),
            {"start": date.fromisoformat(start), "end": date.fromisoformat(end), "stage": stage},
        )
        or 0
    )


async def test_the_funnel_and_cards_count_what_the_timelines_hold(session: AsyncSession, book: Book) -> None:
    period = periods.parse("2026-Q1", TODAY)
    assert period is not None
    view = await overview.overview(session, STAFF, period)

    steps = {step.stage: step.count for step in view.funnel}
    for stage in ("received", "eligible", "account_opened", "funded", "converted"):
        assert steps[stage] == await _reached(session, "2026-01-01", "2026-03-31", stage), stage
    # The story: ten referrals in the quarter, eight eligible, six opened, five funded, three converted.
    assert [step.count for step in view.funnel] == [10, 8, 6, 5, 3]
    assert [step.rate for step in view.funnel[1:]] == [0.8, 0.75, round(5 / 6, 4), 0.6]

    cards = {card.label: card for card in view.headlines}
    assert cards["Referrals received"].value == 10
    assert cards["Converted"].value == 3
    assert cards["Conversion rate"].shown == "30.0%"
    # The quarter before (October-December 2025) holds R11 alone: received 1, opened 1.
    assert cards["Referrals received"].previous == 1
    assert cards["Referrals received"].change == 9.0


async def test_the_monthly_trend_by_channel_adds_up_to_the_cards(session: AsyncSession, book: Book) -> None:
    period = periods.parse("2026-Q1", TODAY)
    assert period is not None
    view = await overview.overview(session, STAFF, period)

    assert view.months == ["2026-01", "2026-02", "2026-03"]
    by_kind = {channel.kind: channel.received for channel in view.channels}
    # bank R1 R2 R3 R4 in January, R6 R7 in February; insurer R5 R8, then R9; corporate R10.
    assert by_kind == {PartnerKind.bank: [4, 2, 0], PartnerKind.insurer: [2, 1, 0], PartnerKind.corporate: [1, 0, 0]}
    assert sum(view.month_totals) == view.funnel[0].count
    converted = {channel.kind: channel.converted for channel in view.channels}
    assert converted == {PartnerKind.bank: [1, 1, 0], PartnerKind.insurer: [1, 0, 0], PartnerKind.corporate: [0, 0, 0]}
    fees = sum(sum(channel.fees_fen) for channel in view.channels)
    accrued = await session.scalar(
        text(
            "SELECT coalesce(sum(a.amount_fen), 0) FROM fee_accruals a JOIN referrals r ON r.id = a.referral_id "
            "WHERE a.status <> 'reversed' "
            "AND (r.created_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN '2026-01-01' AND '2026-03-31'"
        )
    )
    assert fees == accrued
    assert {card.label: card.value for card in view.headlines}["Fees accrued"] == accrued


async def test_client_structure_and_the_tasks(session: AsyncSession, book: Book) -> None:
    period = periods.parse("2026-Q1", TODAY)
    assert period is not None
    view = await overview.overview(session, STAFF, period)

    # Converted: R1 hnw, R7 institutional, R8 retail; organic opened in the quarter: O1 hnw, O2 and O3 retail.
    assert (view.structure.converted.retail, view.structure.converted.hnw, view.structure.converted.institutional) == (
        1,
        1,
        1,
    )
    assert view.structure.converted.share_hnw_institutional == round(2 / 3, 4)
    assert view.structure.organic.share_hnw_institutional == round(1 / 3, 4)
    ages = {band: converted for band, _, _, converted in overview.age_bars(view.structure)}
    assert ages["25_35"] == 2 and ages["under_25"] == 1  # R1 (30) and R7 (33); R8 (22)

    tasks = {task.label: task for task in view.tasks}
    open_conflicts = await session.scalar(text("SELECT count(*) FROM attribution_conflicts WHERE status = 'open'"))
    assert tasks["Open conflicts"].count == open_conflicts == 1
    assert tasks["Open conflicts"].href == "/console/conflicts?tab=open"
