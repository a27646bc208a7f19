"""The staff API of risk cases: managers list, read, assign, annotate and close (once, by Idempotency-Key);
auditors read; finance, admins and partners are refused (403), no token is 401, an unknown case 404 — all as
problem documents. A partner's own calls never show a case."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.risk import service as risk
from app.risk.schemas import Signal, SignalKind
from tests.conftest import CallerFactory
from tests.fees.conftest import Ledger
from tests.risk.conftest import MakeStaffPerson

BASE = "/v1/admin/risk-cases"


async def _case(ledger: Ledger, session: AsyncSession, fingerprint: str = "burst:1") -> tuple[str, str]:
    referral_id, _ = await ledger.referral()
    case = await risk.raise_signal(
        session,
        Signal(
            kind=SignalKind.referral_burst,
            partner_id=ledger.partner_id,
            referral_ids=(referral_id,),
            evidence={"thresholds": {"per_day": 40}, "observed": {"per_day": 400}, "items": [referral_id]},
            fingerprint=fingerprint,
        ),
    )
    await session.flush()
    return case.id, referral_id


async def test_a_manager_lists_reads_assigns_notes_and_closes_once(
    make_ledger: Any,
    session: AsyncSession,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    staff_person: MakeStaffPerson,
) -> None:
    ledger: Ledger = await make_ledger()
    case_id, referral_id = await _case(ledger, session)
    manager = await caller("staff", role="alliance_manager")
    await staff_person("alliance_manager", "li.manager")

    listed = await client.get(BASE, params={"status": "open", "partner_id": ledger.partner_id}, headers=manager.headers)
    assert listed.status_code == 200
    [row] = listed.json()["data"]
    assert row["id"] == case_id and row["signal_kinds"] == ["referral_burst"] and row["referral_count"] == 1
    assert listed.json()["next_cursor"] is None

    read = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()
    assert read["referral_ids"] == [referral_id] and read["signals"][0]["evidence"]["observed"] == {"per_day": 400}
    assert [event["kind"] for event in read["timeline"]] == ["opened", "signal_added"]

    assigned = await client.post(
        f"{BASE}/{case_id}/assign", json={"assignee_id": "person:li.manager"}, headers=manager.headers
    )
    assert assigned.status_code == 200 and assigned.json()["assignee_id"] == "person:li.manager"
    mine = await client.get(BASE, params={"assignee_id": "person:li.manager"}, headers=manager.headers)
    assert [item["id"] for item in mine.json()["data"]] == [case_id]
    noted = await client.post(f"{BASE}/{case_id}/notes", json={"text": "Called the branch"}, headers=manager.headers)
    assert noted.status_code == 201 and noted.json()["kind"] == "note"

    body = {"outcome": "cleared", "reason": "Branch confirmed a payroll campaign"}
    keyed = {**manager.headers, "Idempotency-Key": "close-1"}
    closed = await client.post(f"{BASE}/{case_id}/close", json=body, headers=keyed)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["outcome"]) == ("closed", "cleared")
    replay = await client.post(f"{BASE}/{case_id}/close", json=body, headers=keyed)
    assert replay.status_code == 200 and replay.json() == closed.json()
    again = await client.post(
        f"{BASE}/{case_id}/close", json=body, headers={**manager.headers, "Idempotency-Key": "close-2"}
    )
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    missing_key = await client.post(f"{BASE}/{case_id}/close", json=body, headers=manager.headers)
    assert missing_key.status_code == 422
    timeline = (await client.get(f"{BASE}/{case_id}", headers=manager.headers)).json()["timeline"]
    assert [event["kind"] for event in timeline] == ["opened", "signal_added", "assigned", "note", "closed"]


async def test_who_may_see_and_act(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    ledger: Ledger = await make_ledger()
    case_id, _ = await _case(ledger, session)
    auditor = await caller("staff", role="auditor")
    assert (await client.get(f"{BASE}/{case_id}", headers=auditor.headers)).status_code == 200
    refused = await client.post(f"{BASE}/{case_id}/assign", json={"assignee_id": None}, headers=auditor.headers)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    for role in ("finance", "admin"):
        staff = await caller("staff", role=role)
        assert (await client.get(BASE, headers=staff.headers)).status_code == 403
    owner = await session.get(Partner, ledger.partner_id)
    for partner in (await caller("partner", partner=owner), await caller("partner")):
        assert (await client.get(BASE, headers=partner.headers)).status_code == 403
        assert (await client.get(f"{BASE}/{case_id}", headers=partner.headers)).status_code == 403
    assert (await client.get(BASE)).status_code == 401
    assert (await client.get(f"{BASE}/{case_id}")).status_code == 401
    manager = await caller("staff", role="alliance_manager")
    unknown = await client.get(f"{BASE}/rsk_unknown", headers=manager.headers)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    bad = await client.post(
        f"{BASE}/{case_id}/close",
        json={"outcome": "maybe", "reason": "x"},
        headers={**manager.headers, "Idempotency-Key": "k"},
    )
    assert bad.status_code == 422


async def test_the_list_pages_by_cursor(
    make_ledger: Any, session: AsyncSession, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    cases = []
    for n in range(3):
        ledger: Ledger = await make_ledger()
        cases.append((await _case(ledger, session, fingerprint=f"burst:{n}"))[0])
    manager = await caller("staff", role="alliance_manager")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(BASE, params=params, headers=manager.headers)).json()
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(cases) <= set(seen) and len(seen) == len(set(seen))
