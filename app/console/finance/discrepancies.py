"""对账差异 discrepancies: the inbox of unresolved items across statements (class, difference, partner, statement,
age), oldest first, and their resolution through the reconciliation service (accept ours / accept theirs, which
books an adjustment for the next period / write off), each after a summary and with a note."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

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
from app.console.finance.statement_view import age_days
from app.console.templating import redirect, render
from app.core import clock
from app.core.database import SessionDep
from app.fees import finance_views
from app.reconciliation import service as reconciliation
from app.reconciliation.models import MatchClass, Resolution
from app.reconciliation.queue import QueueFilters, open_items_page

router = APIRouter(prefix="/console/discrepancies", include_in_schema=False)

Reader = Annotated[SignedInPerson, Depends(page_for(FINANCE_READ))]
Writer = Annotated[SignedInPerson, Depends(form_for(FINANCE_WRITE))]
LIST = "/console/discrepancies"
DISCREPANT = tuple(kind for kind in MatchClass if kind is not MatchClass.matched)
MAX_NOTE = 500


def _local(target: str | None) -> str:
    """Only a finance page is a place to come back to."""
    if target and target.startswith(("/console/discrepancies", "/console/statements/")) and "//" not in target:
        return target
    return LIST


@router.get("")
async def discrepancy_list(
    request: Request,
    session: SessionDep,
    person: Reader,
    match_class: str | None = None,
    partner: str | None = None,
    statement: str | None = None,
    page: str | None = None,
    resolve: str | None = None,
) -> Response:
    kind = next((each for each in DISCREPANT if each.value == match_class), None)
    number = page_number(page)
    fixed = {
        "match_class": kind.value if kind else None,
        "partner": partner if partner and len(partner) <= 40 else None,
        "statement": statement if statement and len(statement) <= 40 else None,
        "page": number if number and number > 1 else None,
        "resolve": resolve if resolve and len(resolve) <= 40 else None,
    }
    asked = {"match_class": match_class, "partner": partner, "statement": statement, "page": page, "resolve": resolve}
    if corrected(asked, fixed):
        return redirect(url(LIST, fixed))
    filters = QueueFilters(
        match_class=kind,
        partner_id=partner if fixed["partner"] else None,
        statement_id=statement if fixed["statement"] else None,
    )
    offset = ((number or 1) - 1) * PAGE_SIZE
    items, total = await open_items_page(session, person.tenant, filters, offset=offset, limit=PAGE_SIZE)
    pages = paging(number or 1, total)
    if total and pages.page > pages.pages:
        return redirect(url(LIST, {**fixed, "page": pages.pages if pages.pages > 1 else None}))
    statements = await finance_views.statements_by_id(session, [item.statement_id for item in items])
    names = await partner_names(session, [item.partner_id for item in items] + ([partner] if partner else []))
    resolving = next((item for item in items if item.id == fixed["resolve"]), None)
    now = clock.now()
    return render(
        request,
        "finance/discrepancies.html",
        {
            "items": items,
            "ages": {item.id: age_days(item.created_at, now) for item in items},
            "statements": statements,
            "names": names,
            "filters": fixed,
            "filtered": bool(fixed["match_class"] or fixed["partner"] or fixed["statement"]),
            "classes": DISCREPANT,
            "paging": pages,
            "resolving": resolving,
            "resolutions": list(Resolution),
            "url_with": lambda **changes: url(LIST, {**fixed, "page": None, "resolve": None, **changes}),
            "page_url": lambda number: url(LIST, {**fixed, "resolve": None, "page": number if number > 1 else None}),
            "here": url(LIST, {**fixed, "resolve": None}),
            "may_write": FINANCE_WRITE in person.scopes,
        },
    )


@router.post("/{item_id}/resolve")
async def resolve_item(item_id: str, request: Request, session: SessionDep, person: Writer) -> Response:
    form = await request.form()
    back = _local(str(form.get("next") or ""))
    chosen = next((each for each in Resolution if each.value == form.get("resolution")), None)
    note = str(form.get("note") or "").strip()
    if chosen is None or not 1 <= len(note) <= MAX_NOTE:
        return flash_back(request, back, "Choose a resolution and write a note (up to 500 characters)", level="error")
    actor = person.actor(request)
    return await act(
        request,
        session,
        lambda: reconciliation.resolve(session, actor, item_id, chosen, note, clock.now()),
        done="Discrepancy resolved",
        back=back,
    )
