"""The queue of discrepancies finance still has to resolve, across statements (the console's 对账差异 page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from app.core.tenancy import Tenant, scoped
from app.reconciliation.models import MatchClass, ReconciliationItem


@dataclass(frozen=True)
class QueueFilters:
    match_class: MatchClass | None = None
    partner_id: str | None = None
    statement_id: str | None = None


def _open(tenant: Tenant, filters: QueueFilters) -> Select:  # type: ignore[type-arg]
    query = scoped(select(ReconciliationItem), tenant, col(ReconciliationItem.partner_id)).where(
        col(ReconciliationItem.match_class) != MatchClass.matched, col(ReconciliationItem.resolution).is_(None)
    )
    if filters.match_class:
        query = query.where(col(ReconciliationItem.match_class) == filters.match_class)
    if filters.partner_id:
        query = query.where(col(ReconciliationItem.partner_id) == filters.partner_id)
    if filters.statement_id:
        query = query.where(col(ReconciliationItem.statement_id) == filters.statement_id)
    return query


async def open_items_page(
    session: AsyncSession, tenant: Tenant, filters: QueueFilters, *, offset: int, limit: int
) -> tuple[list[ReconciliationItem], int]:
    """Unresolved discrepancies, oldest first (an inbox), and how many there are in all."""
    query = _open(tenant, filters)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(col(ReconciliationItem.created_at), col(ReconciliationItem.id)).offset(offset).limit(limit)
    )
    return list(rows.all()), total


async def open_item_total(session: AsyncSession, tenant: Tenant) -> int:
    """Every unresolved discrepancy (the count beside the queue in the navigation)."""
    query = _open(tenant, QueueFilters())
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
