"""What finance's people read about periods and statements (the console's finance pages): per-status totals, pages
of statements with their count, the state of each month, and what closing a month would put on statements.

Read-only, and staff-only (every partner's rows): callers pass ``Tenant.everyone(staff)`` proof by being finance
pages; the closing preview answers exactly what ``statements.close_period`` would attach (the same conditions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from app.core.business_time import Month, month_of
from app.core.tenancy import Tenant, scoped
from app.fees import reviews
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule, Statement, StatementStatus
from app.fees.statements import StatementFilters

_OPEN_LINE = (AccrualStatus.pending, AccrualStatus.payable)


@dataclass(frozen=True)
class StatusTotal:
    status: StatementStatus
    statements: int
    gross_fen: int


def _filtered(query: Select, tenant: Tenant, filters: StatementFilters) -> Select:  # type: ignore[type-arg]
    query = scoped(query, tenant, col(Statement.partner_id))
    if filters.period:
        query = query.where(col(Statement.period) == filters.period)
    if filters.partner_id:
        query = query.where(col(Statement.partner_id) == filters.partner_id)
    return query


async def status_totals(session: AsyncSession, tenant: Tenant, filters: StatementFilters) -> list[StatusTotal]:
    """Count and gross amount of the statements in each status (every status, zero when none), under the period
    and partner filters (the status filter is what the strip chooses, so it is ignored here)."""
    query = _filtered(
        select(col(Statement.status), func.count(), func.coalesce(func.sum(col(Statement.gross_fen)), 0)),
        tenant,
        filters,
    ).group_by(col(Statement.status))
    found: dict[StatementStatus, tuple[int, int]] = {
        row[0]: (int(row[1]), int(row[2])) for row in (await session.execute(query)).all()
    }
    return [StatusTotal(status, *found.get(status, (0, 0))) for status in StatementStatus]


async def statements_page(
    session: AsyncSession, tenant: Tenant, filters: StatementFilters, *, offset: int, limit: int
) -> tuple[list[Statement], int]:
    """One page of statements (newest period first, then partner) and how many match the filters in all."""
    query = _filtered(select(Statement), tenant, filters)
    if filters.status:
        query = query.where(col(Statement.status) == filters.status)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(col(Statement.period).desc(), col(Statement.partner_id), col(Statement.id))
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), total


@dataclass(frozen=True)
class PeriodRecord:
    """What the statements say of one month."""

    statements: int
    drafts: int
    gross_fen: int


async def period_records(session: AsyncSession) -> dict[str, PeriodRecord]:
    """Each month that has statements: how many, how many still drafts, and their gross total."""
    query = select(
        col(Statement.period),
        func.count(),
        func.count().filter(col(Statement.status) == StatementStatus.draft),
        func.coalesce(func.sum(col(Statement.gross_fen)), 0),
    ).group_by(col(Statement.period))
    rows = (await session.execute(query)).all()
    return {row[0]: PeriodRecord(int(row[1]), int(row[2]), int(row[3])) for row in rows}


async def first_month_with_fees(session: AsyncSession) -> Month | None:
    """The business month of the ledger's earliest line, where finance's months begin."""
    first = await session.scalar(select(func.min(col(FeeAccrual.created_at))))
    return month_of(first) if first is not None else None


@dataclass(frozen=True)
class PartnerToClose:
    partner_id: str
    lines: int
    amount_fen: int


@dataclass(frozen=True)
class HeldLine:
    id: str
    partner_id: str
    external_ref: str | None
    rule: FeeRule
    amount_fen: int
    status: AccrualStatus
    hold_until: datetime


@dataclass(frozen=True)
class ClosePreview:
    """What closing ``period`` now would put on statements, and which lines wait (and until when)."""

    period: Month
    partners: list[PartnerToClose]
    held: list[HeldLine]  # the first ``HELD_SHOWN``, soonest released first
    held_count: int
    held_fen: int
    under_review_count: int = 0  # due, but their referral is under a risk review: left out (``app.fees.reviews``)
    under_review_fen: int = 0

    @property
    def lines(self) -> int:
        return sum(partner.lines for partner in self.partners)

    @property
    def amount_fen(self) -> int:
        return sum(partner.amount_fen for partner in self.partners)


HELD_SHOWN = 50


async def close_preview(session: AsyncSession, period: Month) -> ClosePreview:
    """The lines not on a statement yet: those due before the period ends go on its statements (held ones are
    released first, as the close does); the rest are held, in their hold period or due only after the period."""
    unstatemented = (col(FeeAccrual.statement_id).is_(None), col(FeeAccrual.status).in_(_OPEN_LINE))
    due = col(FeeAccrual.hold_until) < period.end
    reviewed = col(FeeAccrual.referral_id).in_(reviews.open_review_referrals())
    not_reviewed = or_(col(FeeAccrual.referral_id).is_(None), ~reviewed)  # an adjustment may name no referral
    rows = await session.execute(
        select(col(FeeAccrual.partner_id), func.count(), func.sum(col(FeeAccrual.amount_fen)))
        .where(*unstatemented, due, not_reviewed)
        .group_by(col(FeeAccrual.partner_id))
        .order_by(col(FeeAccrual.partner_id))
    )
    partners = [PartnerToClose(partner_id, count, int(amount)) for partner_id, count, amount in rows.all()]
    held_count, held_fen = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(FeeAccrual.amount_fen)), 0)).where(*unstatemented, ~due)
        )
    ).one()
    held = await session.scalars(
        select(FeeAccrual)
        .where(*unstatemented, ~due)
        .order_by(col(FeeAccrual.hold_until), col(FeeAccrual.id))
        .limit(HELD_SHOWN)
    )
    shown = [
        HeldLine(line.id, line.partner_id, line.external_ref, line.rule, line.amount_fen, line.status, line.hold_until)
        for line in held.all()
    ]
    review_count, review_fen = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(FeeAccrual.amount_fen)), 0)).where(
                *unstatemented, due, reviewed
            )
        )
    ).one()
    return ClosePreview(period, partners, shown, int(held_count), int(held_fen), int(review_count), int(review_fen))


async def statements_by_id(session: AsyncSession, statement_ids: list[str]) -> dict[str, Statement]:
    """The statements named (for lists of items that point at them), in one query."""
    if not statement_ids:
        return {}
    rows = await session.scalars(select(Statement).where(col(Statement.id).in_(statement_ids)))
    return {statement.id: statement for statement in rows.all()}


async def partners_with_statements(session: AsyncSession) -> list[str]:
    """The partners that have a statement (the partner filter's choices)."""
    rows = await session.scalars(select(col(Statement.partner_id)).distinct().order_by(col(Statement.partner_id)))
    return list(rows.all())
