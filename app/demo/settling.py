"""Finance's month in the demo history, through the same services as the finance and partner routes: the period
closed and its statements issued, each partner's claim (some with mistakes), disputes, resolutions, approval and
payment, by three different people (the issuer, the approver, the payer: four eyes on the money)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core import clock
from app.core.business_time import Month
from app.core.pagination import PageParams
from app.core.tenancy import Tenant
from app.fees import statements
from app.fees.models import Statement, StatementStatus
from app.reconciliation import service as reconciliation
from app.reconciliation.models import MatchClass, Resolution
from app.reconciliation.service import ClaimedLine, ItemFilters
from app.settlement import service as settlement

ISSUER = Actor("demo.finance.zhao", "staff")  # closes periods, issues statements, resolves discrepancies
APPROVER = Actor("demo.finance.qian", "staff")
PAYER = Actor("demo.treasury.sun", "staff")
PAGE = PageParams(limit=200, cursor=None)


@dataclass(frozen=True)
class Settlement:
    """How far a closed month goes: ``claims`` by these partners (``mistakes`` in some), then ``approved``
    statements of these partners, ``paid`` or not."""

    claims: frozenset[str]
    approved: frozenset[str]
    paid: bool
    forced_mistakes: frozenset[str] = frozenset()


def _partner_actor(partner_id: str) -> Actor:
    return Actor(f"cli_demo_{partner_id.removeprefix('ptn_demo_')}", "partner")


async def period_statements(session: AsyncSession, period: Month) -> list[Statement]:
    rows = await statements.list_statements(
        session, Tenant.everyone(ISSUER), PAGE, statements.StatementFilters(period=period.name)
    )
    return sorted(rows, key=lambda statement: statement.partner_id)


async def close_and_issue(session: AsyncSession, period: Month) -> None:
    closed = await statements.close_period(session, ISSUER, period.name, clock.now())
    for statement in closed.statements:
        if statement.status is StatementStatus.draft:
            await statements.issue(session, ISSUER, statement.id, clock.now())


async def _claim_lines(session: AsyncSession, statement: Statement) -> list[ClaimedLine]:
    """What the partner believes it earned: the statement's lines, one per reference and fee type."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for line in await statements.all_lines(session, statement.id):
        totals[(line.external_ref or "", line.rule.value)] += line.amount_fen
    return [
        ClaimedLine(number, external_ref, fee_type, amount)
        for number, ((external_ref, fee_type), amount) in enumerate(sorted(totals.items()), start=1)
        if external_ref
    ]


def _with_mistakes(lines: list[ClaimedLine], rng: random.Random) -> list[ClaimedLine]:
    """A partner's bookkeeping slips: an amount typed wrong, a line forgotten, a client it thinks it referred."""
    lines = list(lines)
    if len(lines) > 2:
        slip = rng.randrange(len(lines))
        wrong = lines[slip]
        lines[slip] = ClaimedLine(wrong.line_no, wrong.external_ref, wrong.fee_type, wrong.amount_fen + 5_000)
    if len(lines) > 4 and rng.random() < 0.5:
        lines.pop(rng.randrange(len(lines)))
    if rng.random() < 0.5:
        lines.append(ClaimedLine(len(lines) + 1, f"UNKNOWN-{rng.randrange(10_000):04d}", "funded_bounty", 20_000))
    return lines


async def claim(session: AsyncSession, period: Month, plan: Settlement, rng: random.Random) -> None:
    for statement in await period_statements(session, period):
        if statement.partner_id not in plan.claims:
            continue
        lines = await _claim_lines(session, statement)
        if statement.partner_id in plan.forced_mistakes or rng.random() < 0.35:
            lines = _with_mistakes(lines, rng)
        if not lines:
            continue
        lines = [replace(line, line_no=number) for number, line in enumerate(lines, start=1)]
        await reconciliation.upload_claim(
            session,
            Tenant.of_partner(statement.partner_id),
            _partner_actor(statement.partner_id),
            statement.id,
            lines,
            claim_format="json",
            amounts_include_vat=statement.vat_inclusive,
            now=clock.now(),
        )


async def _open_items(session: AsyncSession, statement: Statement) -> list[reconciliation.ReconciliationItem]:
    filters = ItemFilters(statement_id=statement.id, open=True)
    return await reconciliation.list_items(session, Tenant.everyone(ISSUER), PAGE, filters)


_RESOLUTIONS = {
    MatchClass.amount_mismatch: (Resolution.accept_ours, "合作方金额录入有误，以我方明细为准"),
    MatchClass.unclaimed: (Resolution.accept_ours, "合作方漏报，按我方明细结算"),
    MatchClass.unknown: (Resolution.write_off, "非我方归属的客户，不予结算"),
    MatchClass.duplicate_claim: (Resolution.accept_ours, "重复申报，按一条结算"),
}


async def settle(session: AsyncSession, period: Month, plan: Settlement, rng: random.Random) -> None:
    """Partners dispute, finance resolves every open item and approves; a partner not in ``approved`` keeps its
    discrepancies open (one of them disputed)."""
    for statement in await period_statements(session, period):
        items = await _open_items(session, statement)
        mismatches = [item for item in items if item.match_class is MatchClass.amount_mismatch]
        if mismatches and (statement.partner_id not in plan.approved or rng.random() < 0.5):
            await reconciliation.dispute(
                session,
                Tenant.of_partner(statement.partner_id),
                _partner_actor(statement.partner_id),
                statement.id,
                {mismatches[0].id: "我方系统记录的金额不同，请核实"},
                clock.now(),
            )
        if statement.partner_id not in plan.approved:
            continue
        for item in items:
            resolution, note = _RESOLUTIONS[item.match_class]
            if item.match_class is MatchClass.amount_mismatch and rng.random() < 0.4:
                resolution, note = Resolution.accept_theirs, "核实后合作方金额有据，差额计入下期调整"
            await reconciliation.resolve(session, ISSUER, item.id, resolution, note, clock.now())
        await settlement.approve(session, APPROVER, statement.id, clock.now())


async def pay(session: AsyncSession, period: Month) -> None:
    for statement in await period_statements(session, period):
        if statement.status is StatementStatus.approved:
            reference = f"PAY-{period.name.replace('-', '')}-{statement.partner_id.removeprefix('ptn_demo_').upper()}"
            await settlement.mark_paid(session, PAYER, statement.id, reference, clock.now())
