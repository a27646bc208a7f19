"""Four eyes (DESIGN.md, "People"): the approver of a statement is not its issuer, and the one who marks it paid is
not its approver; compared by the actor, an API client by its id, a person by ``person:<username>``. A refusal is
403 ``second-person-required`` and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.catalog.models import Partner
from app.fees import statements
from app.fees.models import AccrualStatus, FeeAccrual, Statement, StatementStatus
from app.settlement import service as settlement
from tests.conftest import CallerFactory
from tests.reconciliation.books import Finance, book

NOW = datetime(2026, 4, 2, 10, 0, tzinfo=UTC)


async def _issued(finance: Finance, session: AsyncSession, partner: Partner) -> str:
    await book(session, partner.id, 30_000, ref="FE-1")
    draft = await finance.statement_of("2026-03", partner.id)
    await finance.act(draft["id"], "issue")
    return str(draft["id"])


async def _row(session: AsyncSession, statement_id: str) -> Statement:
    statement = (
        await session.scalars(
            select(Statement).where(Statement.id == statement_id).execution_options(populate_existing=True)
        )
    ).one()
    return statement


async def _audited(session: AsyncSession, statement_id: str, action: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(AuditEvent.object_id == statement_id, AuditEvent.action == action)
        )
        or 0
    )


async def _line_statuses(session: AsyncSession, statement_id: str) -> set[AccrualStatus]:
    rows = await session.scalars(
        select(FeeAccrual.status)
        .where(FeeAccrual.statement_id == statement_id)
        .execution_options(populate_existing=True)
    )
    return set(rows.all())


@pytest.fixture
async def three(client: httpx.AsyncClient, caller: CallerFactory) -> tuple[Finance, Finance, Finance]:
    return tuple([Finance(client, await caller("staff", role="finance")) for _ in range(3)])  # type: ignore[return-value]


async def test_the_issuer_may_not_approve_and_nothing_changes(
    three: tuple[Finance, Finance, Finance], session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    maker, _, _ = three
    sid = await _issued(maker, session, await make_partner())

    problem = await maker.act(sid, "approve", expect=403)

    assert problem["type"] == "/problems/second-person-required" and problem["acted_as"] == "issuer"
    statement = await _row(session, sid)
    assert (statement.status, statement.approved_at, statement.approved_by) == (StatementStatus.issued, None, None)
    assert statement.issued_by == maker.caller.client.id
    assert await _audited(session, sid, "statement.approved") == 0
    assert await _line_statuses(session, sid) == {AccrualStatus.statemented}


async def test_a_second_finance_client_approves_and_the_approver_may_not_pay(
    three: tuple[Finance, Finance, Finance], session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    maker, checker, _ = three
    sid = await _issued(maker, session, await make_partner())

    approved = await checker.act(sid, "approve")
    assert approved["status"] == "approved"
    statement = await _row(session, sid)
    assert (statement.issued_by, statement.approved_by) == (maker.caller.client.id, checker.caller.client.id)

    problem = await checker.act(sid, "mark-paid", expect=403, payment_ref="TRF-1")
    assert problem["type"] == "/problems/second-person-required" and problem["acted_as"] == "approver"
    statement = await _row(session, sid)
    assert (statement.status, statement.paid_at, statement.payment_ref) == (StatementStatus.approved, None, None)
    assert await _line_statuses(session, sid) == {AccrualStatus.statemented}
    assert await _audited(session, sid, "statement.paid") == 0


async def test_someone_other_than_the_approver_marks_it_paid(
    three: tuple[Finance, Finance, Finance], session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    maker, checker, payer = three
    sid = await _issued(maker, session, await make_partner())
    await checker.act(sid, "approve")

    paid = await payer.act(sid, "mark-paid", payment_ref="TRF-2")

    assert (paid["status"], paid["payment_ref"]) == ("paid", "TRF-2")
    statement = await _row(session, sid)
    assert statement.paid_by == payer.caller.client.id
    assert await _line_statuses(session, sid) == {AccrualStatus.paid}


async def test_people_are_compared_by_username_whatever_the_request(
    session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    partner = await make_partner()
    await book(session, partner.id, 12_000, ref="FE-P")
    wang_today = Actor(id="person:wang", kind="staff", request_id="r-1", ip_address="10.0.0.1")
    wang_later = Actor(id="person:wang", kind="staff", request_id="r-2", ip_address="10.0.0.2")
    li = Actor(id="person:li", kind="staff", request_id="r-3")
    [draft] = (await statements.close_period(session, wang_today, "2026-03", NOW)).statements
    await statements.issue(session, wang_today, draft.id, NOW)

    with pytest.raises(statements.SecondPersonRequired):
        await settlement.approve(session, wang_later, draft.id, NOW)
    approved = await settlement.approve(session, li, draft.id, NOW)
    assert (approved.status, approved.approved_by) == (StatementStatus.approved, "person:li")
    with pytest.raises(statements.SecondPersonRequired):
        await settlement.mark_paid(session, li, draft.id, "TRF-3", NOW)
    paid = await settlement.mark_paid(session, wang_later, draft.id, "TRF-3", NOW)
    assert (paid.status, paid.paid_by, paid.issued_by) == (StatementStatus.paid, "person:wang", "person:wang")
