"""结算单 statements: the status strip (count and amount per status), the filtered list with its pages, issuing a
draft, and a statement's page with its actions under four eyes, its exports and its printable copy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.catalog import service as catalog
from app.console.access import SignedInPerson, form_for, page_for
from app.console.finance.common import (
    FINANCE_READ,
    FINANCE_WRITE,
    PAGE_SIZE,
    act,
    corrected,
    flash_back,
    page_number,
    paging,
    partner_names,
    url,
)
from app.console.finance.statement_view import CONFIRMABLE, StatementPage, statement_page
from app.console.templating import redirect, render
from app.core import clock
from app.core.business_time import month_named
from app.core.database import SessionDep
from app.core.problems import NotFound, Problem
from app.fees import finance_views, statements
from app.fees.models import StatementStatus
from app.reconciliation import service as reconciliation
from app.settlement import exports
from app.settlement import service as settlement

router = APIRouter(prefix="/console/statements", include_in_schema=False)

Reader = Annotated[SignedInPerson, Depends(page_for(FINANCE_READ))]
Writer = Annotated[SignedInPerson, Depends(form_for(FINANCE_WRITE))]
LIST = "/console/statements"


def _status(raw: str | None) -> StatementStatus | bool | None:
    """The status filter; ``False`` when the URL names no such status."""
    if not raw:
        return None
    try:
        return StatementStatus(raw)
    except ValueError:
        return False


@router.get("")
async def statement_list(
    request: Request,
    session: SessionDep,
    person: Reader,
    period: str | None = None,
    partner: str | None = None,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    chosen_status, number = _status(status), page_number(page)
    fixed = {
        "period": period if period and month_named(period) else None,
        "partner": partner if partner and len(partner) <= 40 else None,
        "status": chosen_status.value if isinstance(chosen_status, StatementStatus) else None,
        "page": number if number and number > 1 else None,
    }
    if corrected({"period": period, "partner": partner, "status": status, "page": page}, fixed):
        return redirect(url(LIST, fixed))
    filters = statements.StatementFilters(
        period=period if fixed["period"] else None,
        partner_id=partner if fixed["partner"] else None,
        status=chosen_status if isinstance(chosen_status, StatementStatus) else None,
    )
    strip = await finance_views.status_totals(session, person.tenant, filters)
    pages = paging(number or 1, 0)  # the offset of the page asked for; its count comes with the rows
    rows, total = await finance_views.statements_page(
        session, person.tenant, filters, offset=pages.offset, limit=PAGE_SIZE
    )
    pages = paging(number or 1, total)
    if pages.page > pages.pages:
        return redirect(url(LIST, {**fixed, "page": pages.pages if pages.pages > 1 else None}))
    choices = await finance_views.partners_with_statements(session)
    names = await partner_names(session, [row.partner_id for row in rows] + choices)
    filtered = any(fixed[name] for name in ("period", "partner", "status"))
    return render(
        request,
        "finance/statements.html",
        {
            "strip": strip,
            "rows": rows,
            "names": names,
            "choices": choices,
            "filters": fixed,
            "filtered": filtered,
            "paging": pages,
            "url_with": lambda **changes: url(LIST, {**fixed, "page": None, **changes}),
            "page_url": lambda number: url(LIST, {**fixed, "page": number if number > 1 else None}),
            "may_write": FINANCE_WRITE in person.scopes,
        },
        fragment="finance/statements_results.html",
    )


@router.post("/{statement_id}/issue")
async def issue_statement(statement_id: str, request: Request, session: SessionDep, person: Writer) -> Response:
    actor = person.actor(request)
    return await act(
        request,
        session,
        lambda: statements.issue(session, actor, statement_id, clock.now()),
        done="Statement issued: it is frozen and the partner has been told",
        back=f"{LIST}/{statement_id}",
    )


@router.post("/{statement_id}/approve")
async def approve_statement(statement_id: str, request: Request, session: SessionDep, person: Writer) -> Response:
    actor = person.actor(request)
    return await act(
        request,
        session,
        lambda: settlement.approve(session, actor, statement_id, clock.now()),
        done="Statement approved",
        back=f"{LIST}/{statement_id}",
    )


@router.post("/{statement_id}/mark-paid")
async def mark_statement_paid(statement_id: str, request: Request, session: SessionDep, person: Writer) -> Response:
    actor = person.actor(request)
    payment_ref = str((await request.form()).get("payment_ref") or "").strip()
    back = f"{LIST}/{statement_id}"
    if not 1 <= len(payment_ref) <= 100:
        return flash_back(
            request, back + "?confirm=pay", "Enter the bank transfer's reference (1 to 100 characters)", level="error"
        )
    return await act(
        request,
        session,
        lambda: settlement.mark_paid(session, actor, statement_id, payment_ref, clock.now()),
        done="Statement marked paid",
        back=back,
    )


@router.get("/{statement_id}")
async def statement_detail(
    statement_id: str, request: Request, session: SessionDep, person: Reader, confirm: str | None = None
) -> Response:
    if confirm is not None and confirm not in CONFIRMABLE:
        return redirect(f"{LIST}/{statement_id}")
    view = await _page_or_none(session, person, request, statement_id)
    if view is None:
        return render(request, "finance/not_found.html", status_code=404)
    confirming = view.action(confirm) if confirm else None
    if confirm and (confirming is None or confirming.refusal):
        return redirect(f"{LIST}/{statement_id}")
    return render(request, "finance/statement.html", {"view": view, "confirming": confirming})


@router.get("/{statement_id}/print")
async def statement_print(statement_id: str, request: Request, session: SessionDep, person: Reader) -> Response:
    view = await _page_or_none(session, person, request, statement_id)
    if view is None:
        return render(request, "finance/not_found.html", status_code=404)
    return render(request, "finance/print.html", {"view": view, "printed_at": clock.now()})


@router.get("/{statement_id}/export")
async def statement_export(
    statement_id: str, request: Request, session: SessionDep, person: Reader, format: str = "csv"
) -> Response:
    if format not in ("csv", "xlsx"):
        return redirect(f"{LIST}/{statement_id}/export?format=csv")
    try:
        statement = await statements.get_statement(session, person.tenant, statement_id)
    except NotFound:
        return render(request, "finance/not_found.html", status_code=404)
    partner = await catalog.get_partner(session, statement.partner_id)
    lines = await statements.all_lines(session, statement.id)
    headers = {"Content-Disposition": f'attachment; filename="statement-{statement.period}-{partner.id}.{format}"'}
    if format == "csv":
        body, media_type = exports.statement_csv(statement, partner, lines), exports.CSV_MEDIA_TYPE
    else:
        items = await reconciliation.all_items(session, statement.id)
        body, media_type = exports.statement_xlsx(statement, partner, lines, items), exports.XLSX_MEDIA_TYPE
    return Response(body, media_type=media_type, headers=headers)


async def _page_or_none(
    session: AsyncSession, person: SignedInPerson, request: Request, statement_id: str
) -> StatementPage | None:
    try:
        return await statement_page(session, person, person.actor(request).id, statement_id)
    except Problem:
        return None
