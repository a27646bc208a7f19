"""The finance pages over HTTP, signed in as people: every page answers, every action changes the rows it should
(and a refused one nothing), four eyes holds between two finance people, auditors read without a single button,
other roles get the 403 page, no session leads to sign-in, and a form without the session's CSRF token is refused."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.business_time import month_of
from app.fees import statements
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule, Statement, StatementStatus
from app.reconciliation.models import ReconciliationItem, Resolution
from tests.console.conftest import ConsoleAs, SignedIn
from tests.console.finance.conftest import CLERK, Books


def flash(response: httpx.Response) -> str:
    """The message the next page will show (the flash cookie set by the redirect)."""
    cookie = response.cookies.get("console_flash") or ""
    return unquote(cookie)


async def _issued(books: Books, session: AsyncSession) -> Statement:
    statement = (await books.close_march())[books.bank.id]
    return await statements.issue(session, CLERK, statement.id, clock.now())


async def _count(session: AsyncSession, model: type, *where: object) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


# --- periods ------------------------------------------------------------------------------------------------------


async def test_finance_reviews_the_summary_then_closes_march(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    finance = await console_as("finance")
    periods = await finance.client.get("/console/periods")
    assert periods.status_code == 200
    assert 'href="/console/periods/2026-03/close"' in periods.text

    summary = await finance.client.get("/console/periods/2026-03/close")
    assert summary.status_code == 200
    page = summary.text
    assert "哈尔滨银行股份有限公司" in page and "中国人寿保险股份有限公司" in page
    assert "2,530.01" in page  # 1,000.00 + 500.01 - 30.00 + 1,060.00: the amount to go on statements
    assert "A-4" in page and "冻结期至 2026-04-19" in page  # the held line, and until when (Beijing time)
    assert await _count(session, Statement) == 0  # the summary changes nothing

    closed = await finance.post("/console/periods/2026-03/close")
    assert closed.status_code == 303 and closed.headers["location"] == "/console/statements?period=2026-03"
    assert "2026-03 已关账" in flash(closed)
    rows = (await session.scalars(select(Statement).where(Statement.period == "2026-03"))).all()
    assert {(row.partner_id, row.status, row.line_count) for row in rows} == {
        (books.bank.id, StatementStatus.draft, 3),
        (books.insurer.id, StatementStatus.draft, 1),
    }


async def test_a_month_not_ended_cannot_be_closed(books: Books, session: AsyncSession, console_as: ConsoleAs) -> None:
    finance = await console_as("finance")
    current = month_of(clock.now()).name
    refused = await finance.post(f"/console/periods/{current}/close")
    assert refused.status_code == 303 and refused.headers["location"] == "/console/periods"
    assert "该月份尚未结束" in flash(refused)
    assert await _count(session, Statement) == 0


# --- statements ---------------------------------------------------------------------------------------------------


async def test_the_status_strip_counts_and_sums_and_filters_live_in_the_url(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    march = await books.close_march()
    await statements.issue(session, CLERK, march[books.insurer.id].id, clock.now())
    finance = await console_as("finance")

    listed = await finance.client.get("/console/statements")
    assert listed.status_code == 200
    # The bank's draft: 1,470.01 + 6% VAT 88.20 = 1,558.21; the insurer's issued: 1,060.00 (VAT included).
    assert "草稿 · 1" in listed.text and "1,558.21" in listed.text
    assert "已出具 · 1" in listed.text and "1,060.00" in listed.text
    assert "已付款 · 0" in listed.text

    drafts = await finance.client.get("/console/statements", params={"status": "draft"})
    assert "哈尔滨银行股份有限公司" in drafts.text and "中国人寿保险股份有限公司</a>" not in drafts.text
    bad = await finance.client.get("/console/statements", params={"status": "nonsense", "period": "2026-03"})
    assert bad.status_code == 303 and bad.headers["location"] == "/console/statements?period=2026-03"
    empty = await finance.client.get("/console/statements", params={"period": "2025-01"})
    assert "没有符合筛选条件的记录" in empty.text


async def test_finance_issues_a_draft_and_the_person_is_its_maker(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = (await books.close_march())[books.bank.id]
    finance = await console_as("finance")
    confirm = await finance.client.get(f"/console/statements/{statement.id}", params={"confirm": "issue"})
    assert confirm.status_code == 200 and f'action="/console/statements/{statement.id}/issue"' in confirm.text

    issued = await finance.post(f"/console/statements/{statement.id}/issue")
    assert issued.status_code == 303 and issued.headers["location"] == f"/console/statements/{statement.id}"
    row = await books.statement(statement.id)
    assert (row.status, row.issued_by) == (StatementStatus.issued, finance.actor_id)


async def test_four_eyes_through_the_console(books: Books, session: AsyncSession, console_as: ConsoleAs) -> None:
    statement = (await books.close_march())[books.bank.id]
    maker, checker = await console_as("finance"), await console_as("finance")
    await maker.post(f"/console/statements/{statement.id}/issue")

    page = await maker.client.get(f"/console/statements/{statement.id}")
    assert "disabled" in page.text and "您是本结算单的经办人，须由另一位财务人员审批。" in page.text
    assert f"经办: <strong>{maker.username}</strong>" in page.text.replace("：", ": ")
    refused = await maker.post(f"/console/statements/{statement.id}/approve")
    assert refused.status_code == 303 and "双人复核" in flash(refused)
    row = await books.statement(statement.id)
    assert (row.status, row.approved_by) == (StatementStatus.issued, None)

    approved = await checker.post(f"/console/statements/{statement.id}/approve")
    assert approved.status_code == 303 and "结算单已审批" in flash(approved)
    row = await books.statement(statement.id)
    assert (row.status, row.issued_by, row.approved_by) == (StatementStatus.approved, maker.actor_id, checker.actor_id)

    unpaid = await checker.post(f"/console/statements/{statement.id}/mark-paid", payment_ref="TRF-1")
    assert "双人复核" in flash(unpaid)
    assert (await books.statement(statement.id)).status is StatementStatus.approved
    no_reference = await maker.post(f"/console/statements/{statement.id}/mark-paid", payment_ref="  ")
    assert no_reference.headers["location"].endswith("?confirm=pay")
    assert (await books.statement(statement.id)).status is StatementStatus.approved

    paid = await maker.post(f"/console/statements/{statement.id}/mark-paid", payment_ref="ICBC-2026-0042")
    assert "已标记为已付款" in flash(paid)
    row = await books.statement(statement.id)
    assert (row.status, row.payment_ref, row.paid_by) == (StatementStatus.paid, "ICBC-2026-0042", maker.actor_id)
    lines = (await session.scalars(select(FeeAccrual.status).where(FeeAccrual.statement_id == statement.id))).all()
    assert set(lines) == {AccrualStatus.paid}
    locked = await checker.client.get(f"/console/statements/{statement.id}")
    assert "已结清并锁定" in locked.text and "?confirm=" not in locked.text


async def test_the_statement_page_shows_lines_claim_discrepancies_and_trail(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = await _issued(books, session)
    await books.claim(statement.id, [("A-1", "funded_bounty", 100_000), ("A-2", "bundle_fee", 60_001)])
    finance = await console_as("finance")
    page = (await finance.client.get(f"/console/statements/{statement.id}")).text
    for figure in ("1,470.01", "88.20", "1,558.21", "-30.00", "600.01"):  # lines, VAT, gross, a clawback, theirs
        assert figure in page
    assert 'class="num negative">-30.00' in page
    assert "金额不符" in page and "对方未申报" in page  # A-2 differs; A-3 is not claimed
    assert "出具" in page and "合作机构上传对账单" in page  # the audit trail
    assert "审批前须处理合作机构对账单的全部差异" in page  # approve is disabled, and says why

    printed = await finance.client.get(f"/console/statements/{statement.id}/print")
    assert printed.status_code == 200 and "1,558.21" in printed.text and 'class="sidebar"' not in printed.text
    csv = await finance.client.get(f"/console/statements/{statement.id}/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv") and "A-2" in csv.text
    xlsx = await finance.client.get(f"/console/statements/{statement.id}/export", params={"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    missing = await finance.client.get("/console/statements/stm_nope")
    assert missing.status_code == 404


# --- discrepancies ------------------------------------------------------------------------------------------------


async def test_finance_resolves_a_discrepancy_from_the_queue(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = await _issued(books, session)
    await books.claim(
        statement.id,
        [("A-1", "funded_bounty", 100_000), ("A-2", "bundle_fee", 60_001), ("A-3", "clawback", -3_000)],
    )
    [item] = (
        await session.scalars(select(ReconciliationItem).where(ReconciliationItem.match_class == "amount_mismatch"))
    ).all()
    finance = await console_as("finance")
    queue = await finance.client.get("/console/discrepancies")
    assert queue.status_code == 200 and "哈尔滨银行股份有限公司" in queue.text and "100.00" in queue.text
    panel = await finance.client.get("/console/discrepancies", params={"resolve": item.id})
    assert f'action="/console/discrepancies/{item.id}/resolve"' in panel.text

    no_note = await finance.post(f"/console/discrepancies/{item.id}/resolve", resolution="accept_theirs", note="")
    assert "请选择处理方式" in flash(no_note)
    assert (await session.get(ReconciliationItem, item.id, populate_existing=True)).resolution is None  # type: ignore[union-attr]

    done = await finance.post(
        f"/console/discrepancies/{item.id}/resolve",
        resolution="accept_theirs",
        note="合同附件确认",
        next="/console/discrepancies",
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/discrepancies"
    resolved = await session.get(ReconciliationItem, item.id, populate_existing=True)
    assert resolved is not None
    assert (resolved.resolution, resolved.resolved_by) == (Resolution.accept_theirs, finance.actor_id)
    adjustment = await session.get(FeeAccrual, resolved.adjustment_id)
    assert adjustment is not None and (adjustment.rule, adjustment.amount_fen) == (FeeRule.adjustment, 10_000)
    again = await finance.client.get("/console/discrepancies")
    assert "没有待处理的差异" in again.text  # nothing left: the empty inbox


# --- who may --------------------------------------------------------------------------------------------------------

POSTS = ("issue", "approve", "mark-paid")


async def test_auditors_read_every_page_without_a_button_and_may_not_act(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = (await books.close_march())[books.bank.id]
    auditor = await console_as("auditor")
    for path in (
        "/console/periods",
        "/console/periods/2026-03/close",
        "/console/statements",
        f"/console/statements/{statement.id}",
        f"/console/statements/{statement.id}/print",
        "/console/discrepancies",
    ):
        page = await auditor.client.get(path)
        assert page.status_code == 200, path
        assert 'method="post" action="/console/statements' not in page.text, path
        assert 'method="post" action="/console/periods' not in page.text, path
        assert "?confirm=" not in page.text, path
    for action in POSTS:
        refused = await auditor.post(f"/console/statements/{statement.id}/{action}", payment_ref="X")
        assert refused.status_code == 403
    assert (await auditor.post("/console/periods/2026-03/close")).status_code == 403
    assert (await books.statement(statement.id)).status is StatementStatus.draft


@pytest.mark.parametrize("role", ["alliance_manager", "admin"])
async def test_other_roles_get_the_403_page(books: Books, console_as: ConsoleAs, role: str) -> None:
    statement = (await books.close_march())[books.bank.id]
    someone = await console_as(role)
    for path in (
        "/console/periods",
        "/console/statements",
        f"/console/statements/{statement.id}",
        "/console/discrepancies",
    ):
        assert (await someone.client.get(path)).status_code == 403, path
    assert (await someone.post(f"/console/statements/{statement.id}/issue")).status_code == 403
    assert (await books.statement(statement.id)).status is StatementStatus.draft


async def test_no_session_leads_to_sign_in(books: Books, client: httpx.AsyncClient) -> None:
    statement = (await books.close_march())[books.bank.id]
    for path in (
        "/console/periods",
        f"/console/statements/{statement.id}",
        "/console/discrepancies?match_class=unknown",
    ):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/console/sign-in?next=/console/"
        )
    posted = await client.post(f"/console/statements/{statement.id}/issue", data={"csrf_token": "x"})
    assert posted.status_code == 303 and (await books.statement(statement.id)).status is StatementStatus.draft


async def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = (await books.close_march())[books.bank.id]
    finance: SignedIn = await console_as("finance")
    for data in ({}, {"csrf_token": "not-this-sessions"}):
        refused = await finance.client.post(f"/console/statements/{statement.id}/issue", data=data)
        assert refused.status_code == 403
    assert (await finance.client.post("/console/periods/2026-04/close", data={})).status_code == 403
    assert (await books.statement(statement.id)).status is StatementStatus.draft
    assert await _count(session, Statement, Statement.period == "2026-04") == 0


async def test_htmx_gets_the_results_region_and_english_readers_get_english(
    books: Books, session: AsyncSession, console_as: ConsoleAs
) -> None:
    statement = await _issued(books, session)
    finance = await console_as("finance")
    fragment = await finance.client.get(
        "/console/statements", params={"status": "issued"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text and "哈尔滨银行股份有限公司" in fragment.text
    finance.client.cookies.set("console_lang", "en")
    english = await finance.client.get(f"/console/statements/{statement.id}")
    assert "Maker" in english.text and "Net of VAT" in english.text and "Gross" in english.text
