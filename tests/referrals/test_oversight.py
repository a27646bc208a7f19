"""Staff read one referral (masked, with its partner, program and timeline) and the conflicts queue with both sides
named: partners, programs, the partners' references and the times, in a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, individual, national_id

REFERRALS = "/v1/referrals"


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` inside the block."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _refer(client: httpx.AsyncClient, desk: PartnerDesk, person: str, **subject: Any) -> dict[str, Any]:
    body = individual(desk.program.id, national_id=person, **subject)
    response = await client.post(REFERRALS, json=body, headers=desk.headers())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_staff_read_one_referral_masked_with_partner_program_and_timeline(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory
) -> None:
    person = national_id()
    referral = await _refer(client, bank, person, name="欧阳明月")
    manager = await caller("staff", role="alliance_manager")
    response = await client.get(f"/v1/admin/referrals/{referral['id']}", headers=manager.headers)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["id"], seen["status"], seen["external_ref"]) == (referral["id"], "eligible", referral["external_ref"])
    assert seen["partner"] == {"id": bank.partner.id, "name": bank.partner.display_name}
    assert seen["program"] == {"id": bank.program.id, "name": bank.program.name}
    assert seen["subject"] == referral["subject"] and person not in response.text and "欧阳明月" not in response.text
    assert [(entry["from_status"], entry["to_status"]) for entry in seen["timeline"]] == [
        (None, "received"),
        ("received", "eligible"),
    ]

    missing = await client.get("/v1/admin/referrals/ref_nobody", headers=manager.headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    as_partner = await client.get(f"/v1/admin/referrals/{referral['id']}", headers=bank.caller.headers)
    assert as_partner.status_code == 403


async def test_conflicts_name_both_sides_in_a_constant_number_of_queries(
    client: httpx.AsyncClient,
    make_desk: Any,
    caller: CallerFactory,
    engine: AsyncEngine,
) -> None:
    holder_bank = await make_desk(name="先到银行")
    manager = await caller("staff", role="alliance_manager")

    async def queue_length_queries() -> tuple[list[dict[str, Any]], int]:
        with counted_statements(engine) as statements:
            response = await client.get("/v1/admin/conflicts", params={"limit": 100}, headers=manager.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"]), len(statements)

    submitted: dict[str, tuple[dict[str, Any], dict[str, Any], PartnerDesk]] = {}
    for count in (1, 4):
        while len(submitted) < count:
            later_bank = await make_desk(name=f"后到银行{len(submitted)}")
            person = national_id()
            holding = await _refer(client, holder_bank, person)
            later = (
                await client.post(
                    REFERRALS, json=individual(later_bank.program.id, national_id=person), headers=later_bank.headers()
                )
            ).json()
            assert later["status"] == "duplicate"
            submitted[later["id"]] = (holding, later, later_bank)
        conflicts, queries = await queue_length_queries()
        if count == 1:
            queries_for_one = queries
    assert queries == queries_for_one

    mine = {item["duplicate_referral_id"]: item for item in conflicts if item["duplicate_referral_id"] in submitted}
    assert set(mine) == set(submitted)
    for later_id, (holding, later, later_bank) in submitted.items():
        item = mine[later_id]
        assert item["status"] == "open" and item["holding_referral_id"] == holding["id"]
        assert item["holding"] == {
            "referral_id": holding["id"],
            "external_ref": holding["external_ref"],
            "status": "eligible",
            "partner": {"id": holder_bank.partner.id, "name": holder_bank.partner.display_name},
            "program": {"id": holder_bank.program.id, "name": holder_bank.program.name},
            "received_at": holding["created_at"],
        }
        assert item["duplicate"] == {
            "referral_id": later["id"],
            "external_ref": later["external_ref"],
            "status": "duplicate",
            "partner": {"id": later_bank.partner.id, "name": later_bank.partner.display_name},
            "program": {"id": later_bank.program.id, "name": later_bank.program.name},
            "received_at": later["created_at"],
        }
        assert item["created_at"] >= later["created_at"]


async def test_the_staff_routes_are_documented(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert "get" in paths["/v1/admin/referrals/{referral_id}"]
    assert "post" in paths["/v1/admin/referrals/{referral_id}/award"]
    assert {"holding", "duplicate"} <= set(schemas["ConflictOut"]["properties"])
    assert {"partner", "program", "external_ref", "received_at"} <= set(schemas["ConflictSide"]["properties"])
    assert {"partner", "program", "timeline", "subject"} <= set(schemas["StaffReferralOut"]["properties"])
    assert "attribution_moved" in schemas["FeeRule"]["enum"]
