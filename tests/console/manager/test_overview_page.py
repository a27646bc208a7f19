"""The overview page over HTTP: the manager's figures, the period in the URL, who may open it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.reports.conftest import Book


async def test_the_manager_sees_the_quarter(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.client.get("/console/overview", params={"period": "2026-Q1"})
    assert response.status_code == 200, response.text
    html = response.text
    assert 'data-metric="Referrals received">10<' in html
    assert 'data-metric="Conversion rate">30.0%<' in html
    assert "银证合作" in html and "<svg" in html


async def test_a_bad_period_redirects_to_the_default(console_as: Any) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.client.get("/console/overview", params={"period": "2026-13"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/overview?period=12m"


async def test_admins_may_not_open_the_overview(console_as: Any) -> None:
    admin = await console_as("admin")
    response = await admin.client.get("/console/overview")
    assert response.status_code == 403


async def test_without_a_session_the_overview_leads_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/overview?period=3m")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/sign-in?next=/console/overview")


async def test_the_tasks_link_only_to_queues_the_role_may_open(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    html = (await manager.client.get("/console/overview", params={"period": "2026-Q1"})).text
    assert 'href="/console/conflicts?tab=open">1<' in html
    assert 'href="/console/statements?status=issued"' not in html
    finance = await console_as("finance")
    html = (await finance.client.get("/console/overview", params={"period": "2026-Q1"})).text
    assert 'href="/console/statements?status=issued"' in html
    assert 'href="/console/conflicts?tab=open"' not in html and "由联盟经理处理" in html


async def test_htmx_gets_the_region_and_a_browser_the_page(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    region = await manager.client.get("/console/overview", params={"period": "2026-02"}, headers={"HX-Request": "true"})
    assert region.status_code == 200
    assert "<html" not in region.text and 'data-metric="Referrals received">3<' in region.text
    whole = await manager.client.get("/console/overview", params={"period": "2026-02"})
    assert "<html" in whole.text and 'option value="2026-02" selected' in whole.text
