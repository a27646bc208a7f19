"""Every PATCH route x every field of its body: an explicit null clears a field whose stored value may be empty, and
is refused (422, naming the field, nothing changed) for any other field.

The policy below is the expectation: which fields of which table may be emptied. A PATCH route the app gains
without an entry here fails the test, and so does a field added to a body without a decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api_contract.routes import operations, problem_errors
from tests.catalog.conftest import Catalog, credit_code
from tests.conftest import Caller, CallerFactory

Create = Callable[["Fixtures"], Awaitable[str]]


@dataclass
class Fixtures:
    catalog: Catalog
    client: httpx.AsyncClient
    manager: Caller
    partner: Caller
    serial: int = 0

    def next(self) -> int:
        self.serial += 1
        return self.serial


async def _partner(f: Fixtures) -> str:
    partner = await f.catalog.partner(
        credit_code=credit_code(f"91230100MA1XY{f.next():04d}"), payout_account_ref="6222-01"
    )
    return str(partner["id"])


async def _product(f: Fixtures) -> str:
    return str((await f.catalog.product(code=f"NULL_TEST_{f.next()}"))["id"])


async def _program(f: Fixtures) -> str:
    partner = await f.catalog.partner()
    code = f"NULL_TEST_{f.next()}"
    await f.catalog.product(code=code)
    return str((await f.catalog.program(partner["id"], [code], effective_to="2027-12-31"))["id"])


async def _fee_schedule(f: Fixtures) -> str:
    partner = await f.catalog.partner()
    program = await f.catalog.program(partner["id"], [])
    return str((await f.catalog.schedule(program["id"], revenue_share={"bps": 1000, "months": 12}))["id"])


async def _webhook_endpoint(f: Fixtures) -> str:
    response = await f.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.com/hooks", "event_types": ["referral.expired"], "description": "CRM"},
        headers={**f.partner.headers, "Idempotency-Key": f"patch-null-{f.next()}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass(frozen=True)
class Target:
    table: str
    create: Create
    nullable: frozenset[str]  # the fields a PATCH may clear with null (the column is nullable)
    as_partner: bool = False


POLICY: dict[str, Target] = {
    "/v1/admin/partners/{partner_id}": Target("partners", _partner, frozenset({"credit_code", "payout_account_ref"})),
    "/v1/admin/products/{product_id}": Target("bundled_products", _product, frozenset()),
    "/v1/admin/programs/{program_id}": Target("programs", _program, frozenset({"effective_to"})),
    "/v1/admin/fee-schedules/{schedule_id}": Target("fee_schedules", _fee_schedule, frozenset()),
    "/v1/webhook-endpoints/{endpoint_id}": Target(
        "webhook_endpoints", _webhook_endpoint, frozenset({"description"}), as_partner=True
    ),
}


async def _row(session: AsyncSession, table: str, row_id: str) -> dict[str, Any]:
    row = await session.scalar(text(f"SELECT to_jsonb(t) FROM {table} t WHERE id = :id"), {"id": row_id})
    assert row is not None, (table, row_id)
    return dict(row)


async def test_every_patch_route_and_field_takes_null_only_where_the_value_may_be_empty(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession
) -> None:
    document = (await client.get("/openapi.json")).json()
    patches = [operation for operation in operations(app, document) if operation.method == "PATCH"]
    assert {operation.path for operation in patches} == set(POLICY), "a PATCH route without a null policy"
    manager = await caller("staff", role="alliance_manager")
    fixtures = Fixtures(Catalog(client, manager), client, manager, await caller("partner"))
    checked = 0
    for operation in patches:
        target = POLICY[operation.path]
        body_model = operation.route.body_field.field_info.annotation
        assert isinstance(body_model, type) and issubclass(body_model, BaseModel)
        fields = {field.alias or name for name, field in body_model.model_fields.items()}
        assert target.nullable <= fields, operation.path
        headers = fixtures.partner.headers if target.as_partner else manager.headers
        for field in sorted(fields):
            row_id = await target.create(fixtures)
            before = await _row(session, target.table, row_id)
            path = operation.path.replace(operation.path[operation.path.rindex("{") :], row_id)
            response = await client.patch(path, json={field: None}, headers=headers)
            after = await _row(session, target.table, row_id)
            where = (operation.path, field)
            if field in target.nullable:
                assert response.status_code == 200, (*where, response.text)
                assert before[field] is not None and after[field] is None, where
                assert response.json()[field] is None, where
            else:
                assert response.status_code == 422, (*where, response.status_code, response.text)
                assert [error["loc"] for error in problem_errors(response)] == [["body", field]], where
                assert after == before, where
            checked += 1
    assert checked >= 25


async def test_a_null_next_to_a_valid_change_refuses_the_whole_patch(
    client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession
) -> None:
    partner = await caller("partner")
    fixtures = Fixtures(Catalog(client, await caller("staff", role="alliance_manager")), client, partner, partner)
    endpoint_id = await _webhook_endpoint(fixtures)
    before = await _row(session, "webhook_endpoints", endpoint_id)
    response = await client.patch(
        f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": None, "description": "new"}, headers=partner.headers
    )
    assert response.status_code == 422
    assert problem_errors(response)[0]["type"] == "null_not_allowed"
    assert await _row(session, "webhook_endpoints", endpoint_id) == before
