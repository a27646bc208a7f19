"""结算周期 periods: every month from the ledger's first to the current one, open / closable / closed; closing a
month shows what it will put on statements (partners, lines, amounts, and the lines held, until when) and asks
for a confirmation, then closes it through ``close_period``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.audit import service as audit
from app.console.access import SignedInPerson, form_for, page_for
from app.console.finance.common import FINANCE_READ, FINANCE_WRITE, act, flash_back, partner_names, url
from app.console.templating import redirect, render
from app.core import clock
from app.core.business_time import Month, month_named, month_of
from app.core.database import SessionDep
from app.fees import finance_views, statements

router = APIRouter(prefix="/console/periods", include_in_schema=False)

Reader = Annotated[SignedInPerson, Depends(page_for(FINANCE_READ))]
Writer = Annotated[SignedInPerson, Depends(form_for(FINANCE_WRITE))]
LIST = "/console/periods"
MONTHS_SHOWN = 24


@dataclass(frozen=True)
class PeriodRow:
    month: Month
    state: str  # open | closable | closed | skipped
    statements: int
    drafts: int
    gross_fen: int


def period_state(month: Month, now: datetime, closed: bool, latest_closed: str | None) -> str:
    """``open`` until the month has ended; ``closed`` once closed; a month that has ended is ``closable`` unless a
    later month is closed already (``skipped``: months are closed in order)."""
    if closed:
        return "closed"
    if month.end > now:
        return "open"
    if latest_closed is not None and latest_closed > month.name:
        return "skipped"
    return "closable"


def months_between(first: Month, last: Month) -> list[Month]:
    """Every month from ``last`` back to ``first`` (newest first), at most ``MONTHS_SHOWN``."""
    months: list[Month] = []
    month = last
    while len(months) < MONTHS_SHOWN:
        months.append(month)
        if month.name <= first.name:
            break
        month = month_of(month.start - timedelta(seconds=1))
    return months


async def period_rows(session: AsyncSession, now: datetime) -> list[PeriodRow]:
    records = await finance_views.period_records(session)
    closed = set(records) | await audit.objects_with(session, "period.closed")
    current = month_of(now)
    first = await finance_views.first_month_with_fees(session)
    earliest = min([name for name in (*closed, first.name if first else None) if name] or [current.name])
    start = month_named(earliest) or current
    latest_closed = max(records) if records else None
    rows = []
    for month in months_between(start, current):
        record = records.get(month.name, finance_views.PeriodRecord(0, 0, 0))
        state = period_state(month, now, month.name in closed, latest_closed)
        rows.append(PeriodRow(month, state, record.statements, record.drafts, record.gross_fen))
    return rows


@router.get("")
async def period_list(request: Request, session: SessionDep, person: Reader) -> Response:
    rows = await period_rows(session, clock.now())
    return render(request, "finance/periods.html", {"rows": rows, "may_write": FINANCE_WRITE in person.scopes})


@router.get("/{period}/close")
async def close_summary(period: str, request: Request, session: SessionDep, person: Reader) -> Response:
    month = month_named(period)
    if month is None:
        return redirect(LIST)
    now = clock.now()
    row = next((row for row in await period_rows(session, now) if row.month.name == month.name), None)
    if row is None or row.state not in ("closable", "closed"):
        return flash_back(request, LIST, "This month cannot be closed now", level="warning")
    preview = await finance_views.close_preview(session, month)
    names = await partner_names(
        session, [partner.partner_id for partner in preview.partners] + [line.partner_id for line in preview.held]
    )
    return render(
        request,
        "finance/close.html",
        {"row": row, "preview": preview, "names": names, "may_write": FINANCE_WRITE in person.scopes},
    )


@router.post("/{period}/close")
async def close(period: str, request: Request, session: SessionDep, person: Writer) -> Response:
    actor = person.actor(request)

    def done(t: object, result: statements.CloseResult) -> str:
        assert callable(t)
        return str(
            t(
                "{period} closed: {count} draft statements, {lines} lines put on them",
                period=result.period.name,
                count=len(result.statements),
                lines=result.statemented_lines,
            )
        )

    return await act(
        request,
        session,
        lambda: statements.close_period(session, actor, period, clock.now()),
        done=done,
        back=lambda result: url("/console/statements", {"period": result.period.name}),
        refused=LIST,
    )
