"""The alliance manager's pages. Each reads its state from the URL (a bad value redirects to the corrected URL),
calls the domain services with the signed-in person's tenant and actor, and renders a whole page or, for htmx,
the region it swaps. Forms check the session's CSRF token (``form_for``) and answer with a redirect and a flash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.catalog import service as catalog
from app.catalog.schemas import FeeRules, FeeScheduleCreate, FeeScheduleUpdate
from app.console.access import SignedInPerson, form_for, page_for
from app.console.i18n import locale_of, translator
from app.console.manager import conflicts as conflict_view
from app.console.manager import labels, periods, risk_cases
from app.console.manager import overview as overview_view
from app.console.manager import partners as partner_view
from app.console.manager import programs as program_view
from app.console.manager import referrals as referral_view
from app.console.manager import words as _words  # noqa: F401  (the Chinese of these pages)
from app.console.templating import redirect, render
from app.core import business_time
from app.core.database import SessionDep
from app.core.problems import Problem

router = APIRouter(prefix="/console", include_in_schema=False)
router.include_router(risk_cases.router)  # 风险案件 (app.console.manager.risk_cases)

CatalogReader = Annotated[SignedInPerson, Depends(page_for("catalog:read"))]
CatalogForm = Annotated[SignedInPerson, Depends(form_for("catalog:write"))]
CatalogWriter = Annotated[SignedInPerson, Depends(page_for("catalog:write"))]
ReportReader = Annotated[SignedInPerson, Depends(page_for("reports:read"))]
AttributionManager = Annotated[SignedInPerson, Depends(page_for("attribution:manage"))]
AttributionForm = Annotated[SignedInPerson, Depends(form_for("attribution:manage"))]
UnmaskForm = Annotated[SignedInPerson, Depends(form_for("pii:unmask"))]
Text = Annotated[str | None, Query()]  # checked by the page, which redirects a bad value


def _translator(request: Request) -> Callable[..., str]:
    return translator(locale_of(request))


def _labels() -> dict[str, Any]:
    return {"label": labels.label, "names": labels}


async def _named(request: Request, session: SessionDep) -> dict[str, Any]:
    """The labels, and ``pname(partner_id)``: a partner's legal name as registered (in Chinese), or its display
    name for a reader who chose English (CONSOLE.md, "Words")."""
    english = locale_of(request) == "en"
    partners = await catalog.list_partners(session, program_view.EVERYTHING)
    names = {p.id: p.display_name if english else p.legal_name for p in partners}
    return {**_labels(), "pname": lambda partner_id: names.get(partner_id, "—")}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


# --- 总览 -----------------------------------------------------------------------------------------------------------


@router.get("/overview")
async def overview_page(request: Request, session: SessionDep, person: ReportReader, period: Text = None) -> Response:
    today = business_time.today()
    chosen = periods.parse(period or periods.DEFAULT, today)
    if chosen is None:
        default = f"/console/overview?period={periods.DEFAULT}"
        return redirect(default, flash="Unknown period: showing the last 12 months", level="warning")
    view = await overview_view.overview(session, person.tenant, chosen)
    context = {
        "view": view,
        "charts": overview_view.charts_of(view, _translator(request)),
        "ages": overview_view.age_bars(view.structure),
        "change_shown": overview_view.change_shown,
        "period_choices": periods.choices(today),
    }
    return render(request, "manager/overview.html", context, fragment="manager/overview_body.html")


# --- 归因冲突 --------------------------------------------------------------------------------------------------------


@router.get("/conflicts")
async def conflicts_page(
    request: Request,
    session: SessionDep,
    person: AttributionManager,
    tab: Text = None,
    page: Text = None,
    selected: Annotated[str | None, Query(alias="id")] = None,
) -> Response:
    queue = await conflict_view.conflict_queue(session, tab, page, selected)
    if isinstance(queue, conflict_view.Correction):
        return redirect(queue.url, flash=queue.message, level="warning")
    context = {"q": queue, **await _named(request, session)}
    return render(request, "manager/conflicts.html", context, fragment="manager/conflicts_region.html")


@router.post("/conflicts/{conflict_id}/resolve")
async def resolve_conflict(
    conflict_id: str, request: Request, session: SessionDep, person: AttributionForm
) -> Response:
    form = await _form(request)
    outcome = await conflict_view.resolve(
        session, person.actor(request), conflict_id, form.get("resolution"), form.get("reason")
    )
    return redirect(outcome.url, flash=outcome.message, level=outcome.level)


# --- 推荐查询 --------------------------------------------------------------------------------------------------------

SEARCHED_AS = {
    "mobile": "Searched by mobile",
    "national_id": "Searched by ID number",
    "credit_code": "Searched by credit code",
}


@router.get("/referrals")
async def referrals_page(
    request: Request,
    session: SessionDep,
    person: AttributionManager,
    referral: Text = None,
) -> Response:
    shown = None
    if referral is not None:
        shown = await referral_view.referral_page(session, referral)
        if shown is None:
            return redirect("/console/referrals", flash="No such referral", level="warning")
    context = {"shown": shown, "searched": False, **await _named(request, session)}
    return render(request, "manager/referrals.html", context)


@router.post("/referrals/search")
async def search_referrals(request: Request, session: SessionDep, person: AttributionForm) -> Response:
    key = referral_view.search_key((await _form(request)).get("identity"))
    if key is None:
        return redirect(
            "/console/referrals", flash="Enter an ID number, a credit code or a mobile number", level="error"
        )
    found = await referral_view.search(session, person.tenant, request.app.state.data_keyring.index, key)
    context = {
        "found": found,
        "searched": True,
        "searched_as": SEARCHED_AS[key.kind],
        "shown": None,
        **await _named(request, session),
    }
    return render(request, "manager/referrals.html", context)


@router.post("/referrals/{referral_id}/unmask")
async def unmask_referral(referral_id: str, request: Request, session: SessionDep, person: UnmaskForm) -> Response:
    shown = await referral_view.referral_page(session, referral_id)
    if shown is None:
        return redirect("/console/referrals", flash="No such referral", level="warning")
    purpose = referral_view.checked_purpose((await _form(request)).get("purpose"))
    if purpose is None:
        return redirect(
            f"/console/referrals?referral={referral_id}", flash="State the purpose (3 to 300 characters)", level="error"
        )
    cipher = await request.app.state.data_keyring.cipher(session)
    clear = await referral_view.unmask(session, person.actor(request), cipher, referral_id, purpose)
    context = {"shown": shown, "clear": clear, "searched": False, **await _named(request, session)}
    return render(request, "manager/referrals.html", context)


# --- 合作机构 --------------------------------------------------------------------------------------------------------


@router.get("/partners")
async def partners_page(
    request: Request,
    session: SessionDep,
    person: CatalogReader,
    status: Text = None,
    kind: Text = None,
    page: Text = None,
) -> Response:
    filters, corrected = partner_view.checked_filters({"status": status, "kind": kind})
    number = conflict_view.parse_page(page)
    if corrected or number is None:
        return redirect(partner_view.list_url(filters), flash="Unknown filter value removed", level="warning")
    listing = await partner_view.partner_list(session, person.tenant, filters, number)
    if listing.page != number:
        return redirect(listing.url())
    context = {"listing": listing, "filter_values": partner_view.FILTERS, **await _named(request, session)}
    return render(request, "manager/partners.html", context)


@router.get("/partners/{partner_id}")
async def partner_page(
    partner_id: str, request: Request, session: SessionDep, person: CatalogReader, tab: Text = None
) -> Response:
    partner = await partner_view.find_partner(session, partner_id)
    if partner is None:
        return redirect("/console/partners", flash="No such partner", level="warning")
    tabs = partner_view.tabs_for(person.scopes)
    if tab not in tabs:
        if tab is None:
            tab = tabs[0]
        else:
            return redirect(f"/console/partners/{partner.id}?tab={tabs[0]}")
    view = await partner_view.partner_page(session, person.tenant, person, partner, tab, tabs)
    context = {
        "page": view,
        "all_tabs": partner_view.TABS,
        "tab_labels": partner_view.TAB_LABELS,
        "metric": partner_view.metric,
        **await _named(request, session),
    }
    return render(request, "manager/partner.html", context)


# --- 项目与费率 ------------------------------------------------------------------------------------------------------


async def _program_context(request: Request, session: SessionDep, **values: Any) -> dict[str, Any]:
    return {
        "state_class": program_view.STATE_CLASS,
        "rule_label": program_view.rule_label,
        "rule_value": program_view.rule_value,
        **await _named(request, session),
        **values,
    }


@router.get("/programs")
async def programs_page(request: Request, session: SessionDep, person: CatalogReader, partner: Text = None) -> Response:
    partners = await catalog.list_partners(session, program_view.EVERYTHING)
    if partner is not None and partner not in {p.id for p in partners}:
        return redirect("/console/programs", flash="Unknown filter value removed", level="warning")
    entries = await program_view.program_entries(session, person.tenant, partner)
    partners.sort(key=lambda p: p.display_name)
    context = await _program_context(request, session, entries=entries, partners=partners, chosen_partner=partner)
    return render(request, "manager/programs.html", context)


async def _program_or_redirect(
    session: SessionDep, person: SignedInPerson, program_id: str
) -> program_view.ProgramEntry | Response:
    entry = await program_view.program_entry(session, person.tenant, program_id)
    if entry is None:
        return redirect("/console/programs", flash="No such program", level="warning")
    return entry


def _draft_values(entry: program_view.ProgramEntry) -> dict[str, str]:
    latest = entry.versions[0].schedule if entry.versions else None
    return program_view.form_values(latest.rules if latest else None, None, entry.products)


@router.get("/programs/{program_id}")
async def program_page(program_id: str, request: Request, session: SessionDep, person: CatalogReader) -> Response:
    entry = await _program_or_redirect(session, person, program_id)
    if isinstance(entry, Response):
        return entry
    context = await _program_context(request, session, entry=entry, values=_draft_values(entry), form_error=None)
    return render(request, "manager/program.html", context)


@router.post("/programs/{program_id}/schedules")
async def create_draft(program_id: str, request: Request, session: SessionDep, person: CatalogForm) -> Response:
    entry = await _program_or_redirect(session, person, program_id)
    if isinstance(entry, Response):
        return entry
    form = await _form(request)
    try:
        effective_from, rules = program_view.rules_of_form(form, entry.products)
        async with session.begin_nested():
            data = FeeScheduleCreate(
                program_id=program_id, effective_from=effective_from, rules=FeeRules.model_validate(rules)
            )
            schedule = await catalog.create_fee_schedule(session, person.actor(request), data)
    except (program_view.FormProblem, Problem) as problem:
        context = await _program_context(request, session, entry=entry, values=form, form_error=_form_error(problem))
        return render(request, "manager/program.html", context, status_code=422)
    return redirect(f"/console/fee-schedules/{schedule.id}", flash="Draft saved")


def _form_error(problem: Exception) -> dict[str, str]:
    if isinstance(problem, program_view.FormProblem):
        return {"name": problem.name, "message": problem.message, "detail": problem.detail}
    assert isinstance(problem, Problem)
    return {"name": "", "message": "The catalog refused the change", "detail": str(problem.detail or problem.title)}


async def _schedule_or_redirect(
    session: SessionDep, person: SignedInPerson, schedule_id: str
) -> tuple[Any, program_view.ProgramEntry] | Response:
    schedule = await program_view.find_schedule(session, schedule_id)
    entry = await program_view.program_entry(session, person.tenant, schedule.program_id) if schedule else None
    if schedule is None or entry is None:
        return redirect("/console/programs", flash="No such fee schedule", level="warning")
    return schedule, entry


async def _schedule_context(
    request: Request, session: SessionDep, schedule: Any, entry: program_view.ProgramEntry, **values: Any
) -> dict[str, Any]:
    state = program_view.schedule_state(schedule, business_time.today())
    rows = program_view.rule_rows(schedule.rules, entry.products)
    defaults = program_view.form_values(schedule.rules, schedule.effective_from, entry.products)
    return await _program_context(
        request,
        session,
        schedule=schedule,
        entry=entry,
        state=state,
        rows=rows,
        **{"values": defaults, "form_error": None, **values},
    )


@router.get("/fee-schedules/{schedule_id}")
async def schedule_page(schedule_id: str, request: Request, session: SessionDep, person: CatalogReader) -> Response:
    found = await _schedule_or_redirect(session, person, schedule_id)
    if isinstance(found, Response):
        return found
    return render(request, "manager/schedule.html", await _schedule_context(request, session, *found))


@router.post("/fee-schedules/{schedule_id}")
async def edit_draft(schedule_id: str, request: Request, session: SessionDep, person: CatalogForm) -> Response:
    found = await _schedule_or_redirect(session, person, schedule_id)
    if isinstance(found, Response):
        return found
    schedule, entry = found
    form = await _form(request)
    try:
        effective_from, rules = program_view.rules_of_form(form, entry.products)
        async with session.begin_nested():
            data = FeeScheduleUpdate(effective_from=effective_from, rules=FeeRules.model_validate(rules))
            await catalog.update_fee_schedule(session, person.actor(request), schedule_id, data)
    except (program_view.FormProblem, Problem) as problem:
        await session.refresh(schedule)
        context = await _schedule_context(
            request, session, schedule, entry, values=form, form_error=_form_error(problem)
        )
        return render(request, "manager/schedule.html", context, status_code=422)
    return redirect(f"/console/fee-schedules/{schedule_id}", flash="Draft saved")


@router.get("/fee-schedules/{schedule_id}/activate")
async def confirm_activation(
    schedule_id: str, request: Request, session: SessionDep, person: CatalogWriter
) -> Response:
    found = await _schedule_or_redirect(session, person, schedule_id)
    if isinstance(found, Response):
        return found
    schedule, entry = found
    if schedule.status.value != "draft":
        return redirect(f"/console/fee-schedules/{schedule_id}", flash="Only a draft can be activated", level="warning")
    predecessor = next((v.schedule for v in entry.versions if v.schedule.status.value == "active"), None)
    context = await _program_context(request, session, schedule=schedule, entry=entry, predecessor=predecessor)
    return render(request, "manager/activate.html", context)


@router.post("/fee-schedules/{schedule_id}/activate")
async def activate(schedule_id: str, request: Request, session: SessionDep, person: CatalogForm) -> Response:
    found = await _schedule_or_redirect(session, person, schedule_id)
    if isinstance(found, Response):
        return found
    try:
        async with session.begin_nested():
            await catalog.activate_fee_schedule(session, person.actor(request), schedule_id)
    except Problem as refused:
        message = str(refused.detail or refused.title)
        return redirect(f"/console/fee-schedules/{schedule_id}", flash=message, level="error")
    return redirect(f"/console/fee-schedules/{schedule_id}", flash="Version activated")


@router.get("/programs/{program_id}/compare")
async def compare_versions(
    program_id: str, request: Request, session: SessionDep, person: CatalogReader, a: Text = None, b: Text = None
) -> Response:
    entry = await _program_or_redirect(session, person, program_id)
    if isinstance(entry, Response):
        return entry
    versions = {v.schedule.id: v for v in entry.versions}
    if a not in versions or b not in versions:
        if len(entry.versions) < 2:
            return redirect(f"/console/programs/{program_id}", flash="Two versions are needed", level="warning")
        newest, before = entry.versions[0].schedule.id, entry.versions[1].schedule.id
        return redirect(f"/console/programs/{program_id}/compare?a={before}&b={newest}")
    left, right = versions[a].schedule, versions[b].schedule
    pairs = program_view.side_by_side(left, right, entry.products)
    context = await _program_context(
        request,
        session,
        entry=entry,
        left=left,
        right=right,
        left_state=versions[a].state,
        right_state=versions[b].state,
        pairs=pairs,
        differences=sum(1 for *_, differs in pairs if differs),
    )
    return render(request, "manager/compare.html", context)
