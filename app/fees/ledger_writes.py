"""Writing what one accrual decided: its ledger lines in one statement, the earlier lines its clawbacks cancel,
and what both change of the monthly caps' usage (``app.fees.engine`` decides; this module reads and writes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import from_json
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.service import mark_fee_schedules_used
from app.conversions.lifecycle import AnyReferral, Event
from app.core.bulk import JsonText, copy_rows_new, equals_any, json_text
from app.core.models import new_id
from app.fees.cap_usage import CAPPED_RULES, PartnerMonth, add_usage_deltas, capped, usage_deltas
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


@dataclass(slots=True)
class LedgerLine:
    """An earlier line of a referral, as accrual reads it (locked): plain data, not a table object."""

    id: str
    source_key: str
    partner_id: str
    fee_schedule_id: str | None
    rule: FeeRule
    amount_fen: int
    status: AccrualStatus
    occurred_at: datetime
    reverses_id: str | None
    arithmetic: dict[str, Any]


# Referral by referral (each an index scan of ``ix_fee_accruals_referral``), so that the cost follows the call's
# referrals whatever the size of the ledger; the referrals in key order, each one's lines in time order. Each
# referral with its partner: the ledger's distribution key (docs/scaling.md).
_EARLIER_LINES = sa.text(
    """
    SELECT r.id, l.id, l.source_key, l.partner_id, l.fee_schedule_id, l.rule, l.amount_fen, l.status, l.occurred_at,
           l.reverses_id, l.arithmetic::text
    FROM unnest(CAST(:ids AS varchar[]), CAST(:partners AS varchar[])) AS r(id, partner_id)
    CROSS JOIN LATERAL (
        SELECT * FROM fee_accruals AS a
        WHERE a.partner_id = r.partner_id AND a.referral_id = r.id
        ORDER BY a.occurred_at, a.id
        FOR UPDATE
    ) AS l
    """
)


async def lock_earlier_lines(
    session: AsyncSession, referrals: Mapping[str, AnyReferral]
) -> dict[str, list[LedgerLine]]:
    """The ledger lines of these referrals (by id), locked until the transaction ends, by referral, in time order."""
    ordered = sorted(referrals)
    by_referral: dict[str, list[LedgerLine]] = defaultdict(list)
    if not ordered:
        return by_referral
    rows = await session.execute(
        _EARLIER_LINES, {"ids": ordered, "partners": [referrals[referral_id].partner_id for referral_id in ordered]}
    )
    for row in rows.all():
        by_referral[row[0]].append(
            LedgerLine(
                row[1],
                row[2],
                row[3],
                row[4],
                FeeRule(row[5]),
                row[6],
                AccrualStatus(row[7]),
                row[8],
                row[9],
                from_json(row[10]),
            )
        )
    return by_referral


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
    "currency",
    "created_at",
    "updated_at",
)


def planned_usage(
    lines: Iterable[Line], cancelled_ids: Collection[str], earlier_lines: Iterable[Any]
) -> dict[PartnerMonth, int]:
    """What ``write_lines`` will add to the caps' usage if every line is new and every cancelled line still pending
    (as read, locked): the lines that count, less the earlier ones that stop counting."""
    return usage_deltas(
        [
            *(
                (line.referral.partner_id, line.occurred_at, line.amount_fen)
                for line in lines
                if capped(line.rule, line.status)
            ),
            *(
                (line.partner_id, line.occurred_at, -line.amount_fen)
                for line in earlier_lines
                if line.id in cancelled_ids and line.status is AccrualStatus.pending and line.rule in CAPPED_RULES
            ),
        ]
    )


async def write_lines(
    session: AsyncSession,
    lines: Sequence[Line],
    cancelled_ids: Collection[str],
    earlier_lines: Iterable[Any],
    now: datetime,
    *,
    usage_added: Mapping[PartnerMonth, int] | None = None,
) -> int:
    """The call's lines in one statement (those already written by an earlier run are skipped), the earlier lines
    its clawbacks cancel in another, and what both change of the monthly caps' usage in a third. With
    ``usage_added`` (the ``planned_usage`` the caller added already), only what differs from it is added."""
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
            JsonText(json_text(line.arithmetic)),
            "CNY",
            now,
            now,
        )
        for line in lines
    ]
    inserted = {row[0] for row in await copy_rows_new(session, _LEDGER, _COLUMNS, rows, returning=("id",))}
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
    deltas = usage_deltas(usage)
    for key, added in (usage_added or {}).items():
        deltas[key] -= added
    await add_usage_deltas(session, deltas)
    await mark_fee_schedules_used(session, {line.fee_schedule_id for line in lines if line.fee_schedule_id}, now)
    return len(inserted)
