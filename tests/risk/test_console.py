"""The risk pages: the inbox lists the case with its partner and signal, the case page shows the evidence,
the referrals, the held lines and the timeline; a manager assigns, notes and closes through the forms (audited
with the person's name); an auditor reads without forms; a closed case is locked; an unknown case leads back to
the inbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.risk import service as risk
from app.risk.schemas import Signal, SignalKind
from tests.fees.conftest import Ledger


async def _case(ledger: Ledger, session: AsyncSession) -> tuple[str, str]:
    referral_id, _ = await ledger.referral()
    case = await risk.raise_signal(
        session,
        Signal(
            kind=SignalKind.reused_consent,
            partner_id=ledger.partner_id,
            referral_ids=(referral_id,),
            evidence={"thresholds": {"clients_per_record": 5}, "observed": {"clients": 37}, "items": ["ns:9f3a"]},
            fingerprint=f"consent:{referral_id}",
        ),
    )
    await session.flush()
    return case.id, referral_id


async def test_the_inbox_and_the_case_page(make_ledger: Any, session: AsyncSession, console_as: Any) -> None:
    ledger: Ledger = await make_ledger()
    case_id, referral_id = await _case(ledger, session)
    manager = await console_as("alliance_manager")

    inbox = await manager.client.get("/console/risk-cases")
    assert inbox.status_code == 200
    assert f'data-case="{case_id}"' in inbox.text and "授权凭证重复使用" in inbox.text and "账本银行" in inbox.text
    assert 'href="/console/risk-cases"' in inbox.text  # the navigation entry
    mine = await manager.client.get("/console/risk-cases", params={"tab": "open", "whose": "mine"})
    assert f'data-case="{case_id}"' not in mine.text and "没有符合筛选条件的记录" in mine.text
    bad = await manager.client.get("/console/risk-cases", params={"tab": "nope"})
    assert bad.status_code == 303 and bad.headers["location"] == "/console/risk-cases?tab=open"

    page = await manager.client.get(f"/console/risk-cases/{case_id}")
    assert page.status_code == 200
    html = page.text
    assert "clients_per_record" in html and "37" in html and "ns:9f3a" in html
    assert referral_id in html and 'action="/console/risk-cases/' in html and 'name="csrf_token"' in html
    assert 'data-event="opened"' in html and 'data-event="signal_added"' in html

    unknown = await manager.client.get("/console/risk-cases/rsk_unknown")
    assert unknown.status_code == 303 and unknown.headers["location"] == "/console/risk-cases"


async def test_a_manager_assigns_notes_and_closes_through_the_forms(
    make_ledger: Any, session: AsyncSession, console_as: Any
) -> None:
    ledger: Ledger = await make_ledger()
    case_id, referral_id = await _case(ledger, session)
    manager = await console_as("alliance_manager")
    here = f"/console/risk-cases/{case_id}"

    assigned = await manager.post(f"{here}/assign", assignee="me")
    assert assigned.status_code == 303 and assigned.headers["location"] == here
    assert await session.scalar(text("SELECT assignee_id FROM risk_cases WHERE id = :id"), {"id": case_id}) == (
        manager.actor_id
    )
    mine = await manager.client.get("/console/risk-cases", params={"whose": "mine"})
    assert f'data-case="{case_id}"' in mine.text
    assert (await manager.post(f"{here}/notes", text="致电分行核实")).status_code == 303

    unconfirmed = await manager.post(f"{here}/close", outcome="confirmed", reason="同一授权凭证用于37名客户")
    assert unconfirmed.status_code == 303
    assert await session.scalar(text("SELECT status FROM risk_cases WHERE id = :id"), {"id": case_id}) == "open"
    closed = await manager.post(f"{here}/close", outcome="confirmed", reason="同一授权凭证用于37名客户", confirm="yes")
    assert closed.status_code == 303
    row = (
        await session.execute(text("SELECT status, outcome, closed_by FROM risk_cases WHERE id = :id"), {"id": case_id})
    ).one()
    assert tuple(row) == ("closed", "confirmed", manager.actor_id)
    assert await session.scalar(text("SELECT status FROM referrals WHERE id = :id"), {"id": referral_id}) == "rejected"
    actions = set(
        (
            await session.scalars(
                text("SELECT action FROM audit_events WHERE object_id = :id AND actor_id = :actor"),
                {"id": case_id, "actor": manager.actor_id},
            )
        ).all()
    )
    assert actions == {"risk_case.assigned", "risk_case.noted", "risk_case.closed"}

    locked = await manager.client.get(here)
    assert "已结案件不可修改" in locked.text and f'action="{here}/close"' not in locked.text
    again = await manager.post(f"{here}/close", outcome="cleared", reason="again", confirm="yes")
    assert again.status_code == 303
    assert await session.scalar(text("SELECT outcome FROM risk_cases WHERE id = :id"), {"id": case_id}) == "confirmed"


async def test_an_auditor_reads_without_forms_and_finance_is_refused(
    make_ledger: Any, session: AsyncSession, console_as: Any
) -> None:
    ledger: Ledger = await make_ledger()
    case_id, _ = await _case(ledger, session)
    auditor = await console_as("auditor")
    page = await auditor.client.get(f"/console/risk-cases/{case_id}")
    assert page.status_code == 200 and f'action="/console/risk-cases/{case_id}/close"' not in page.text
    assert "仅联盟经理可处理风险案件" in page.text
    assert (await auditor.post(f"/console/risk-cases/{case_id}/assign", assignee="me")).status_code == 403
    finance = await console_as("finance")
    assert (await finance.client.get("/console/risk-cases")).status_code == 403
