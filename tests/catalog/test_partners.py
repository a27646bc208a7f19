from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.catalog.models import Partner
from tests.catalog.conftest import Catalog, credit_code
from tests.conftest import Caller, CallerFactory

PARTNERS = "/v1/admin/partners"


async def test_create_partner_with_defaults(catalog: Catalog) -> None:
    partner = await catalog.partner(credit_code=credit_code().lower())
    assert partner["id"].startswith("ptn_")
    assert partner["status"] == "active"
    assert partner["vat_rate_bp"] == 600 and partner["vat_inclusive"] is False
    assert partner["rate_limit_tier"] == "standard"
    assert partner["display_name"] == "哈尔滨测试银行"
    assert partner["credit_code"] == credit_code()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"credit_code": credit_code()[:-1] + ("0" if credit_code()[-1] != "0" else "1")}, "credit_code"),
        ({"vat_rate_bp": 10_001}, "vat_rate_bp"),
        ({"vat_rate_bp": 6.5}, "vat_rate_bp"),
        ({"kind": "hedge_fund"}, "kind"),
        ({"contacts": [{"name": "王经理", "email": "not-an-email"}]}, "contacts"),
    ],
)
async def test_invalid_partner_is_422_and_creates_nothing(
    client: httpx.AsyncClient, manager: Caller, session: AsyncSession, fields: dict[str, object], field: str
) -> None:
    before = len((await session.scalars(select(Partner.id))).all())
    response = await client.post(
        PARTNERS, json={"kind": "bank", "legal_name": "银行", **fields}, headers=manager.headers
    )
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["errors"])
    assert len((await session.scalars(select(Partner.id))).all()) == before


async def test_credit_code_is_unique(catalog: Catalog) -> None:
    await catalog.partner(credit_code=credit_code())
    duplicate = await catalog.post(
        PARTNERS, {"kind": "bank", "legal_name": "另一家", "credit_code": credit_code()}, 409
    )
    assert duplicate["type"].endswith("/conflict")


async def test_update_records_before_and_after(
    client: httpx.AsyncClient, catalog: Catalog, session: AsyncSession
) -> None:
    partner = await catalog.partner()
    response = await client.patch(
        f"{PARTNERS}/{partner['id']}",
        json={"vat_rate_bp": 300, "vat_inclusive": True, "display_name": "Harbin Test"},
        headers=catalog.headers,
    )
    assert response.status_code == 200
    assert response.json()["vat_rate_bp"] == 300
    event = (
        await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "partner.updated", AuditEvent.object_id == partner["id"])
        )
    ).one()
    assert event.details["changes"] == {
        "vat_rate_bp": {"from": 600, "to": 300},
        "vat_inclusive": {"from": False, "to": True},
        "display_name": {"from": "哈尔滨测试银行", "to": "Harbin Test"},
    }


async def test_lifecycle_and_suspension_stops_the_partners_tokens(
    client: httpx.AsyncClient, catalog: Catalog, caller: CallerFactory, session: AsyncSession
) -> None:
    partner_row = await session.get(Partner, (await catalog.partner())["id"])
    assert partner_row is not None
    bank = await caller("partner", partner=partner_row)
    assert (await client.get("/v1/programs", headers=bank.headers)).status_code == 200

    path = f"{PARTNERS}/{partner_row.id}"
    suspended = await client.post(f"{path}/suspend", json={"reason": "KYC review"}, headers=catalog.headers)
    assert suspended.json()["status"] == "suspended" and suspended.json()["status_reason"] == "KYC review"
    assert (await client.get("/v1/programs", headers=bank.headers)).status_code == 401

    again = await client.post(f"{path}/suspend", json={"reason": "twice"}, headers=catalog.headers)
    assert again.status_code == 409 and again.json()["type"].endswith("/invalid-transition")

    assert (
        await client.post(f"{path}/reactivate", json={"reason": "cleared"}, headers=catalog.headers)
    ).status_code == 200
    assert (await client.get("/v1/programs", headers=bank.headers)).status_code == 200

    terminated = await client.post(f"{path}/terminate", json={"reason": "agreement ended"}, headers=catalog.headers)
    assert terminated.json()["status"] == "terminated"
    assert (
        await client.post(f"{path}/reactivate", json={"reason": "oops"}, headers=catalog.headers)
    ).status_code == 409
    assert (await client.patch(path, json={"vat_rate_bp": 0}, headers=catalog.headers)).status_code == 409
    assert (await client.get(path, headers=catalog.headers)).status_code == 200  # history is kept
    actions = (await session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == partner_row.id))).all()
    assert {"partner.created", "partner.suspended", "partner.active", "partner.terminated"} <= set(actions)


async def test_lists_filter_and_paginate(client: httpx.AsyncClient, catalog: Catalog) -> None:
    for _ in range(3):
        await catalog.partner(kind="insurer")
    await catalog.partner(kind="corporate")
    first = (await client.get(PARTNERS, params={"kind": "insurer", "limit": 2}, headers=catalog.headers)).json()
    second = (
        await client.get(
            PARTNERS, params={"kind": "insurer", "limit": 2, "cursor": first["next_cursor"]}, headers=catalog.headers
        )
    ).json()
    ids = [item["id"] for item in first["data"] + second["data"]]
    assert len(ids) == len(set(ids)) == 3
    assert second["next_cursor"] is None


async def test_idempotent_create(client: httpx.AsyncClient, manager: Caller, session: AsyncSession) -> None:
    body = {"kind": "bank", "legal_name": "幂等银行"}
    headers = {**manager.headers, "Idempotency-Key": "create-bank-1"}
    first = await client.post(PARTNERS, json=body, headers=headers)
    second = await client.post(PARTNERS, json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    rows = (await session.scalars(select(Partner).where(Partner.legal_name == "幂等银行"))).all()
    assert len(rows) == 1
    reused = await client.post(PARTNERS, json={**body, "legal_name": "另一个"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")


@pytest.mark.parametrize("role", ["finance", "auditor", "admin"])
async def test_other_staff_read_but_cannot_write(client: httpx.AsyncClient, caller: CallerFactory, role: str) -> None:
    staff = await caller("staff", role=role)
    assert (await client.get(PARTNERS, headers=staff.headers)).status_code == 200
    denied = await client.post(PARTNERS, json={"kind": "bank", "legal_name": "x"}, headers=staff.headers)
    assert denied.status_code == 403


async def test_partner_and_back_office_tokens_are_403_on_the_admin_catalog(
    client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    for who in (await caller("partner"), await caller("back_office")):
        assert (await client.get(PARTNERS, headers=who.headers)).status_code == 403
        assert (await client.get("/v1/admin/programs", headers=who.headers)).status_code == 403
