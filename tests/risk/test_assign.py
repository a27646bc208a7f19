"""Whom a risk case may be given to: a person who acts on risk cases (an active alliance manager, as
``person:<username>``) or nobody. Anyone else — an unknown username, a disabled account, a finance person, an
auditor, something that is not a person at all — is a 422 ``risk-assignee-invalid`` problem, and the case, its
timeline and the audit log are as they were. The console's form says so in a message instead of failing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.risk.models import RiskCase
from tests.conftest import CallerFactory
from tests.fees.conftest import Ledger
from tests.risk.conftest import MakeStaffPerson, open_case

BASE = "/v1/admin/risk-cases"
INVALID = "/problems/risk-assignee-invalid"


async def _assigned_audits(session: AsyncSession, case_id: str) -> int:
    query = select(func.count()).where(
        col(AuditEvent.object_id) == case_id, col(AuditEvent.action) == "risk_case.assigned"
    )
    return int(await session.scalar(query) or 0)


async def _fresh_case(make_ledger: Any, session: AsyncSession) -> str:
    ledger: Ledger = await make_ledger()
    referral_id, _ = await ledger.referral()
    return await open_case(session, ledger.partner_id, (referral_id,), f"assign:{referral_id}")


async def test_a_manager_is_assigned_on_the_timeline_and_audited_and_null_unassigns(
    make_ledger: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    staff_person: MakeStaffPerson,
) -> None:
    case_id = await _fresh_case(make_ledger, session)
    manager = await caller("staff", role="alliance_manager")
    colleague = await staff_person("alliance_manager")

    assigned = await client.post(f"{BASE}/{case_id}/assign", json={"assignee_id": colleague}, headers=manager.headers)
    assert assigned.status_code == 200, assigned.text
    read = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    assert read["assignee_id"] == colleague
    [event] = [event for event in read["timeline"] if event["kind"] == "assigned"]
    assert event["details"] == {"assignee_id": colleague, "previous": None}
    assert event["actor_id"] == manager.client.id
    audit = (
        await session.scalars(
            select(AuditEvent).where(
                col(AuditEvent.object_id) == case_id, col(AuditEvent.action) == "risk_case.assigned"
            )
        )
    ).one()
    assert audit.details["assignee_id"] == colleague

    unassigned = await client.post(f"{BASE}/{case_id}/assign", json={"assignee_id": None}, headers=manager.headers)
    assert unassigned.status_code == 200 and unassigned.json()["assignee_id"] is None
    read = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    assert read["assignee_id"] is None
    assert [event["details"] for event in read["timeline"] if event["kind"] == "assigned"] == [
        {"assignee_id": colleague, "previous": None},
        {"assignee_id": None, "previous": colleague},
    ]
    assert await _assigned_audits(session, case_id) == 2


@pytest.mark.parametrize(
    "who",
    ["unknown", "disabled", "finance", "auditor", "admin", "bare-username", "client", "empty", "garbage", "uppercase"],
)
async def test_anyone_else_is_refused_and_nothing_changes(
    who: str,
    make_ledger: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    staff_person: MakeStaffPerson,
) -> None:
    case_id = await _fresh_case(make_ledger, session)
    manager = await caller("staff", role="alliance_manager")
    first = await staff_person("alliance_manager")
    assert (
        await client.post(f"{BASE}/{case_id}/assign", json={"assignee_id": first}, headers=manager.headers)
    ).status_code == 200
    before = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    audits = await _assigned_audits(session, case_id)

    active_manager = first.removeprefix("person:")
    assignee = {
        "unknown": "person:nobody-by-this-name",
        "disabled": await staff_person("alliance_manager", disabled=True) if who == "disabled" else "",
        "finance": await staff_person("finance") if who == "finance" else "",
        "auditor": await staff_person("auditor") if who == "auditor" else "",
        "admin": await staff_person("admin") if who == "admin" else "",
        "bare-username": active_manager,  # an existing manager, but not written as a person
        "client": manager.client.id,  # a staff client: not a person
        "empty": "person:",
        "garbage": "person:../../etc; DROP TABLE persons",
        "uppercase": f"person:{active_manager.upper()}",
    }[who]

    refused = await client.post(f"{BASE}/{case_id}/assign", json={"assignee_id": assignee}, headers=manager.headers)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == INVALID and problem["status"] == 422
    assert "person:<username>" in problem["detail"] and problem["detail"].isascii()
    after = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    assert after == before and after["assignee_id"] == first
    assert await _assigned_audits(session, case_id) == audits
    stored = await session.get(RiskCase, case_id, populate_existing=True)
    assert stored is not None and stored.assignee_id == first


async def test_the_console_form_says_why_and_changes_nothing(
    make_ledger: Any, session: AsyncSession, console_as: Any, staff_person: MakeStaffPerson
) -> None:
    case_id = await _fresh_case(make_ledger, session)
    manager = await console_as("alliance_manager")
    here = f"/console/risk-cases/{case_id}"
    for assignee in ("person:nobody-by-this-name", await staff_person("finance")):
        refused = await manager.post(f"{here}/assign", assignee=assignee)
        assert refused.status_code == 303 and refused.headers["location"] == here
        page = await manager.client.get(here)
        assert page.status_code == 200 and "请将案件分派给账户有效的联盟经理" in page.text
        stored = await session.get(RiskCase, case_id, populate_existing=True)
        assert stored is not None and stored.assignee_id is None
    assert await _assigned_audits(session, case_id) == 0

    colleague = await staff_person("alliance_manager")
    assigned = await manager.post(f"{here}/assign", assignee=colleague)
    assert assigned.status_code == 303
    stored = await session.get(RiskCase, case_id, populate_existing=True)
    assert stored is not None and stored.assignee_id == colleague
    assert "案件已分派" in (await manager.client.get(here)).text
