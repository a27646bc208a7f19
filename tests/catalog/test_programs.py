from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from tests.catalog.conftest import Catalog
from tests.conftest import CallerFactory

PRODUCTS = "/v1/admin/products"
PROGRAMS = "/v1/admin/programs"


async def test_products_are_unique_by_code_and_validated(client: httpx.AsyncClient, catalog: Catalog) -> None:
    product = await catalog.product()
    assert product["code"] == "BANK_WM_PLUS_EQUITY" and product["active"] is True
    await catalog.post(
        PRODUCTS,
        {
            "code": "BANK_WM_PLUS_EQUITY",
            "name": "x",
            "components": [{"kind": "k", "name": "n"}],
            "allowed_partner_kinds": ["bank"],
        },
        409,
    )
    bad = await client.post(
        PRODUCTS,
        json={"code": "lower-case", "name": "x", "components": [], "allowed_partner_kinds": []},
        headers=catalog.headers,
    )
    assert bad.status_code == 422
    assert {error["loc"][-1] for error in bad.json()["errors"]} == {"code", "components", "allowed_partner_kinds"}
    patched = await client.patch(f"{PRODUCTS}/{product['id']}", json={"active": False}, headers=catalog.headers)
    assert patched.json()["active"] is False


async def test_program_offers_only_products_allowed_for_the_partner_kind(catalog: Catalog) -> None:
    bank = await catalog.partner()
    await catalog.product()
    await catalog.product("LIFE_PLUS_FUND_SIP", ("insurer",))
    program = await catalog.program(bank["id"], ["BANK_WM_PLUS_EQUITY"])
    assert [product["code"] for product in program["products"]] == ["BANK_WM_PLUS_EQUITY"]
    assert program["attribution_window_days"] == 90
    assert (program["qualification_period_days"], program["hold_period_days"], program["clawback_period_days"]) == (
        90,
        30,
        180,
    )
    assert program["fee_schedule_in_force"] is None

    refused = await catalog.post(
        PROGRAMS,
        {
            "partner_id": bank["id"],
            "name": "x",
            "channel": "insurance_bundle",
            "effective_from": "2026-01-01",
            "product_codes": ["LIFE_PLUS_FUND_SIP"],
        },
        422,
    )
    assert "cannot be offered by a bank" in refused["detail"]
    unknown = await catalog.post(
        PROGRAMS,
        {
            "partner_id": bank["id"],
            "name": "x",
            "channel": "vip_referral",
            "effective_from": "2026-01-01",
            "product_codes": ["NOPE_CODE"],
        },
        422,
    )
    assert "NOPE_CODE" in unknown["detail"]


async def test_program_validation(catalog: Catalog) -> None:
    bank = await catalog.partner()
    body = {"partner_id": bank["id"], "name": "x", "channel": "vip_referral", "effective_from": "2026-01-01"}
    await catalog.post(PROGRAMS, {**body, "effective_to": "2025-12-31"}, 422)
    await catalog.post(PROGRAMS, {**body, "attribution_window_days": 0}, 422)
    await catalog.post(PROGRAMS, {**body, "partner_id": "ptn_unknown"}, 404)


async def test_program_update_and_product_change_are_audited(client: httpx.AsyncClient, catalog: Catalog) -> None:
    bank = await catalog.partner()
    await catalog.product()
    await catalog.product("BANK_DEPOSIT_PLUS_BOND")
    program = await catalog.program(bank["id"], ["BANK_WM_PLUS_EQUITY"])
    response = await client.patch(
        f"{PROGRAMS}/{program['id']}",
        json={"attribution_window_days": 120, "product_codes": ["BANK_DEPOSIT_PLUS_BOND", "BANK_WM_PLUS_EQUITY"]},
        headers=catalog.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["attribution_window_days"] == 120
    assert [p["code"] for p in response.json()["products"]] == ["BANK_DEPOSIT_PLUS_BOND", "BANK_WM_PLUS_EQUITY"]
    auditor = await client.get(
        "/v1/admin/audit-events",
        params={"object_id": program["id"], "action": "program.updated"},
        headers=catalog.headers,
    )
    assert auditor.status_code == 403  # alliance managers do not read the audit log


async def test_partner_sees_only_its_own_programs(
    client: httpx.AsyncClient, catalog: Catalog, caller: CallerFactory, session: AsyncSession
) -> None:
    await catalog.product()
    mine = await catalog.partner()
    theirs = await catalog.partner(legal_name="别家银行")
    my_program = await catalog.program(mine["id"], ["BANK_WM_PLUS_EQUITY"])
    their_program = await catalog.program(theirs["id"], ["BANK_WM_PLUS_EQUITY"])
    await catalog.schedule(my_program["id"])

    me = await caller("partner", partner=await session.get(Partner, mine["id"]))
    listed = (await client.get("/v1/programs", headers=me.headers)).json()
    assert [program["id"] for program in listed["data"]] == [my_program["id"]]

    own = await client.get(f"/v1/programs/{my_program['id']}", headers=me.headers)
    assert own.status_code == 200
    foreign = await client.get(f"/v1/programs/{their_program['id']}", headers=me.headers)
    assert foreign.status_code == 404
    assert theirs["id"] not in foreign.text and "别家银行" not in foreign.text

    narrowed = await caller("partner", partner=await session.get(Partner, mine["id"]), scopes=["referrals:write"])
    assert (await client.get("/v1/programs", headers=narrowed.headers)).status_code == 403
    staff = await caller("staff", role="finance")
    assert (await client.get("/v1/programs", headers=staff.headers)).status_code == 403
