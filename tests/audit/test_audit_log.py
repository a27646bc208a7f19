from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service
from app.audit.service import Actor
from tests.conftest import CallerFactory


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET action = 'edited'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
)
async def test_the_audit_log_is_append_only(session: AsyncSession, statement: str) -> None:
    await service.record(session, Actor.system("test"), "test.event", object_id="x")
    with pytest.raises(DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(text(statement))


async def test_auditors_read_and_filter_the_log(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    auditor = await caller("staff", role="auditor")
    bank = await caller("partner")
    response = await client.get(
        "/v1/admin/audit-events",
        params={"action": "client.created", "object_id": bank.client.id},
        headers=auditor.headers,
    )
    assert response.status_code == 200
    events = response.json()["data"]
    assert [event["action"] for event in events] == ["client.created"]
    assert events[0]["actor_id"] == "test"
    assert events[0]["details"]["partner_id"] == bank.partner_id
