"""What waits for finance: statements counted by status, for the queues' counts (the console's tasks card)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.fees.models import Statement


async def statements_by_status(session: AsyncSession, partner_id: str | None = None) -> dict[str, int]:
    """How many statements are in each status (every partner's, or one partner's), in one query."""
    statement = select(col(Statement.status), func.count()).group_by(col(Statement.status))
    if partner_id is not None:
        statement = statement.where(col(Statement.partner_id) == partner_id)
    return {
        str(status.value if hasattr(status, "value") else status): int(n)
        for status, n in await session.execute(statement)
    }
