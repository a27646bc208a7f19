"""Every figure of every report on the alliance of ``conftest.py``, worked out by hand from its story.

Each report is checked twice: with every change still queued (the report corrects the rollups for the queue)
and after the queue is folded into the summary. Both must also equal the brute-force recount.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core.tenancy import Tenant
from app.reports import queries, service, summary
from app.reports.schemas import GroupBy, ReportFilters
from tests.reports import oracle
from tests.reports.conftest import Book

EVERYONE = Tenant.everyone(Actor.system("test"))
JAN_FEB = (date(2026, 1, 1), date(2026, 2, 28))
BANDS = ("under_25", "25_35", "36_45", "46_55", "over_55", "none")
COUNTS = (
    "received",
    "eligible",
    "existing_client",
    "duplicate",
    "expired",
    "withdrawn",
    "rejected",
    "account_opened",
    "funded",
    "converted",
)


def query(*group_by: GroupBy, period: tuple[date, date] = JAN_FEB, **filters: Any) -> queries.ReportQuery:
    return queries.ReportQuery(period[0], period[1], ReportFilters(**filters), tuple(group_by))


def figures(report: BaseModel) -> dict[str, Any]:
    return report.model_dump(exclude={"generated_at"})


@pytest.fixture(params=["queued", "folded"])
async def alliance(request: pytest.FixtureRequest, book: Book, session: AsyncSession) -> Book:
    """The book with its changes still queued, or folded into the summary."""
    if request.param == "folded":
        done = await summary.refresh(session)
        assert done.referrals == 11 and await summary.pending_changes(session) == 0
    else:
        assert await summary.pending_changes(session) > 0
    return book


async def test_funnel_by_partner_and_month(alliance: Book, session: AsyncSession) -> None:
    report = await service.funnel(session, EVERYONE, query(GroupBy.partner, GroupBy.month))
    rows = [(row.group.partner_name, row.group.month, tuple(row.counts.model_dump().values())) for row in report.rows]
    assert rows == [
        ("中国平安人寿保险股份有限公司", "2026-01", (2, 1, 0, 1, 0, 0, 0, 1, 1, 1)),  # R8; R5 duplicate
        ("中国平安人寿保险股份有限公司", "2026-02", (1, 1, 0, 0, 0, 0, 0, 1, 0, 0)),  # R9
        ("哈尔滨银行股份有限公司", "2026-01", (4, 4, 0, 0, 1, 1, 0, 2, 2, 1)),  # R1 R2, R3 expired, R4 withdrawn
        ("哈尔滨银行股份有限公司", "2026-02", (2, 1, 1, 0, 0, 0, 0, 1, 1, 1)),  # R7; R6 existing client
        ("黑土地农业集团有限公司", "2026-01", (1, 1, 0, 0, 0, 0, 0, 1, 1, 0)),  # R10
    ]
    assert [row.group.partner_id for row in report.rows] == [
        alliance.partners[name].id for name in ("insurer", "insurer", "bank", "bank", "corporate")
    ]
    stage = [tuple(row.stage_rates.model_dump().values()) for row in report.rows]
    overall = [tuple(row.overall_rates.model_dump().values()) for row in report.rows]
    assert stage == [
        (0.5, 1.0, 1.0, 1.0),
        (1.0, 1.0, 0.0, None),
        (1.0, 0.5, 1.0, 0.5),
        (0.5, 1.0, 1.0, 1.0),
        (1.0, 1.0, 1.0, 0.0),
    ]
    assert overall == [
        (0.5, 0.5, 0.5, 0.5),
        (1.0, 1.0, 0.0, 0.0),
        (1.0, 0.5, 0.5, 0.25),
        (0.5, 0.5, 0.5, 0.5),
        (1.0, 1.0, 1.0, 0.0),
    ]
    total = report.total
    assert tuple(total.counts.model_dump().values()) == (10, 8, 1, 1, 1, 1, 0, 6, 5, 3)
    assert tuple(total.stage_rates.model_dump().values()) == (0.8, 0.75, 0.8333, 0.6)
    assert tuple(total.overall_rates.model_dump().values()) == (0.8, 0.6, 0.5, 0.3)
    assert figures(report) == figures(await oracle.funnel(session, EVERYONE, query(GroupBy.partner, GroupBy.month)))


async def test_funnel_by_every_other_dimension(alliance: Book, session: AsyncSession) -> None:
    by_kind = await service.funnel(session, EVERYONE, query(GroupBy.partner_kind))
    assert [(row.group.partner_kind, row.counts.received, row.counts.converted) for row in by_kind.rows] == [
        ("bank", 6, 2),
        ("corporate", 1, 0),
        ("insurer", 3, 1),
    ]
    by_program = await service.funnel(session, EVERYONE, query(GroupBy.program))
    assert [(row.group.program_name, row.counts.received) for row in by_program.rows] == [
        ("VIP 银证合作", 6),
        ("保险+基金定投", 3),
        ("员工专属财富计划", 1),
    ]
    by_product = await service.funnel(session, EVERYONE, query(GroupBy.product))
    assert [(row.group.product_code, row.group.product_name, row.counts.received) for row in by_product.rows] == [
        ("BANK_WM_PLUS_EQUITY", "BANK_WM_PLUS_EQUITY 组合", 2),  # R1, R7
        ("LIFE_PLUS_FUND_SIP", "LIFE_PLUS_FUND_SIP 组合", 1),  # R8
        (None, None, 7),  # not converted
    ]
    by_tier = await service.funnel(session, EVERYONE, query(GroupBy.tier))
    assert [(row.group.tier, row.counts.funded, row.counts.converted) for row in by_tier.rows] == [
        ("retail", 2, 1),  # R2, R8
        ("hnw", 1, 1),  # R1
        ("institutional", 2, 1),  # R7, R10
        (None, 0, 0),  # 5 referrals never funded
    ]
    assert by_tier.rows[-1].counts.received == 5
    by_kind_of_referral = await service.funnel(session, EVERYONE, query(GroupBy.kind))
    assert [(row.group.kind, row.counts.received) for row in by_kind_of_referral.rows] == [
        ("enterprise", 1),
        ("vip", 9),
    ]


async def test_funnel_filters(alliance: Book, session: AsyncSession) -> None:
    async def total(**filters: Any) -> tuple[int, ...]:
        report = await service.funnel(session, EVERYONE, query(**filters))
        brute = await oracle.funnel(session, EVERYONE, query(**filters))
        assert figures(report) == figures(brute)
        return tuple(report.total.counts.model_dump().values())

    bank, insurer = alliance.partners["bank"], alliance.partners["insurer"]
    assert await total(partner_ids=[bank.id]) == (6, 5, 1, 0, 1, 1, 0, 3, 3, 2)
    assert await total(partner_ids=[bank.id, insurer.id]) == (9, 7, 1, 1, 1, 1, 0, 5, 4, 3)
    assert await total(partner_kinds=["insurer", "corporate"]) == (4, 3, 0, 1, 0, 0, 0, 3, 2, 1)
    assert await total(program_ids=[alliance.programs["corporate"].id]) == (1, 1, 0, 0, 0, 0, 0, 1, 1, 0)
    assert await total(product_codes=["BANK_WM_PLUS_EQUITY"]) == (2, 2, 0, 0, 0, 0, 0, 2, 2, 2)
    assert await total(tiers=["institutional", "hnw"]) == (3, 3, 0, 0, 0, 0, 0, 3, 3, 2)
    assert await total(kinds=["enterprise"]) == (1, 1, 0, 0, 0, 0, 0, 1, 1, 0)
    assert await total(partner_kinds=["bank"], tiers=["retail"]) == (1, 1, 0, 0, 0, 0, 0, 1, 1, 0)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        # Neither end on a month boundary: R2 R10 R3 R4 R5 R9 R6 R7, from the facts alone.
        ((date(2026, 1, 10), date(2026, 2, 15)), (8, 6, 1, 1, 1, 1, 0, 4, 3, 1)),
        # January whole (the rollup), February 1-5 from the facts: R9 and R6 added.
        ((date(2026, 1, 1), date(2026, 2, 5)), (9, 7, 1, 1, 1, 1, 0, 5, 4, 2)),
        # One day: R1 alone.
        ((date(2026, 1, 5), date(2026, 1, 5)), (1, 1, 0, 0, 0, 0, 0, 1, 1, 1)),
        # December 2025: R11, outside the story's period.
        ((date(2025, 12, 1), date(2025, 12, 31)), (1, 1, 0, 0, 0, 0, 0, 1, 0, 0)),
        # A year with nothing in it.
        ((date(2024, 1, 1), date(2024, 12, 31)), (0,) * 10),
    ],
)
async def test_periods_that_are_not_whole_months(
    alliance: Book, session: AsyncSession, period: tuple[date, date], expected: tuple[int, ...]
) -> None:
    report = await service.funnel(session, EVERYONE, query(GroupBy.month, period=period))
    assert tuple(report.total.counts.model_dump().values()) == expected
    brute = await oracle.funnel(session, EVERYONE, query(GroupBy.month, period=period))
    assert figures(report) == figures(brute)


async def test_time_to_convert_by_partner(alliance: Book, session: AsyncSession) -> None:
    report = await service.time_to_convert(session, EVERYONE, query(GroupBy.partner))

    def timing(row: Any) -> tuple[Any, ...]:
        return tuple(
            (stage.referrals, stage.median_days, stage.p90_days)
            for stage in (row.account_opened, row.funded, row.converted)
        )

    assert [row.group.partner_name for row in report.rows] == [
        "中国平安人寿保险股份有限公司",
        "哈尔滨银行股份有限公司",
        "黑土地农业集团有限公司",
    ]
    approx = pytest.approx
    # insurer: opened after 1 (R8) and 26 days (R9); R8 funded after 3, converted after 10.
    assert timing(report.rows[0]) == ((2, 13.5, approx(23.5)), (1, 3.0, 3.0), (1, 10.0, 10.0))
    # bank: opened 3 (R1), 10 (R2), 2 (R7); funded 5, 11, 3; converted 15 (R1), 19 (R7).
    assert timing(report.rows[1]) == ((3, 3.0, approx(8.6)), (3, 5.0, approx(9.8)), (2, 17.0, approx(18.6)))
    # corporate: R10 opened after 2, funded after 3, never converted.
    assert timing(report.rows[2]) == ((1, 2.0, 2.0), (1, 3.0, 3.0), (0, None, None))
    # all: opened 1 2 2 3 10 26, funded 3 3 3 5 11, converted 10 15 19.
    assert timing(report.total) == ((6, 2.5, approx(18.0)), (5, 3.0, approx(8.6)), (3, 15.0, approx(18.2)))
    brute = await oracle.time_to_convert(session, EVERYONE, query(GroupBy.partner))
    assert figures(report) == figures(brute)


async def test_time_to_convert_matches_percentile_cont(alliance: Book, session: AsyncSession) -> None:
    """The histogram's percentiles are PostgreSQL's own ``percentile_cont`` over the same days, to the bit."""
    from sqlalchemy import text

    row = (
        await session.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.9) WITHIN GROUP (ORDER BY d) "
                "FROM unnest(ARRAY[1, 2, 2, 3, 10, 26, 3, 3, 3, 5, 11]) AS d"
            )
        )
    ).one()
    assert (service.percentile_cont(0.5, 11, 3, 3), service.percentile_cont(0.9, 11, 11, 26)) == tuple(row)
    report = await service.time_to_convert(session, EVERYONE, query(GroupBy.month))
    by_month = {row.group.month: row for row in report.rows}
    opened = (
        await session.execute(
            text("SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY d) FROM unnest(ARRAY[3, 10, 1, 2]) AS d")
        )
    ).scalar_one()
    assert by_month["2026-01"].account_opened.p90_days == opened  # R1 3, R2 10, R8 1, R10 2


async def test_fees_by_partner_and_month(alliance: Book, session: AsyncSession) -> None:
    report = await service.fees(session, EVERYONE, query(GroupBy.partner, GroupBy.month))
    columns = (
        "funded_accounts",
        "converted",
        "assets_fen",
        "revenue_fen",
        "fees_accrued_fen",
        "fees_pending_fen",
        "fees_payable_fen",
        "fees_statemented_fen",
        "fees_paid_fen",
        "cost_per_funded_account_fen",
        "revenue_to_fee_ratio",
    )

    def values(row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, name) for name in columns)

    assert [values(row) for row in report.rows] == [
        # insurer January: R8 20,000 CNY retail; bounty 10,000 + bundle 5,000 held; revenue 200 CNY
        (1, 1, 2_000_000, 20_000, 15_000, 15_000, 0, 0, 0, 15_000, 1.3333),
        # insurer February: R9 opened, never funded
        (0, 0, 0, 0, 0, 0, 0, 0, 0, None, None),
        # bank January: R1 (hnw bounty 150,000 paid, bundle 10,000 + 0.3% of 100,000 CNY = 40,000 on a statement,
        # revenue share 10% of 500 + 300 CNY = 8,000 payable) and R2 (retail bounty 20,000 payable)
        (2, 1, 205_000_000, 80_000, 218_000, 0, 28_000, 40_000, 150_000, 109_000, 0.367),
        # bank February: R7 institutional bounty 500,000 + bundle capped at its maximum 500,000
        (1, 1, 600_000_000, 0, 1_000_000, 0, 1_000_000, 0, 0, 1_000_000, 0.0),
        # corporate: no fee schedule
        (1, 0, 10_000_000, 0, 0, 0, 0, 0, 0, 0, None),
    ]
    assert values(report.total) == (
        5,
        3,
        817_000_000,
        100_000,
        1_233_000,
        15_000,
        1_028_000,
        40_000,
        150_000,
        246_600,
        0.0811,
    )
    assert report.currency == "CNY"
    brute = await oracle.fees(session, EVERYONE, query(GroupBy.partner, GroupBy.month))
    assert figures(report) == figures(brute)


async def test_client_structure_by_partner(alliance: Book, session: AsyncSession) -> None:
    report = await service.client_structure(session, EVERYONE, query(GroupBy.partner))
    insurer, bank, corporate = report.rows

    def tiers(counts: Any) -> tuple[Any, ...]:
        return (counts.retail, counts.hnw, counts.institutional, counts.unknown, counts.share_hnw_institutional)

    def ages(row: Any) -> dict[str, tuple[int, int, bool]]:
        return {band: (row.received_by_age[band], row.converted_by_age[band], band == "25_35") for band in BANDS}

    organic = (2, 1, 0, 1, 0.3333)  # O2 O3 retail, O1 hnw, O4 not funded; O5 opened in December
    assert tiers(insurer.converted) == (1, 0, 0, 0, 0.0)
    assert tiers(insurer.funded) == (1, 0, 0, 0, 0.0)
    assert insurer.assets_by_tier.model_dump() == {"retail_fen": 2_000_000, "hnw_fen": 0, "institutional_fen": 0}
    assert ages(insurer)["under_25"] == (1, 1, False) and ages(insurer)["25_35"] == (2, 0, True)
    assert insurer.converted_share_25_35 == 0.0
    assert tiers(insurer.organic) == organic
    assert insurer.share_difference_points == -33.33

    assert tiers(bank.converted) == (0, 1, 1, 0, 1.0)
    assert tiers(bank.funded) == (1, 1, 1, 0, 0.6667)
    assert bank.assets_by_tier.model_dump() == {
        "retail_fen": 5_000_000,
        "hnw_fen": 200_000_000,
        "institutional_fen": 600_000_000,
    }
    assert ages(bank) == {
        "under_25": (0, 0, False),
        "25_35": (3, 2, True),
        "36_45": (1, 0, False),
        "46_55": (1, 0, False),
        "over_55": (1, 0, False),
        "none": (0, 0, False),
    }
    assert bank.converted_share_25_35 == 1.0
    assert bank.share_difference_points == 66.67

    assert tiers(corporate.converted) == (0, 0, 0, 0, None)
    assert tiers(corporate.funded) == (0, 0, 1, 0, 1.0)
    assert ages(corporate)["none"] == (1, 0, False)
    assert corporate.converted_share_25_35 is None and corporate.share_difference_points is None

    total = report.total
    assert tiers(total.converted) == (1, 1, 1, 0, 0.6667)
    assert tiers(total.funded) == (2, 1, 2, 0, 0.6)
    assert total.assets_by_tier.model_dump() == {
        "retail_fen": 7_000_000,
        "hnw_fen": 200_000_000,
        "institutional_fen": 610_000_000,
    }
    assert [band.model_dump() for band in report.age_bands] == [
        {"band": "under_25", "label": "under 25", "target": False},
        {"band": "25_35", "label": "25-35", "target": True},
        {"band": "36_45", "label": "36-45", "target": False},
        {"band": "46_55", "label": "46-55", "target": False},
        {"band": "over_55", "label": "over 55", "target": False},
        {"band": "none", "label": "no age (enterprise)", "target": False},
    ]
    assert [(total.received_by_age[band], total.converted_by_age[band]) for band in BANDS] == [
        (1, 1),
        (5, 2),
        (1, 0),
        (1, 0),
        (1, 0),
        (1, 0),
    ]
    assert total.converted_share_25_35 == 0.6667
    assert tiers(total.organic) == organic
    assert total.organic_assets_by_tier.model_dump() == {
        "retail_fen": 21_000_000,
        "hnw_fen": 300_000_000,
        "institutional_fen": 0,
    }
    assert total.share_difference_points == 33.33
    brute = await oracle.client_structure(session, EVERYONE, query(GroupBy.partner))
    assert figures(report) == figures(brute)


async def test_client_structure_by_month_compares_each_month(alliance: Book, session: AsyncSession) -> None:
    report = await service.client_structure(session, EVERYONE, query(GroupBy.month))
    january, february = report.rows
    assert (january.group.month, january.organic.hnw, january.organic.retail) == ("2026-01", 1, 1)  # O1, O2
    assert january.organic.share_hnw_institutional == 0.5
    assert (february.organic.retail, february.organic.unknown) == (1, 1)  # O3, O4
    assert february.organic.share_hnw_institutional == 0.0
    assert (january.converted.retail, january.converted.hnw, february.converted.institutional) == (1, 1, 1)
    brute = await oracle.client_structure(session, EVERYONE, query(GroupBy.month))
    assert figures(report) == figures(brute)


async def test_scorecard_of_the_bank(alliance: Book, session: AsyncSession) -> None:
    card = await service.scorecard(session, Actor.system("test"), alliance.partners["bank"].id, query())
    assert (card.partner.name, card.partner.kind) == ("哈尔滨银行股份有限公司", "bank")
    assert (card.partners_in_alliance, card.partners_in_peers) == (3, 1)
    metrics = {metric.name: (metric.partner, metric.alliance, metric.peers, metric.basis) for metric in card.metrics}
    approx = pytest.approx
    assert metrics == {
        "received": (6, 3.33, 6.0, "per_partner"),
        "eligible_rate": (0.8333, 0.8, 0.8333, "pooled"),
        "opened_rate": (0.5, 0.6, 0.5, "pooled"),
        "funded_rate": (0.5, 0.5, 0.5, "pooled"),
        "conversion_rate": (0.3333, 0.3, 0.3333, "pooled"),
        "median_days_to_open": (3.0, 2.5, 3.0, "pooled"),
        "median_days_to_fund": (5.0, 3.0, 5.0, "pooled"),
        "median_days_to_convert": (17.0, 15.0, 17.0, "pooled"),
        "p90_days_to_convert": (approx(18.6), approx(18.2), approx(18.6), "pooled"),
        "funded": (3, 1.67, 3.0, "per_partner"),
        "converted": (2, 1.0, 2.0, "per_partner"),
        "assets_fen": (805_000_000, 272_333_333.33, 805_000_000.0, "per_partner"),
        "revenue_fen": (80_000, 33_333.33, 80_000.0, "per_partner"),
        "fees_accrued_fen": (1_218_000, 411_000.0, 1_218_000.0, "per_partner"),
        "fees_paid_fen": (150_000, 50_000.0, 150_000.0, "per_partner"),
        "cost_per_funded_account_fen": (406_000, 246_600, 406_000, "pooled"),
        "revenue_to_fee_ratio": (0.0657, 0.0811, 0.0657, "pooled"),
        "share_hnw_institutional": (1.0, 0.6667, 1.0, "pooled"),
    }
    brute = await oracle.scorecard(session, alliance.partners["bank"].id, query())
    assert figures(card) == figures(brute)


async def test_a_partner_tenant_sees_its_own_referrals(alliance: Book, session: AsyncSession) -> None:
    insurer = alliance.partners["insurer"]
    own = Tenant.of_partner(insurer.id)
    report = await service.funnel(session, own, query(GroupBy.partner))
    assert [row.group.partner_id for row in report.rows] == [insurer.id]
    assert report.total.counts.received == 3
    # Naming another partner narrows nothing into view: the caller's scope still applies.
    other = await service.funnel(session, own, query(partner_ids=[alliance.partners["bank"].id]))
    assert other.rows == [] and other.total.counts.received == 0
    timing = await service.time_to_convert(session, own, query(GroupBy.partner))
    assert [row.group.partner_id for row in timing.rows] == [insurer.id]
    assert timing.total.account_opened.median_days == 13.5
