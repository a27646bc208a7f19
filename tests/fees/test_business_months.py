"""One business timezone (Asia/Shanghai by default) everywhere a day or a month is drawn (DESIGN.md, "Time"):
fees earned at 23:59:59, 00:00:00 and 00:30 Beijing time around the first of November (15:59:59, 16:00 and 16:30
UTC on 31 October) fall in October, November and November in the period close, the monthly cap, statement lines,
exports and reports alike."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import business_time
from app.core.clock import ManualClock
from app.core.config import Settings
from app.referrals.models import Referral
from tests.conftest import Caller, CallerFactory
from tests.fees.conftest import RULES, Ledger, cny

E = Ledger.event
UTC_INSTANTS = {
    "late October": datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC),  # 23:59:59 on 31 October in Beijing
    "November midnight": datetime(2026, 10, 31, 16, 0, 0, tzinfo=UTC),  # 00:00:00 on 1 November
    "November 00:30": datetime(2026, 10, 31, 16, 30, 0, tzinfo=UTC),  # 00:30 on 1 November
}
MONTH_OF = {"late October": "2026-10", "November midnight": "2026-11", "November 00:30": "2026-11"}
BEIJING_TIME = {
    "late October": "2026-10-31T23:59:59+08:00",
    "November midnight": "2026-11-01T00:00:00+08:00",
    "November 00:30": "2026-11-01T00:30:00+08:00",
}
BOUNTY = 20_000  # retail
CAP = 20_000  # per partner and month: one bounty a month


@pytest.fixture
async def alliance(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory, manual_clock: ManualClock
) -> tuple[Ledger, dict[str, str]]:
    """One referral per instant, each opened and funded at that instant and recorded then (no hold)."""
    ledger: Ledger = await make_ledger({**RULES, "caps": {"per_partner_month_fen": CAP}}, hold_period_days=0)
    feed = await caller("back_office")
    clock = manual_clock
    refs: dict[str, str] = {}
    for number, (name, instant) in enumerate(UTC_INSTANTS.items()):
        referral_id, person = await ledger.referral(instant)
        await session.execute(update(Referral).where(Referral.id == referral_id).values(created_at=instant))
        refs[name] = referral_id
        clock.move_to(instant)
        events = [
            E("account_opened", f"BT-{number}", instant, national_id=person),
            E("account_funded", f"BT-{number}", instant, **cny(20_000)),
        ]
        response = await client.post("/v1/conversion-events", json={"events": events}, headers=feed.headers)
        assert [item["result"] for item in response.json()["results"]] == ["applied", "applied"], response.text
    return ledger, refs


async def close(client: httpx.AsyncClient, finance: Caller, period: str, partner_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/finance/periods/{period}/close", headers=finance.headers)
    assert response.status_code == 200, response.text
    [statement] = [item for item in response.json()["statements"] if item["partner_id"] == partner_id]
    return dict(statement)


async def test_periods_statements_and_exports_follow_the_business_month(
    alliance: tuple[Ledger, dict[str, str]], client: httpx.AsyncClient, caller: CallerFactory, manual_clock: ManualClock
) -> None:
    ledger, refs = alliance
    manual_clock.move_to(datetime(2026, 12, 2, tzinfo=UTC))  # finance closes both months once November has ended
    names = {referral_id: name for name, referral_id in refs.items()}
    finance = await caller("staff", role="finance")
    seen: dict[str, list[tuple[str, str, int]]] = {}
    for period in ("2026-10", "2026-11"):
        statement = await close(client, finance, period, ledger.partner_id)
        lines_response = await client.get(
            f"/v1/finance/statements/{statement['id']}/lines", params={"limit": 100}, headers=finance.headers
        )
        lines = lines_response.json()["data"]
        seen[period] = sorted((names[line["referral_id"]], line["rule"], line["amount_fen"]) for line in lines)
        assert statement["lines_total_fen"] == BOUNTY  # the cap is the business month's: one bounty each month
        assert statement["period_end"] == {"2026-10": "2026-10-31", "2026-11": "2026-11-30"}[period]

        exported = await client.get(
            f"/v1/finance/statements/{statement['id']}/export", params={"format": "csv"}, headers=finance.headers
        )
        rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
        by_line = {row["line_id"]: row for row in rows}
        for line in lines:
            assert by_line[line["id"]]["occurred_at"] == BEIJING_TIME[names[line["referral_id"]]]
        workbook = load_workbook(
            io.BytesIO(
                (
                    await client.get(
                        f"/v1/finance/statements/{statement['id']}/export",
                        params={"format": "xlsx"},
                        headers=finance.headers,
                    )
                ).content
            )
        )
        sheet = list(workbook["Lines"].iter_rows(values_only=True))
        column = sheet[0].index("occurred_at")
        assert sorted(row[column] for row in sheet[1:]) == sorted(
            BEIJING_TIME[names[line["referral_id"]]] for line in lines
        )

    assert seen == {
        "2026-10": [("late October", "funded_bounty", BOUNTY)],
        "2026-11": [
            ("November 00:30", "cap", -BOUNTY),
            ("November 00:30", "funded_bounty", BOUNTY),
            ("November midnight", "funded_bounty", BOUNTY),
        ],
    }


async def test_a_period_closes_when_the_business_month_ends(
    client: httpx.AsyncClient, caller: CallerFactory, monkeypatch: Any
) -> None:
    finance = await caller("staff", role="finance")
    this_month = business_time.month_of(datetime.now(UTC))
    refused = await client.post(f"/v1/finance/periods/{this_month.name}/close", headers=finance.headers)
    assert refused.status_code == 409
    assert business_time.local(this_month.end).isoformat() in refused.json()["detail"]
    # The month ends at midnight in Beijing: 16:00 UTC on the last day.
    october = business_time.month_named("2026-10")
    assert october is not None
    assert (october.start, october.end) == (
        datetime(2026, 9, 30, 16, tzinfo=UTC),
        datetime(2026, 10, 31, 16, tzinfo=UTC),
    )


async def test_reports_count_days_and_months_in_the_business_timezone(
    alliance: tuple[Ledger, dict[str, str]], client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    ledger, _ = alliance
    manager = await caller("staff", role="alliance_manager")

    async def report(path: str, **params: str) -> dict[str, Any]:
        response = await client.get(
            f"/v1/reports/{path}", params={"partner_id": ledger.partner_id, **params}, headers=manager.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    funnel = await report("funnel", **{"from": "2026-10-01", "to": "2026-11-30", "group_by": "month"})
    assert {row["group"]["month"]: row["counts"]["funded"] for row in funnel["rows"]} == {
        "2026-10": 1,
        "2026-11": 2,
    }
    fees = await report("fees", **{"from": "2026-10-01", "to": "2026-11-30", "group_by": "month"})
    assert {row["group"]["month"]: row["fees_accrued_fen"] for row in fees["rows"]} == {
        "2026-10": BOUNTY,
        "2026-11": BOUNTY,  # two bounties, one cut by the month's cap
    }
    first_of_november = await report("funnel", **{"from": "2026-11-01", "to": "2026-11-01"})
    last_of_october = await report("funnel", **{"from": "2026-10-31", "to": "2026-10-31"})
    assert (first_of_november["total"]["counts"]["received"], last_of_october["total"]["counts"]["received"]) == (2, 1)
    assert funnel["period"]["timezone"] == "Asia/Shanghai"


def test_the_business_timezone_is_a_setting(settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setattr(business_time, "get_settings", lambda: settings.model_copy(update={"business_timezone": "UTC"}))
    assert business_time.business_month(UTC_INSTANTS["November 00:30"]) == "2026-10"
    month = business_time.month_named("2026-11")
    assert month is not None and month.start == datetime(2026, 11, 1, tzinfo=UTC)
    monkeypatch.undo()
    assert business_time.business_month(UTC_INSTANTS["November 00:30"]) == "2026-11"
    with pytest.raises(ValueError, match="IANA"):
        Settings(_env_file=None, business_timezone="Mars/Olympus")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="IANA"):
        Settings(_env_file=None, business_timezone="Asia/Shanghai'; DROP TABLE x; --")  # type: ignore[call-arg]


def test_month_bounds_have_no_gaps_across_a_year() -> None:
    months = [business_time.month_named(f"2026-{month:02d}") for month in range(1, 13)]
    assert all(month is not None for month in months)
    for earlier, later in itertools.pairwise(months):
        assert earlier is not None and later is not None and earlier.end == later.start
        assert business_time.business_month(earlier.end - timedelta(microseconds=1)) == earlier.name
        assert business_time.business_month(later.start) == later.name
