"""The finance pages' view models against arithmetic done here: a statement's figures add up (lines + carried =
net; 不含税金额 + 增值税额 = 价税合计) both ways of invoicing VAT, the closing summary counts what the close then
puts on statements, months are open / closable / closed, and four eyes decides which buttons a person gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.console.finance.periods import period_state
from app.console.finance.statement_view import Figures, actions_for
from app.core import clock
from app.core.business_time import month_named
from app.fees import finance_views, statements
from app.fees.models import FeeRule, StatementStatus
from tests.console.finance.conftest import BANK_LINES, CLERK, HELD, INSURER_LINES, Books
from tests.reconciliation.books import book


def _fen(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def test_figures_add_up_with_vat_on_top_and_vat_included(books: Books) -> None:
    march = await books.close_march()
    bank, insurer = Figures.of(march[books.bank.id]), Figures.of(march[books.insurer.id])

    bank_lines = sum(amount for _, _, amount in BANK_LINES)  # 147,001 fen
    bank_vat = _fen(Decimal(bank_lines) * Decimal("0.06"))  # 8,820.06 → 8,820
    assert (bank.lines_total_fen, bank.carried_forward_fen, bank.net_fen) == (bank_lines, 0, bank_lines)
    assert (bank.net_excl_vat_fen, bank.vat_fen, bank.gross_fen) == (bank_lines, bank_vat, bank_lines + bank_vat)
    assert bank.vat_rate == "6%"

    insurer_gross = sum(amount for _, _, amount in INSURER_LINES)  # 106,000 fen, VAT included
    insurer_vat = _fen(Decimal(insurer_gross) * 6 / 106)  # 6,000
    assert (insurer.net_fen, insurer.gross_fen, insurer.vat_fen) == (insurer_gross, insurer_gross, insurer_vat)
    assert insurer.net_excl_vat_fen == insurer_gross - insurer_vat == 100_000
    for figures in (bank, insurer):
        assert figures.net_excl_vat_fen + figures.vat_fen == figures.gross_fen


async def test_a_negative_balance_is_carried_and_has_no_vat(books: Books, session: AsyncSession) -> None:
    partner = books.bank
    february = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
    await book(session, partner.id, -80_000, rule=FeeRule.clawback, ref="F-1", at=february)
    [feb] = [s for s in (await statements.close_period(session, CLERK, "2026-02", clock.now())).statements]
    owed = Figures.of(feb)
    assert (owed.net_fen, owed.vat_fen, owed.gross_fen, owed.net_excl_vat_fen) == (-80_000, 0, -80_000, -80_000)

    march = Figures.of((await books.close_march())[partner.id])
    lines = sum(amount for _, _, amount in BANK_LINES)
    assert (march.lines_total_fen, march.carried_forward_fen) == (lines, -80_000)
    assert march.net_fen == lines - 80_000 == 67_001
    assert march.vat_fen == _fen(Decimal(67_001) * Decimal("0.06")) == 4_020
    assert march.net_excl_vat_fen + march.vat_fen == march.gross_fen == 71_021


async def test_the_closing_summary_is_what_the_close_puts_on_statements(books: Books, session: AsyncSession) -> None:
    march = month_named("2026-03")
    assert march is not None
    preview = await finance_views.close_preview(session, march)

    by_partner = {partner.partner_id: (partner.lines, partner.amount_fen) for partner in preview.partners}
    assert by_partner == {
        books.bank.id: (3, 100_000 + 50_001 - 3_000),
        books.insurer.id: (1, 106_000),
    }
    assert (preview.lines, preview.amount_fen) == (4, 253_001)
    assert (preview.held_count, preview.held_fen) == (1, HELD[2])
    [held] = preview.held
    assert (held.external_ref, held.partner_id, held.hold_until.date().isoformat()) == (
        "A-4",
        books.bank.id,
        "2026-04-19",
    )

    closed = await books.close_march()
    assert {partner_id: (s.line_count, s.lines_total_fen) for partner_id, s in closed.items()} == by_partner


def test_a_month_is_open_until_it_ends_then_closable_then_closed() -> None:
    march = month_named("2026-03")
    assert march is not None
    just_before, just_after = march.end - timedelta(seconds=1), march.end
    assert period_state(march, just_before, closed=False, latest_closed=None) == "open"
    assert period_state(march, just_after, closed=False, latest_closed=None) == "closable"
    assert period_state(march, just_after, closed=False, latest_closed="2026-02") == "closable"
    assert period_state(march, just_after, closed=False, latest_closed="2026-04") == "skipped"
    assert period_state(march, just_after, closed=True, latest_closed="2026-03") == "closed"


async def test_four_eyes_decides_the_buttons(books: Books, session: AsyncSession) -> None:
    statement = (await books.close_march())[books.bank.id]
    maker, checker = "person:wang", "person:li"
    assert [(a.name, a.refusal) for a in actions_for(statement, maker, True, 0)] == [("issue", None)]
    assert actions_for(statement, maker, False, 0) == []  # an auditor: no buttons at all

    await statements.issue(session, Actor(id=maker, kind="staff"), statement.id, clock.now())
    [mine] = actions_for(statement, maker, True, 0)
    assert mine.name == "approve" and mine.refusal is not None and "issued" in mine.refusal
    assert [(a.name, a.refusal) for a in actions_for(statement, checker, True, 0)] == [("approve", None)]
    [blocked] = actions_for(statement, checker, True, 2)
    assert blocked.refusal is not None and "discrepancy" in blocked.refusal

    statement.status, statement.approved_by = StatementStatus.approved, checker
    [pay_checker] = actions_for(statement, checker, True, 0)
    assert pay_checker.name == "pay" and pay_checker.refusal is not None and "approved" in pay_checker.refusal
    assert [(a.name, a.refusal) for a in actions_for(statement, maker, True, 0)] == [("pay", None)]
