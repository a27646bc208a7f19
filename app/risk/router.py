"""Risk case endpoints for staff (DESIGN.md, "Risk"): alliance managers list, read, assign, annotate and close
cases (``risk:manage``); auditors read them (``risk:read``); partners never see them — a partner learns only that
some of its lines are under review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import Principal, requires
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreateKeyRequired
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.fees.models import FeeAccrual
from app.risk import service
from app.risk.models import RiskCase, RiskCaseEvent
from app.risk.schemas import (
    INLINED,
    AssignIn,
    CaseEventOut,
    CaseLineOut,
    CaseReferralOut,
    CaseStatus,
    CloseIn,
    NoteIn,
    RiskCaseDetail,
    RiskCaseOut,
    SignalOut,
)

router = APIRouter(prefix="/v1/admin/risk-cases", tags=["risk"], responses=problem_responses(401, 403, 404, 429))

RiskReader = Annotated[Principal, requires("risk:read")]
RiskManager = Annotated[Principal, requires("risk:manage")]
Paging = Annotated[PageParams, Depends(page_params)]


def case_out(case: RiskCase, summary: service.CaseSummary) -> RiskCaseOut:
    return RiskCaseOut(
        id=case.id,
        partner_id=case.partner_id,
        status=case.status,
        outcome=case.outcome,
        assignee_id=case.assignee_id,
        reason=case.reason,
        signal_kinds=summary.signal_kinds,
        referral_count=summary.referral_count,
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        closed_by=case.closed_by,
    )


def event_out(event: RiskCaseEvent) -> CaseEventOut:
    return CaseEventOut(id=event.id, kind=event.kind, actor_id=event.actor_id, details=event.details, at=event.at)


def line_out(line: FeeAccrual) -> CaseLineOut:
    return CaseLineOut(
        id=line.id,
        referral_id=line.referral_id,
        external_ref=line.external_ref,
        rule=line.rule.value,
        amount_fen=line.amount_fen,
        currency=line.currency,
        status=line.status.value,
        hold_until=line.hold_until,
        statement_id=line.statement_id,
    )


def detail_out(file: service.CaseFile) -> RiskCaseDetail:
    return RiskCaseDetail(
        **case_out(file.case, file.summary).model_dump(),
        referral_ids=file.referral_ids,
        signals=[
            SignalOut(
                id=signal.id,
                kind=signal.kind,
                fingerprint=signal.fingerprint,
                referral_ids=signal.referral_ids[:INLINED],
                referral_count=len(signal.referral_ids),
                evidence=signal.evidence,
                raised_at=signal.raised_at,
            )
            for signal in file.signals
        ],
        lines=[line_out(line) for line in file.lines],
        line_count=file.line_totals.count,
        truncated=file.truncated,
        lines_held_fen=file.lines_held_fen,
        timeline=[event_out(event) for event in file.timeline],
    )


@router.get("", response_model=Page[RiskCaseOut], summary="Risk cases, newest first")
async def list_cases(
    session: SessionDep,
    principal: RiskReader,
    params: Paging,
    status: CaseStatus | None = None,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
    assignee_id: Annotated[str | None, Query(max_length=80, description="e.g. `person:li.manager`")] = None,
) -> Page[RiskCaseOut]:
    filters = service.CaseFilters(status=status, partner_id=partner_id, assignee_id=assignee_id)
    cases = await service.list_cases(session, params, filters)
    summaries = await service.summaries(session, [case.id for case in cases])
    return page_of(cases, params, lambda case: case_out(case, summaries[case.id]))


@router.get(
    "/{case_id}",
    response_model=RiskCaseDetail,
    summary="One risk case: evidence, referrals, fee lines, timeline",
    description=(
        "Evidence holds hashes, masked values and ids only, never personal data in clear. The case carries at most "
        f"the first {INLINED} of its referral ids and of its fee lines; `referral_count` and `line_count` count "
        "them all (and `lines_held_fen` sums them all). When `truncated` is true, read every one from "
        "`GET /v1/admin/risk-cases/{case_id}/referrals` and `/lines`, paged by cursor."
    ),
)
async def get_case(case_id: str, session: SessionDep, principal: RiskReader) -> RiskCaseDetail:
    return detail_out(await service.case_file(session, case_id))


@router.get(
    "/{case_id}/referrals",
    response_model=Page[CaseReferralOut],
    summary="Every referral the case names, paged (newest added first)",
)
async def case_referrals(
    case_id: str, session: SessionDep, principal: RiskReader, params: Paging
) -> Page[CaseReferralOut]:
    rows = await service.referrals_page(session, case_id, params)
    return page_of(rows, params, lambda row: CaseReferralOut(referral_id=row.id, added_at=row.created_at))


@router.get(
    "/{case_id}/lines",
    response_model=Page[CaseLineOut],
    summary="Every fee line of the case's referrals, paged (newest first)",
)
async def case_lines(case_id: str, session: SessionDep, principal: RiskReader, params: Paging) -> Page[CaseLineOut]:
    return page_of(await service.lines_page(session, case_id, params), params, line_out)


@router.post(
    "/{case_id}/assign",
    response_model=RiskCaseDetail,
    responses=problem_responses(409, 422),
    summary="Give an open case to a person (or to nobody)",
)
async def assign_case(
    case_id: str, body: AssignIn, request: Request, session: SessionDep, principal: RiskManager
) -> RiskCaseDetail:
    await service.assign(session, principal.actor(request), case_id, body.assignee_id)
    return detail_out(await service.case_file(session, case_id))


@router.post(
    "/{case_id}/notes",
    status_code=201,
    response_model=CaseEventOut,
    responses=problem_responses(422),
    summary="Add a note to the case's timeline",
)
async def add_note(
    case_id: str, body: NoteIn, request: Request, session: SessionDep, principal: RiskManager
) -> CaseEventOut:
    return event_out(await service.add_note(session, principal.actor(request), case_id, body.text))


@router.post(
    "/{case_id}/close",
    response_model=RiskCaseDetail,
    responses=problem_responses(409, 422),
    summary="Close a case: cleared (lines released) or confirmed (lines reversed, referrals rejected)",
    description=(
        "`cleared`: the case's holds end and its referrals' lines go into the next month close. `confirmed`: what "
        "its referrals still earn is reversed by `risk_confirmed` lines (a line kept off statements is cancelled "
        "with its reversal; one already on a statement is reversed on the partner's next), and the referrals are "
        "rejected (their timelines and webhooks say `rejected`, cause `risk_confirmed`). Audited with the reason. "
        "A closed case is 409. `Idempotency-Key` is required: the same key and body return the first answer."
    ),
)
async def close_case(
    case_id: str,
    body: CloseIn,
    request: Request,
    session: SessionDep,
    principal: RiskManager,
    once: IdempotentCreateKeyRequired,
) -> Response:
    async def close() -> RiskCaseDetail:
        await service.close_case(session, principal.actor(request), case_id, body.outcome, body.reason)
        return detail_out(await service.case_file(session, case_id))

    return await once.create(principal.client_id, body, close, status_code=200)
