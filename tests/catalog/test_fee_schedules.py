from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import app
from app.catalog.models import Partner
from app.catalog.service import mark_fee_schedules_used
from app.core import clock
from app.core.business_time import today as business_today
from tests.catalog.conftest import RULES, Catalog
from tests.conftest import CallerFactory

SCHEDULES = "/v1/admin/fee-schedules"


@pytest.fixture
async def program(catalog: Catalog) -> dict[str, Any]:
    bank = await catalog.partner()
    await catalog.product()
    return await catalog.program(bank["id"], ["BANK_WM_PLUS_EQUITY"])


async def _activate(client: httpx.AsyncClient, catalog: Catalog, schedule_id: str, expect: int = 200) -> dict[str, Any]:
    response = await client.post(f"{SCHEDULES}/{schedule_id}/activate", headers=catalog.headers)
    assert response.status_code == expect, response.text
    return dict(response.json())


async def test_draft_is_numbered_and_keeps_exact_rules(catalog: Catalog, program: dict[str, Any]) -> None:
    first = await catalog.schedule(program["id"])
    second = await catalog.schedule(program["id"], "2026-06-01")
    assert (first["version"], second["version"]) == (1, 2)
    assert first["status"] == "draft" and first["in_use"] is False
    assert first["rules"]["funded_bounty"]["by_tier"]["hnw"] == 150_000
    assert first["rules"]["bundle_fees"][0]["bps"] == 30


@pytest.mark.parametrize(
    ("rules", "location"),
    [
        (
            {"funded_bounty": {"min_assets_fen": 100.5, "by_tier": {"retail": 1, "hnw": 2, "institutional": 3}}},
            "min_assets_fen",
        ),
        ({"funded_bounty": {"min_assets_fen": 1, "by_tier": {"retail": -1, "hnw": 2, "institutional": 3}}}, "retail"),
        (
            {"funded_bounty": {"min_assets_fen": "100", "by_tier": {"retail": 1, "hnw": 2, "institutional": 3}}},
            "min_assets_fen",
        ),
        ({"revenue_share": {"bps": 10_001, "months": 12}}, "bps"),
        ({"bundle_fees": [{"product_code": "BANK_WM_PLUS_EQUITY"}]}, "bundle_fees"),
        (
            {"bundle_fees": [{"product_code": "BANK_WM_PLUS_EQUITY", "bps": 10, "min_fen": 9, "max_fen": 1}]},
            "bundle_fees",
        ),
        ({"caps": {"per_referral_fen": -5}}, "per_referral_fen"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_rules_are_422(
    client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any], rules: dict[str, Any], location: str
) -> None:
    response = await client.post(
        SCHEDULES,
        json={"program_id": program["id"], "effective_from": "2026-01-01", "rules": rules},
        headers=catalog.headers,
    )
    assert response.status_code == 422, response.text
    assert any(location in map(str, error["loc"]) for error in response.json()["errors"])


async def test_bundle_fee_for_a_product_the_program_does_not_offer(catalog: Catalog, program: dict[str, Any]) -> None:
    await catalog.product("OTHER_BUNDLE")
    refused = await catalog.post(
        SCHEDULES,
        {
            "program_id": program["id"],
            "effective_from": "2026-01-01",
            "rules": {"bundle_fees": [{"product_code": "OTHER_BUNDLE", "flat_fen": 1}]},
        },
        422,
    )
    assert "OTHER_BUNDLE" in refused["detail"]


async def test_draft_edits_then_activation_freezes(
    client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any]
) -> None:
    draft = await catalog.schedule(program["id"])
    path = f"{SCHEDULES}/{draft['id']}"
    edited = await client.patch(
        path, json={"rules": {**RULES, "revenue_share": {"bps": 800, "months": 6}}}, headers=catalog.headers
    )
    assert edited.status_code == 200
    assert edited.json()["rules"]["revenue_share"] == {"bps": 800, "months": 6}
    active = await _activate(client, catalog, draft["id"])
    assert active["status"] == "active" and active["activated_at"]
    frozen = await client.patch(path, json={"effective_from": "2026-02-01"}, headers=catalog.headers)
    assert frozen.status_code == 409
    assert frozen.json()["type"].endswith("/fee-schedule-frozen")
    assert (await client.delete(path, headers=catalog.headers)).status_code == 409
    program_view = (await client.get(f"/v1/admin/programs/{program['id']}", headers=catalog.headers)).json()
    assert program_view["fee_schedule_in_force"]["id"] == draft["id"]


async def test_drafts_can_be_deleted(client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any]) -> None:
    draft = await catalog.schedule(program["id"])
    assert (await client.delete(f"{SCHEDULES}/{draft['id']}", headers=catalog.headers)).status_code == 204
    assert (await client.get(f"{SCHEDULES}/{draft['id']}", headers=catalog.headers)).status_code == 404


