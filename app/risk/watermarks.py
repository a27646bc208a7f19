"""Where the signal job last looked: one instant per scope (``*`` for the worker's real-time run, a partner's id
for a sandbox test clock's run, whose time is its own). The job looks at rows that arrived after it, less a margin
for transactions still in flight then (a signal found twice is raised once: its fingerprint)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from app.core.models import updated_at_field
from app.core.partner_filter import PartnerFilter


class SignalWatermark(SQLModel, table=True):
    __tablename__ = "risk_signal_watermarks"

    scope: str = Field(primary_key=True, max_length=40)
    looked_until: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    updated_at: datetime = updated_at_field()


def scope_of(partners: PartnerFilter) -> str:
    return partners.only[0] if partners.only is not None and len(partners.only) == 1 else "*"


async def last_look(session: AsyncSession, scope: str) -> datetime | None:
    """The instant the last run looked until, locked until the end of the transaction (one run at a time)."""
    return (
        await session.execute(
            sa.select(col(SignalWatermark.looked_until)).where(col(SignalWatermark.scope) == scope).with_for_update()
        )
    ).scalar_one_or_none()


async def looked(session: AsyncSession, scope: str, until: datetime) -> None:
    statement = insert(SignalWatermark).values(scope=scope, looked_until=until, updated_at=until)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SignalWatermark.scope],
            set_={"looked_until": sa.func.greatest(SignalWatermark.looked_until, until), "updated_at": until},
        )
    )
