"""Finance's books for the console pages: two partners with March fees (one invoicing without VAT, one with), a
line still held at the end of March, and the helpers to close, issue and claim through the services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog.models import Partner
from app.core import clock
from app.core.tenancy import Tenant
from app.fees import statements
from app.fees.models import AccrualStatus, FeeRule, Statement
from app.reconciliation import service as reconciliation
from app.reconciliation.service import ClaimedLine
from tests.reconciliation.books import MARCH, book, set_vat

CLERK = Actor(id="person:clerk-of-the-books", kind="staff")  # issues in the services, never one of the test people


@dataclass
class Books:
    session: AsyncSession
    bank: Partner  # VAT added on top (6%)
    insurer: Partner  # invoices VAT included (6%)

    async def close_march(self) -> dict[str, Statement]:
        closed = await statements.close_period(self.session, CLERK, "2026-03", clock.now())
        return {statement.partner_id: statement for statement in closed.statements}

    async def statement(self, statement_id: str) -> Statement:
        found = await self.session.scalars(
            select(Statement).where(Statement.id == statement_id).execution_options(populate_existing=True)
        )
        return found.one()

    async def claim(self, statement_id: str, lines: list[tuple[str, str, int]]) -> None:
        """The partner's claim, uploaded as the partner would."""
        statement = await self.statement(statement_id)
        await reconciliation.upload_claim(
            self.session,
            Tenant.of_partner(statement.partner_id),
            Actor(id="partner-client", kind="partner"),
            statement_id,
            [ClaimedLine(number, ref, fee_type, amount) for number, (ref, fee_type, amount) in enumerate(lines, 2)],
            claim_format="json",
            amounts_include_vat=None,
            now=clock.now(),
        )


# The bank's March lines (reference, rule, fen) and the one still in its hold period at the end of March.
BANK_LINES = [
    ("A-1", FeeRule.funded_bounty, 100_000),
    ("A-2", FeeRule.bundle_fee, 50_001),
    ("A-3", FeeRule.clawback, -3_000),
]
HELD = ("A-4", FeeRule.revenue_share, 7_000)
INSURER_LINES = [("B-1", FeeRule.funded_bounty, 106_000)]


@pytest.fixture
async def books(session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]) -> Books:
    bank = await make_partner(legal_name="哈尔滨银行股份有限公司")
    insurer = await make_partner(legal_name="中国人寿保险股份有限公司")
    await set_vat(session, insurer, 600, True)
    for ref, rule, amount in BANK_LINES:
        await book(session, bank.id, amount, rule=rule, ref=ref)
    ref, rule, amount = HELD
    await book(session, bank.id, amount, rule=rule, ref=ref, hold=timedelta(days=40), status=AccrualStatus.pending)
    for ref, rule, amount in INSURER_LINES:
        await book(session, insurer.id, amount, rule=rule, ref=ref, at=MARCH + timedelta(days=1))
    return Books(session, bank, insurer)
