"""风险案件 risk cases: the managers' inbox (open / closed archive, mine / unassigned / everyone, oldest waiting
first) and the case page — the evidence of each signal (thresholds, what was observed, the items), the referrals,
their fee lines (what is held), the timeline — with assign, note and close (cleared or confirmed, with a reason,
after a summary of what closing does). Auditors read; only managers act (``risk:manage``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.catalog import service as catalog
from app.console.access import SignedInPerson, form_for, page_for
from app.console.i18n import locale_of
from app.console.manager import labels
from app.console.manager import risk_words as words
from app.console.manager.programs import EVERYTHING
from app.console.manager.risk_evidence import evidence_view
from app.console.templating import redirect, render
from app.core.database import SessionDep
from app.core.problems import Problem
from app.risk import service
from app.risk.schemas import CaseOutcome, CaseStatus

router = APIRouter(prefix="/risk-cases", include_in_schema=False)

RiskReader = Annotated[SignedInPerson, Depends(page_for("risk:read"))]
RiskForm = Annotated[SignedInPerson, Depends(form_for("risk:manage"))]
Text = Annotated[str | None, Query()]  # checked here; a bad value redirects to the corrected URL

LIST = "/console/risk-cases"
TABS = {"open": CaseStatus.open, "closed": CaseStatus.closed}
WHOSE = ("all", "mine", "unassigned")
PAGE_SIZE = 25
REASON_MIN, REASON_MAX = 3, 500
NOT_AN_ASSIGNEE = "Assign the case to an alliance manager whose account is active"


def inbox_url(tab: str = "open", whose: str = "all", page: int = 1) -> str:
    fields: dict[str, object] = {"tab": tab}
    if whose != "all":
        fields["whose"] = whose
    if page > 1:
        fields["page"] = page
    return f"{LIST}?{urlencode(fields)}"


@dataclass
class Inbox:
    tab: str
    whose: str
    page: int
    pages: int
    total: int
    counts: dict[str, int]
    cases: list[Any]
    summaries: dict[str, service.CaseSummary]
    nothing_yet: bool

    def url(self, page: int | None = None) -> str:
        return inbox_url(self.tab, self.whose, self.page if page is None else page)


def _page_number(raw: str | None) -> int | None:
    if raw is None:
        return 1
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 1_000_000 else None


def _filters(status: CaseStatus, whose: str, person: SignedInPerson) -> service.CaseFilters:
    me = f"person:{person.username}"
    return service.CaseFilters(
        status=status, assignee_id=me if whose == "mine" else None, unassigned=whose == "unassigned"
    )


@router.get("")
async def inbox_page(
    request: Request,
    session: SessionDep,
    person: RiskReader,
    tab: Text = None,
    whose: Text = None,
    page: Text = None,
) -> Response:
    tab, whose = tab or "open", whose or "all"
    number = _page_number(page)
    if tab not in TABS or whose not in WHOSE or number is None:
        return redirect(inbox_url(), flash="Unknown filter: showing the open cases", level="warning")
    counts = {
        name: await service.count_cases(session, _filters(status, whose, person)) for name, status in TABS.items()
    }
    pages = max(1, math.ceil(counts[tab] / PAGE_SIZE))
    if number > pages:
        return redirect(inbox_url(tab, whose, pages))
    cases, total = await service.cases_page(
        session, _filters(TABS[tab], whose, person), offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    everything = await service.count_cases(session, service.CaseFilters())
    inbox = Inbox(
        tab,
        whose,
        number,
        pages,
        total,
        counts,
        cases,
        await service.summaries(session, [c.id for c in cases]),
        everything == 0,
    )
    return render(request, "manager/risk_cases.html", {"q": inbox, **await _context(request, session, person)})


async def _context(request: Request, session: SessionDep, person: SignedInPerson) -> dict[str, Any]:
    """Labels, ``pname(partner_id)`` (the legal name as registered, or the display name in English), and whether
    this person may act."""
    english = locale_of(request) == "en"
    partners = await catalog.list_partners(session, EVERYTHING)
    names = {p.id: p.display_name if english else p.legal_name for p in partners}
    return {
        "label": labels.label,
        "names": labels,
        "risk": words,
        "pname": lambda partner_id: names.get(partner_id, "—"),
        "may_act": "risk:manage" in person.scopes,
    }


@router.get("/{case_id}")
async def case_page(case_id: str, request: Request, session: SessionDep, person: RiskReader) -> Response:
    try:
        file = await service.case_file(session, case_id)
    except Problem:
        return redirect(LIST, flash="No such risk case", level="warning")
    context = {
        "file": file,
        "case": file.case,
        "held_count": file.lines_held,
        "reversible_count": file.line_totals.not_reversed,
        "me": f"person:{person.username}",
        "evidence_view": evidence_view,
        **await _context(request, session, person),
    }
    return render(request, "manager/risk_case.html", context)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _here(case_id: str) -> str:
    return f"{LIST}/{case_id}"


@router.post("/{case_id}/assign")
async def assign(case_id: str, request: Request, session: SessionDep, person: RiskForm) -> Response:
    form = await _form(request)
    choice = (form.get("assignee") or "").strip()
    assignee = f"person:{person.username}" if choice == "me" else None if choice in ("", "nobody") else choice
    if assignee is not None and not (assignee.startswith("person:") and 7 < len(assignee) <= 80):
        return redirect(_here(case_id), flash="Assign the case to a person (person:username)", level="error")
    try:
        async with session.begin_nested():
            await service.assign(session, person.actor(request), case_id, assignee)
    except service.InvalidAssignee:
        return redirect(_here(case_id), flash=NOT_AN_ASSIGNEE, level="error")
    except Problem as refused:
        return redirect(_here(case_id), flash=str(refused.detail or refused.title), level="error")
    return redirect(_here(case_id), flash="Case assigned" if assignee else "Case unassigned", level="success")


@router.post("/{case_id}/notes")
async def add_note(case_id: str, request: Request, session: SessionDep, person: RiskForm) -> Response:
    note = (await _form(request)).get("text", "").strip()
    if not 1 <= len(note) <= 2000:
        return redirect(_here(case_id), flash="Write a note of 1 to 2,000 characters", level="error")
    try:
        async with session.begin_nested():
            await service.add_note(session, person.actor(request), case_id, note)
    except Problem as refused:
        return redirect(_here(case_id), flash=str(refused.detail or refused.title), level="error")
    return redirect(_here(case_id), flash="Note added", level="success")


@router.post("/{case_id}/close")
async def close(case_id: str, request: Request, session: SessionDep, person: RiskForm) -> Response:
    form = await _form(request)
    outcome, reason = form.get("outcome"), (form.get("reason") or "").strip()
    if outcome not in {o.value for o in CaseOutcome}:
        return redirect(_here(case_id), flash="Choose cleared or confirmed", level="error")
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        return redirect(_here(case_id), flash="Give a reason of 3 to 500 characters", level="error")
    if form.get("confirm") != "yes":
        return redirect(_here(case_id), flash="Tick the confirmation: closing cannot be undone", level="error")
    try:
        async with session.begin_nested():
            await service.close_case(session, person.actor(request), case_id, CaseOutcome(outcome), reason)
    except Problem as refused:
        return redirect(_here(case_id), flash=str(refused.detail or refused.title), level="error")
    message = (
        "Case cleared: its lines go into the next close"
        if outcome == "cleared"
        else ("Case confirmed: lines reversed, referrals rejected")
    )
    return redirect(_here(case_id), flash=message, level="success")
