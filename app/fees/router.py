"""Statement endpoints: finance closes periods, issues statements and books adjustments; partners read their
statements. Approval, payment and the export with its reconciliation are settlement's (``app.settlement.router``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import Principal, requires
from app.core import clock
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreateKeyRequired
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.fees import reviews, statements
from app.fees.models import FeeRule, StatementStatus
from app.fees.schemas import (
    PERIOD_PATTERN,
    AdjustmentIn,
    AdjustmentOut,
    ClosedPeriod,
    LinesUnderReview,
    PartnerLeftOut,
    StatementLineOut,
    StatementOut,
    adjustment_out,
    line_out,
    statement_out,
)
from app.sandbox import service as sandbox

finance_router = APIRouter(prefix="/v1/finance", tags=["finance"], responses=problem_responses(401, 403, 404, 429))
partner_router = APIRouter(
    prefix="/v1/statements", tags=["statements"], responses=problem_responses(401, 403, 404, 429)
)

Paging = Annotated[PageParams, Depends(page_params)]
FinanceReader = Annotated[Principal, requires("finance:read")]
FinanceWriter = Annotated[Principal, requires("finance:write")]
PartnerReader = Annotated[Principal, requires("statements:read")]


# --- finance ------------------------------------------------------------------------------------------------------


@finance_router.post(
    "/periods/{period}/close",
    response_model=ClosedPeriod,
    responses=problem_responses(409, 422),
    summary="Close a month: release held lines, build one draft statement per partner",
    description=(
        "Held lines whose hold period ended by the period end become payable; every partner with payable lines "
        "not yet on a statement gets one draft statement for the period (`YYYY-MM`, a month in the business "
        "timezone, Asia/Shanghai by default), "
        "its net carrying a negative net of its previous statement. Closing again, or two closes at once, "
        "leaves one statement per partner and period: a repeat adds newly due lines to the period's drafts. "
        "Refused (409) before the month has ended and once a later month has statements. In a sandbox, "
        "partners with a test clock are left out (listed in `left_out`): their months close when their own "
        "clock is advanced past each month's end. Lines of referrals under a risk review are left out and "
        "counted in `under_review`."
    ),
)
async def close_period(period: str, request: Request, session: SessionDep, principal: FinanceWriter) -> ClosedPeriod:
    closed, left_out = await sandbox.close_on_real_time(
        session, principal.actor(request), request.app.state.settings, period, clock.now()
    )
    return ClosedPeriod(
        left_out=[
            PartnerLeftOut(partner_id=partner.partner_id, clock_now=partner.clock_now, reason=partner.reason)
            for partner in left_out
        ],
        period=closed.period.name,
        released_lines=closed.released_lines,
        statemented_lines=closed.statemented_lines,
        created_statements=closed.created_statements,
        statements=[statement_out(statement) for statement in closed.statements],
        under_review=LinesUnderReview.of(closed.under_review),
    )


@finance_router.get("/statements", response_model=Page[StatementOut], summary="Every partner's statements")
async def finance_list_statements(
    session: SessionDep,
    principal: FinanceReader,
    params: Paging,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
    status: StatementStatus | None = None,
) -> Page[StatementOut]:
    filters = statements.StatementFilters(period=period, partner_id=partner_id, status=status)
    rows = await statements.list_statements(session, principal.tenant, params, filters)
    return page_of(rows, params, statement_out)


@finance_router.get("/statements/{statement_id}", response_model=StatementOut, summary="One statement")
async def finance_get_statement(statement_id: str, session: SessionDep, principal: FinanceReader) -> StatementOut:
    return statement_out(await statements.get_statement(session, principal.tenant, statement_id))


@finance_router.get(
    "/statements/{statement_id}/lines", response_model=Page[StatementLineOut], summary="A statement's lines"
)
async def finance_statement_lines(
    statement_id: str, session: SessionDep, principal: FinanceReader, params: Paging, rule: FeeRule | None = None
) -> Page[StatementLineOut]:
    rows = await statements.list_lines(session, principal.tenant, statement_id, params, rule)
    return page_of(rows, params, line_out)


@finance_router.post(
    "/statements/{statement_id}/issue",
    response_model=StatementOut,
    responses=problem_responses(409),
    summary="Issue a draft statement (it is frozen; the partner gets `statement.issued`)",
)
async def issue_statement(
    statement_id: str, request: Request, session: SessionDep, principal: FinanceWriter
) -> StatementOut:
    return statement_out(await statements.issue(session, principal.actor(request), statement_id, clock.now()))


@finance_router.post(
    "/adjustments",
    status_code=201,
    response_model=AdjustmentOut,
    responses=problem_responses(422),
    summary="Book an adjustment for a partner, payable with its next statement",
    description=(
        "A signed `adjustment` line with its reason, payable at once: the next period closed puts it on the "
        "partner's statement. `Idempotency-Key` is required: the same key and body return the first answer."
    ),
)
async def create_adjustment(
    body: AdjustmentIn,
    request: Request,
    session: SessionDep,
    principal: FinanceWriter,
    once: IdempotentCreateKeyRequired,
) -> Response:
    async def book() -> AdjustmentOut:
        line = await statements.create_adjustment(
            session,
            principal.actor(request),
            partner_id=body.partner_id,
            amount_fen=body.amount_fen,
            external_ref=body.external_ref,
            reason=body.reason,
            now=clock.now(),
        )
        return adjustment_out(line)

    return await once.create(principal.client_id, body, book)


# --- partner ------------------------------------------------------------------------------------------------------


@partner_router.get("", response_model=Page[StatementOut], summary="Your statements, newest first")
async def list_statements(
    session: SessionDep,
    principal: PartnerReader,
    params: Paging,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
    status: StatementStatus | None = None,
) -> Page[StatementOut]:
    filters = statements.StatementFilters(period=period, status=status)
    return page_of(await statements.list_statements(session, principal.tenant, params, filters), params, statement_out)


@partner_router.get("/{statement_id}", response_model=StatementOut, summary="One of your statements")
async def get_statement(statement_id: str, session: SessionDep, principal: PartnerReader) -> StatementOut:
    statement = await statements.get_statement(session, principal.tenant, statement_id)
    held = await reviews.partner_lines_under_review(session, statement.partner_id, statement.period)
    return statement_out(statement).model_copy(update={"under_review": LinesUnderReview.of(held)})


@partner_router.get(
    "/{statement_id}/lines",
    response_model=Page[StatementLineOut],
    responses=problem_responses(400),
    summary="The lines of one of your statements",
)
async def statement_lines(
    statement_id: str, session: SessionDep, principal: PartnerReader, params: Paging, rule: FeeRule | None = None
) -> Page[StatementLineOut]:
    rows = await statements.list_lines(session, principal.tenant, statement_id, params, rule)
    return page_of(rows, params, line_out)