async def test_versions_succeed_without_overlap(
    client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any]
) -> None:
    v1 = await catalog.schedule(program["id"], "2026-01-01")
    await _activate(client, catalog, v1["id"])
    earlier = await catalog.schedule(program["id"], "2025-12-01")
    overlap = await _activate(client, catalog, earlier["id"], expect=409)
    assert overlap["type"].endswith("/fee-schedule-overlap")
    v3 = await catalog.schedule(program["id"], "2026-07-01")
    await _activate(client, catalog, v3["id"])
    v1_now = (await client.get(f"{SCHEDULES}/{v1['id']}", headers=catalog.headers)).json()
    assert v1_now["effective_to"] == "2026-07-01"
    listed = (await client.get(SCHEDULES, params={"program_id": program["id"]}, headers=catalog.headers)).json()
    assert sorted(item["version"] for item in listed["data"]) == [1, 2, 3]


async def test_a_version_with_accruals_never_changes_and_is_succeeded_only_from_today_on(
    client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any], session: AsyncSession
) -> None:
    v1 = await catalog.schedule(program["id"], "2026-01-01")
    await _activate(client, catalog, v1["id"])
    await mark_fee_schedules_used(session, [v1["id"]], clock.now())  # stands in for the fee engine's first accrual
    assert (await client.get(f"{SCHEDULES}/{v1['id']}", headers=catalog.headers)).json()["in_use"] is True

    edit = await client.patch(f"{SCHEDULES}/{v1['id']}", json={"rules": RULES}, headers=catalog.headers)
    assert edit.status_code == 409
    assert "accruals" in edit.json()["detail"]

    yesterday = (business_today() - timedelta(days=1)).isoformat()
    retroactive = await catalog.schedule(program["id"], yesterday)
    await _activate(client, catalog, retroactive["id"], expect=409)
    tomorrow = (business_today() + timedelta(days=1)).isoformat()
    successor = await catalog.schedule(program["id"], tomorrow)
    await _activate(client, catalog, successor["id"])


async def test_partner_reads_the_fee_schedule_in_force(
    client: httpx.AsyncClient, catalog: Catalog, program: dict[str, Any], caller: CallerFactory, session: AsyncSession
) -> None:
    schedule = await catalog.schedule(program["id"])
    bank = await caller("partner", partner=await session.get(Partner, program["partner_id"]))
    before = (await client.get(f"/v1/programs/{program['id']}", headers=bank.headers)).json()
    assert before["fee_schedule_in_force"] is None  # a draft is not in force
    await _activate(client, catalog, schedule["id"])
    after = (await client.get(f"/v1/programs/{program['id']}", headers=bank.headers)).json()
    assert after["fee_schedule_in_force"]["rules"]["funded_bounty"]["by_tier"]["hnw"] == 150_000


async def test_finance_cannot_write_schedules(
    client: httpx.AsyncClient, caller: CallerFactory, program: dict[str, Any]
) -> None:
    finance = await caller("staff", role="finance")
    response = await client.post(
        SCHEDULES,
        json={"program_id": program["id"], "effective_from": "2026-01-01", "rules": RULES},
        headers=finance.headers,
    )
    assert response.status_code == 403


async def test_marking_versions_used_fixes_many_at_once_and_keeps_the_first_time(
    catalog: Catalog, program: dict[str, Any], session: AsyncSession
) -> None:
    from app.catalog.models import FeeSchedule

    used_before, fresh, untouched = [
        (await catalog.schedule(program["id"], f"2026-0{month}-01"))["id"] for month in (1, 4, 7)
    ]
    first, later = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    await mark_fee_schedules_used(session, [used_before], first)
    await mark_fee_schedules_used(session, [used_before, fresh], later)
    stamped = {
        schedule.id: schedule.first_accrual_at
        for schedule in await session.scalars(
            select(FeeSchedule)
            .where(FeeSchedule.id.in_([used_before, fresh, untouched]))  # type: ignore[attr-defined]
            .execution_options(populate_existing=True)
        )
    }
    # The first accrual freezes a version: a later one never moves that time; a version without lines stays free.
    assert stamped == {used_before: first, fresh: later, untouched: None}


def test_only_catalog_writes_when_a_version_was_first_used() -> None:
    package = Path(app.__file__).parent
    writes = re.compile(r"first_accrual_at\s*=(?!=)")
    writers = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py") if writes.search(path.read_text())
    )
    assert writers == ["catalog/service.py"]
