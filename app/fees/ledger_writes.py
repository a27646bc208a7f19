"""Writing what one accrual decided: its ledger lines in one statement, the earlier lines its clawbacks cancel,
and what both change of the monthly caps' usage (``app.fees.engine`` decides; this module only writes)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.service import mark_fee_schedules_used
from app.conversions.lifecycle import AnyReferral, Event
from app.core.bulk import equals_any, insert_rows
from app.core.models import new_id
from app.fees.cap_usage import CAPPED_RULES, add_cap_usage, capped
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule

_LEDGER = FeeAccrual.__table__  # type: ignore[attr-defined]  # bulk inserts through the table, not the ORM


@dataclass(slots=True)
class Line:
    source_key: str
    referral: AnyReferral
    event: Event | None
    fee_schedule_id: str | None
    rule: FeeRule
    amount_fen: int
    occurred_at: datetime
    hold_until: datetime
    status: AccrualStatus
    arithmetic: dict[str, Any]
    reverses_id: str | None = None
    id: str = field(default_factory=lambda: new_id("acr"))


_COLUMNS = (
    "id",
    "source_key",
    "partner_id",
    "referral_id",
    "external_ref",
    "conversion_event_id",
    "fee_schedule_id",
    "rule",
    "amount_fen",
    "status",
    "occurred_at",
    "hold_until",
    "reverses_id",
    "arithmetic",
)


async def write_lines(
    session: AsyncSession,
    lines: Sequence[Line],
    cancelled_ids: Collection[str],
    earlier_lines: Iterable[Any],
    now: datetime,
) -> int:
    """The call's lines in one statement (those already written by an earlier run are skipped), the earlier lines
    its clawbacks cancel in another, and what both change of the monthly caps' usage in a third."""
    rows = [
        (
            line.id,
            line.source_key,
            line.referral.partner_id,
            line.referral.id,
            line.referral.external_ref,
            line.event.id if line.event else None,
            line.fee_schedule_id,
            line.rule.value,
            line.amount_fen,
            line.status.value,
            line.occurred_at,
            line.hold_until,
            line.reverses_id,
            line.arithmetic,
        )
        for line in lines
    ]
    constants = {"currency": "CNY", "created_at": now, "updated_at": now}
    inserted = {
        row[0]
        for row in await insert_rows(
            session, _LEDGER, _COLUMNS, rows, on_conflict_do_nothing=True, returning=("id",), constants=constants
        )
    }
    usage = [
        (line.referral.partner_id, line.occurred_at, line.amount_fen)
        for line in lines
        if line.id in inserted and capped(line.rule, line.status)
    ]
    if cancelled_ids:
        cancelled = set(
            (
                await session.scalars(
                    update(FeeAccrual)
                    .where(
                        equals_any(col(FeeAccrual.id), sorted(cancelled_ids)),
                        col(FeeAccrual.status) == AccrualStatus.pending,
                    )
                    .values(status=AccrualStatus.reversed, updated_at=now)
                    .returning(col(FeeAccrual.id))
                    .execution_options(synchronize_session=False)
                )
            ).all()
        )
        usage += [
            (line.partner_id, line.occurred_at, -line.amount_fen)
            for line in earlier_lines
            if line.id in cancelled and line.rule in CAPPED_RULES
        ]
    await add_cap_usage(session, usage)
    await mark_fee_schedules_used(session, {line.fee_schedule_id for line in lines if line.fee_schedule_id}, now)
    return len(inserted)
