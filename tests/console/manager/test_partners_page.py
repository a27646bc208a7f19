"""合作机构 over HTTP: the list's figures against the story, filters in the URL, the partner page's tabs by role."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import business_time, clock
from app.reports.queries import default_period
from tests.reports.conftest import Book


def _row(html: str, partner_id: str) -> str:
    match = re.search(rf'<tr data-partner="{partner_id}">(.*?)</tr>', html, re.S)
    assert match, partner_id
    return match.group(1)


async def test_the_list_counts_referrals_and_this_months_fees(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.client.get("/console/partners")
    assert response.status_code == 200
    bank = book.partners["bank"].id
    # Received in the last twelve months (the story's referrals are of January-February 2026; the test runs later).
    start, _ = default_period(business_time.today())
    received = await session.scalar(
        text(
            "SELECT count(*) FROM referrals WHERE partner_id = :p "
            "AND (created_at AT TIME ZONE 'Asia/Shanghai')::date >= :start"
        ),
        {"p": bank, "start": start},
    )
    month = business_time.month_of(clock.now())
    fees = await session.scalar(
        text(
            "SELECT coalesce(sum(amount_fen), 0) FROM fee_accruals WHERE partner_id = :p AND status <> 'reversed' "
            "AND created_at >= :start AND created_at < :end"
        ),
        {"p": bank, "start": month.start, "end": month.end},
    )
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', _row(response.text, bank))
    assert cells[0] == f"{received:,}"
    whole, cents = divmod(int(fees or 0), 100)
    assert cells[2] == f"{whole:,}.{cents:02d}"


async def test_filters_live_in_the_url(console_as: Any, book: Book) -> None:
    finance = await console_as("finance")
    insurers = await finance.client.get("/console/partners", params={"kind": "insurer"})
    assert insurers.status_code == 200
    assert f'data-partner="{book.partners["insurer"].id}"' in insurers.text
    assert f'data-partner="{book.partners["bank"].id}"' not in insurers.text
    none = await finance.client.get("/console/partners", params={"status": "terminated"})
    assert "没有符合筛选条件的记录" in none.text
    bad = await finance.client.get("/console/partners", params={"status": "gone", "kind": "bank"})
    assert bad.status_code == 303 and bad.headers["location"] == "/console/partners?kind=bank"


async def test_the_partner_page_shows_the_tabs_each_role_reads(console_as: Any, book: Book) -> None:
    bank = book.partners["bank"].id
    manager = await console_as("alliance_manager")
    page = await manager.client.get(f"/console/partners/{bank}")
    assert page.status_code == 200 and "VIP 银证合作" in page.text
    for tab in ("referrals", "scorecard", "audit"):
        assert (await manager.client.get(f"/console/partners/{bank}", params={"tab": tab})).status_code == 200, tab
    # Statements are finance's: the manager is sent to a tab it reads.
    refused = await manager.client.get(f"/console/partners/{bank}", params={"tab": "statements"})
    assert refused.status_code == 303 and refused.headers["location"] == f"/console/partners/{bank}?tab=programs"
    admin = await console_as("admin")
    assert (await admin.client.get(f"/console/partners/{bank}", params={"tab": "referrals"})).status_code == 303
    finance = await console_as("finance")
    assert (await finance.client.get(f"/console/partners/{bank}", params={"tab": "statements"})).status_code == 200
    missing = await manager.client.get("/console/partners/ptn_missing")
    assert missing.status_code == 303 and missing.headers["location"] == "/console/partners"
