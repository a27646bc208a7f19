"""Finance in the browser: a finance officer closes last month after reading its summary, issues the new
statement, resolves the partner's discrepancy, is refused when approving the statement they issued (four eyes),
and a second finance officer approves it.

The partner's fee lines and its claim are written through the services into the served database (the partner's
side is not a console page); everything finance does goes through the pages, signed in as the demo's two finance
people."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import make_url, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core import clock
from app.core.business_time import month_of
from app.core.tenancy import Tenant
from app.fees.models import FeeRule, Statement
from app.reconciliation import service as reconciliation
from app.reconciliation.service import ClaimedLine
from tests.e2e.conftest import Served, sign_in
from tests.reconciliation.books import book

SHOTS = Path("/tmp/shots")
PARTNER = "黑龙江农村商业银行股份有限公司"
T = TypeVar("T")


def _in_database(served: Served, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction on the served database (in a thread: pytest's loop may run)."""

    async def run() -> T:
        engine = create_async_engine(make_url(served.database_url).set(drivername="postgresql+asyncpg"))
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


def _partner_with_last_months_fees(served: Served) -> tuple[str, str]:
    """A bank with two payable lines of last month; answers (partner id, last month ``YYYY-MM``)."""
    last_month = month_of(month_of(clock.now()).start - timedelta(seconds=1))

    async def work(session: AsyncSession) -> tuple[str, str]:
        partner = await catalog.create_partner(
            session, Actor.system("e2e"), PartnerCreate(kind=PartnerKind.bank, legal_name=PARTNER)
        )
        day = last_month.start + timedelta(days=5)
        await book(session, partner.id, 150_000, rule=FeeRule.funded_bounty, ref="HLJ-0001", at=day)
        await book(session, partner.id, 41_235, rule=FeeRule.bundle_fee, ref="HLJ-0002", at=day)
        return partner.id, last_month.name

    return _in_database(served, work)


def _partner_claims(served: Served, statement_id: str, partner_id: str) -> None:
    """The bank's claim: the bounty as ours, the bundle fee 100.00 yuan higher."""

    async def work(session: AsyncSession) -> None:
        await reconciliation.upload_claim(
            session,
            Tenant.of_partner(partner_id),
            Actor(id="e2e-partner", kind="partner"),
            statement_id,
            [ClaimedLine(2, "HLJ-0001", "funded_bounty", 150_000), ClaimedLine(3, "HLJ-0002", "bundle_fee", 51_235)],
            claim_format="csv",
            amounts_include_vat=None,
            now=clock.now(),
        )

    _in_database(served, work)


def _statement_of(served: Served, partner_id: str) -> Statement:
    async def work(session: AsyncSession) -> Statement:
        return (await session.scalars(select(Statement).where(Statement.partner_id == partner_id))).one()

    return _in_database(served, work)


def _post_as_if_the_button_were_enabled(page: Page, action: str) -> None:
    """Submit the action's form with this session's CSRF token, as a person who forced the disabled button would."""
    page.evaluate(
        """action => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            const token = document.querySelector("input[name=csrf_token]").cloneNode();
            form.appendChild(token);
            document.body.appendChild(form);
            form.submit();
        }""",
        action,
    )
    page.wait_for_load_state()


def test_finance_closes_a_month_resolves_a_discrepancy_and_four_eyes_approve(
    page: Page, browser: Browser, served: Served
) -> None:
    SHOTS.mkdir(exist_ok=True)
    partner_id, month = _partner_with_last_months_fees(served)
    maker, checker = served.person("finance", 0), served.person("finance", 1)

    # The maker reads last month's summary, then closes it.
    sign_in(page, served, maker, "/console/periods")
    page.locator(f"a[href='/console/periods/{month}/close']").click()
    expect(page.get_by_role("heading", name=f"{month} 关账")).to_be_visible()
    summary = page.locator("section.card", has_text="将计入结算单")
    expect(summary.locator("tr", has_text=PARTNER)).to_contain_text("1,912.35")  # 1,500.00 + 412.35
    page.get_by_role("button", name=f"确认：{month} 关账").click()
    expect(page).to_have_url(served.url(f"/console/statements?period={month}"))
    expect(page.locator(".flash")).to_contain_text(f"{month} 已关账")

    # The new draft: issued after its confirmation.
    page.get_by_role("link", name=PARTNER).click()
    expect(page.locator("h1")).to_contain_text("草稿")
    page.get_by_role("link", name="出具", exact=True).click()
    expect(page.get_by_role("heading", name="出具此结算单？")).to_be_visible()
    page.get_by_role("button", name="确认").click()
    expect(page.locator(".flash")).to_contain_text("结算单已出具")
    statement_url = page.url
    statement = _statement_of(served, partner_id)
    assert statement.status == "issued" and statement.issued_by == f"person:{maker.username}"

    # The bank claims 100.00 more for its bundle fee; the maker resolves it from the queue.
    _partner_claims(served, statement.id, partner_id)
    page.goto(served.url(f"/console/discrepancies?statement={statement.id}"))
    row = page.locator("tbody tr", has_text="HLJ-0002")
    expect(row).to_contain_text("金额不符")
    expect(row).to_contain_text("100.00")
    row.get_by_role("link", name="处理").click()
    page.get_by_label("以我方为准").check()
    page.fill("#note", "合同附件二：组合产品费按 412.35 元计")
    page.get_by_role("button", name="确认").click()
    expect(page.locator(".flash")).to_contain_text("差异已处理")
    expect(page.locator(".empty")).to_be_visible()

    # The maker may not approve what they issued: the button says why, and forcing it is refused.
    page.goto(statement_url)
    approve = page.get_by_role("button", name="审批通过")
    expect(approve).to_be_disabled()
    expect(approve).to_have_attribute("title", "您是本结算单的经办人，须由另一位财务人员审批。")
    page.screenshot(path=str(SHOTS / "finance-e2e-maker.png"), full_page=True)
    _post_as_if_the_button_were_enabled(page, f"/console/statements/{statement.id}/approve")
    expect(page.locator(".flash-error")).to_contain_text("双人复核：须由另一位财务人员操作")
    expect(page.locator("h1")).to_contain_text("已出具")
    assert _statement_of(served, partner_id).approved_by is None

    # A second finance officer approves.
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    second = context.new_page()
    try:
        sign_in(second, served, checker, statement_url.removeprefix(served.base_url))
        second.get_by_role("link", name="审批通过").click()
        expect(second.get_by_role("heading", name="审批此结算单？")).to_contain_text("审批")
        second.get_by_role("button", name="确认").click()
        expect(second.locator(".flash")).to_contain_text("结算单已审批")
        expect(second.locator("h1")).to_contain_text("已审批")
        expect(second.locator(".people")).to_contain_text(f"复核: {checker.username}")
        second.screenshot(path=str(SHOTS / "finance-e2e-checker.png"), full_page=True)
    finally:
        context.close()
    approved = _statement_of(served, partner_id)
    assert (approved.status, approved.issued_by, approved.approved_by) == (
        "approved",
        f"person:{maker.username}",
        f"person:{checker.username}",
    )
