"""项目与费率 over HTTP: versions with their state, a draft written in the form (yuan to fen exactly), a refused
form that changes nothing, activation after a summary (the predecessor then ends), two versions side by side."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import business_time
from tests.reports.conftest import Book

FORM = {
    "bounty_min_assets": "10,000.00",
    "bounty_retail": "250",
    "bounty_hnw": "1500.50",
    "bounty_institutional": "5000",
    "bundle_BANK_WM_PLUS_EQUITY_flat": "100",
    "bundle_BANK_WM_PLUS_EQUITY_bps": "35",
    "bundle_BANK_WM_PLUS_EQUITY_min": "120",
    "bundle_BANK_WM_PLUS_EQUITY_max": "5000",
    "revenue_bps": "800",
    "revenue_months": "12",
    "cap_per_referral": "",
    "cap_per_partner_month": "",
}


async def _versions(session: AsyncSession, program_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM fee_schedules WHERE program_id = :p ORDER BY version"), {"p": program_id}
    )
    return [dict(row) for row in rows.mappings()]


async def test_the_list_shows_each_version_and_its_state(console_as: Any, book: Book) -> None:
    auditor = await console_as("auditor")
    response = await auditor.client.get("/console/programs")
    assert response.status_code == 200
    row = re.search(rf'<tr data-program="{book.programs["bank"].id}">(.*?)</tr>', response.text, re.S)
    assert row and "v1 生效中" in row.group(1)
    corporate = re.search(rf'<tr data-program="{book.programs["corporate"].id}">(.*?)</tr>', response.text, re.S)
    assert corporate and "尚无费率" in corporate.group(1)
    narrowed = await auditor.client.get("/console/programs", params={"partner": book.partners["insurer"].id})
    assert book.programs["bank"].id not in narrowed.text
    page = await auditor.client.get(f"/console/programs/{book.programs['bank'].id}")
    assert page.status_code == 200 and "新建草稿版本" not in page.text  # auditors read, never act


async def test_a_draft_from_the_form_activated_after_a_summary(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    program = book.programs["bank"].id
    manager = await console_as("alliance_manager")
    starts = business_time.today().isoformat()
    saved = await manager.post(f"/console/programs/{program}/schedules", effective_from=starts, **FORM)
    assert saved.status_code == 303, saved.text
    [first, draft] = await _versions(session, program)
    assert saved.headers["location"] == f"/console/fee-schedules/{draft['id']}"
    assert draft["status"] == "draft" and draft["version"] == 2
    assert draft["rules"]["funded_bounty"] == {
        "min_assets_fen": 1_000_000,
        "by_tier": {"retail": 25_000, "hnw": 150_050, "institutional": 500_000},
    }
    assert draft["rules"]["bundle_fees"] == [
        {"product_code": "BANK_WM_PLUS_EQUITY", "flat_fen": 10_000, "bps": 35, "min_fen": 12_000, "max_fen": 500_000}
    ]
    assert draft["rules"]["revenue_share"] == {"bps": 800, "months": 12}

    compared = await manager.client.get(
        f"/console/programs/{program}/compare", params={"a": first["id"], "b": draft["id"]}
    )
    assert compared.status_code == 200
    # Against the story's bank rules: the retail and HNW bounties, the bundle's basis points, the revenue share.
    assert compared.text.count('class="differs"') == 4
    summary = await manager.client.get(f"/console/fee-schedules/{draft['id']}/activate")
    assert summary.status_code == 200 and "版本 1 将于" in summary.text
    activated = await manager.post(f"/console/fee-schedules/{draft['id']}/activate")
    assert activated.status_code == 303
    [first, draft] = await _versions(session, program)
    assert draft["status"] == "active"
    assert first["effective_to"] == business_time.today()
    actions = await session.scalars(
        text("SELECT action FROM audit_events WHERE object_id IN (:a, :b) ORDER BY created_at"),
        {"a": first["id"], "b": draft["id"]},
    )
    assert {"fee_schedule.created", "fee_schedule.succeeded", "fee_schedule.activated"} <= set(actions)
    frozen = await manager.post(f"/console/fee-schedules/{draft['id']}", effective_from=starts, **FORM)
    assert frozen.status_code == 422  # an active version is only succeeded


async def test_a_bad_amount_is_refused_on_the_page_and_nothing_is_saved(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    program = book.programs["bank"].id
    manager = await console_as("alliance_manager")
    form = {**FORM, "bounty_hnw": "15.005"}
    refused = await manager.post(f"/console/programs/{program}/schedules", effective_from="2026-12-01", **form)
    assert refused.status_code == 422 and "请输入以元为单位的金额" in refused.text
    assert 'value="15.005"' in refused.text  # what was typed stays in the form
    assert len(await _versions(session, program)) == 1
    no_date = await manager.post(f"/console/programs/{program}/schedules", effective_from="soon", **FORM)
    assert no_date.status_code == 422 and len(await _versions(session, program)) == 1


async def test_only_managers_write_the_catalog(console_as: Any, book: Book) -> None:
    program = book.programs["bank"].id
    finance = await console_as("finance")
    assert (await finance.client.get(f"/console/programs/{program}")).status_code == 200
    assert (
        await finance.post(f"/console/programs/{program}/schedules", effective_from="2026-12-01")
    ).status_code == 403
    bad = await finance.client.get(f"/console/programs/{program}/compare", params={"a": "x", "b": "y"})
    assert bad.status_code == 303 and bad.headers["location"] == f"/console/programs/{program}"
