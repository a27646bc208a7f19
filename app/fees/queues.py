"""Counts for the console's queues and lists: statements by status (the tasks card), fee lines recorded per partner
in a month (the partners list)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.fees.models import AccrualStatus, FeeAccrual, Statement


async def statements_by_status(session: AsyncSession, partner_id: str | None = None) -> dict[str, int]:
    """How many statements are in each status (every partner's, or one partner's), in one query."""
    statement = select(col(Statement.status), func.count()).group_by(col(Statement.status))
    if partner_id is not None:
        statement = statement.where(col(Statement.partner_id) == partner_id)
    return {
        str(status.value if hasattr(status, "value") else status): int(n)
        for status, n in await session.execute(statement)
    }


async def fees_recorded_by_partner(
    session: AsyncSession, start: datetime, end: datetime, partner_id: str | None = None
) -> dict[str, int]:
    """Fee lines the ledger recorded in [start, end) per partner, reversed ones excluded (they count nowhere)."""
    statement = (
        select(col(FeeAccrual.partner_id), func.sum(FeeAccrual.amount_fen))
        .where(
            col(FeeAccrual.created_at) >= start,
            col(FeeAccrual.created_at) < end,
            col(FeeAccrual.status) != AccrualStatus.reversed,
        )
        .group_by(col(FeeAccrual.partner_id))
    )
    if partner_id is not None:
        statement = statement.where(col(FeeAccrual.partner_id) == partner_id)
    return {str(partner): int(total or 0) for partner, total in await session.execute(statement)}
