"""Reading batches: a batch and its progress, the partner's batches, a batch's results one page at a time."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.pagination import InvalidCursor, PageParams, paginate_query
from app.core.problems import NotFound
from app.core.tenancy import Tenant, owned_row, scoped
from app.referrals.batches.models import (
    LineOutcome,
    ReferralBatch,
    ReferralBatchResult,
)


async def get_batch(session: AsyncSession, tenant: Tenant, batch_id: str) -> ReferralBatch:
    query = owned_row(ReferralBatch, batch_id, tenant).execution_options(populate_existing=True)
    batch = (await session.scalars(query)).one_or_none()
    if batch is None:
        raise NotFound("No such batch.")
    return batch


async def list_batches(session: AsyncSession, tenant: Tenant, params: PageParams) -> list[ReferralBatch]:
    statement = scoped(select(ReferralBatch), tenant, col(ReferralBatch.partner_id))
    statement = paginate_query(statement, params, col(ReferralBatch.created_at), col(ReferralBatch.id))
    return list((await session.scalars(statement)).all())


def line_cursor(line: int) -> str:
    return f"L{line}"


def _after_line(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not re.fullmatch(r"L\d{1,9}", cursor):
        raise InvalidCursor("The cursor is not one this API returned.")
    return int(cursor[1:])


async def list_results(
    session: AsyncSession, tenant: Tenant, batch_id: str, params: PageParams, outcome: LineOutcome | None = None
) -> list[ReferralBatchResult]:
    """A batch's results in line order, one page (plus one row, to tell whether another page follows)."""
    await get_batch(session, tenant, batch_id)
    statement = select(ReferralBatchResult).where(
        col(ReferralBatchResult.batch_id) == batch_id, col(ReferralBatchResult.line) > _after_line(params.cursor)
    )
    if outcome is not None:
        statement = statement.where(col(ReferralBatchResult.outcome) == outcome)
    rows = await session.scalars(statement.order_by(col(ReferralBatchResult.line)).limit(params.limit + 1))
    return list(rows.all())
