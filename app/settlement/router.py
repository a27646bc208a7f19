"""Settlement endpoints: finance approves a statement, records its payment, and exports it with its
reconciliation."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response

from app.auth.deps import Principal, requires
from app.catalog import service as catalog
from app.core import clock
from app.core.database import SessionDep
from app.core.problems import problem_responses
from app.fees import statements
from app.fees.schemas import PaymentIn, StatementOut, statement_out
from app.reconciliation import service as reconciliation
from app.settlement import exports, service

finance_router = APIRouter(prefix="/v1/finance", tags=["finance"], responses=problem_responses(401, 403, 404, 429))

FinanceReader = Annotated[Principal, requires("finance:read")]
FinanceWriter = Annotated[Principal, requires("finance:write")]


@finance_router.post(
    "/statements/{statement_id}/approve",
    response_model=StatementOut,
    responses=problem_responses(409),
    summary="Approve an issued or disputed statement",
    description=(
        "Refused (409, `open-reconciliation-items`) while a discrepancy of the partner's claim is open, and "
        "(403, `second-person-required`) to the client or person who issued the statement: four eyes."
    ),
)
async def approve_statement(
    statement_id: str, request: Request, session: SessionDep, principal: FinanceWriter
) -> StatementOut:
    return statement_out(await service.approve(session, principal.actor(request), statement_id, clock.now()))


@finance_router.post(
    "/statements/{statement_id}/mark-paid",
    response_model=StatementOut,
    responses=problem_responses(409, 422),
    summary="Record the payment of an approved statement",
    description="Refused (403, `second-person-required`) to the client or person who approved it: four eyes.",
)
async def mark_statement_paid(
    statement_id: str, body: PaymentIn, request: Request, session: SessionDep, principal: FinanceWriter
) -> StatementOut:
    paid = await service.mark_paid(session, principal.actor(request), statement_id, body.payment_ref, clock.now())
    return statement_out(paid)


@finance_router.get(
    "/statements/{statement_id}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The statement as CSV (its lines) or XLSX (figures, lines, reconciliation)",
            "content": {exports.CSV_MEDIA_TYPE: {}, exports.XLSX_MEDIA_TYPE: {}},
        }
    },
    summary="Export a statement as CSV or XLSX",
    description=(
        "Every line carries the partner's own reference. Text a spreadsheet would run as a formula "
        "(`=`, `+`, `-`, `@`) is written with a leading apostrophe."
    ),
)
async def export_statement(
    statement_id: str,
    session: SessionDep,
    principal: FinanceReader,
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    statement = await statements.get_statement(session, principal.tenant, statement_id)
    partner = await catalog.get_partner(session, statement.partner_id)
    lines = await statements.all_lines(session, statement.id)
    filename = f"statement-{statement.period}-{statement.partner_id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "csv":
        return Response(
            exports.statement_csv(statement, partner, lines), media_type=exports.CSV_MEDIA_TYPE, headers=headers
        )
    items = await reconciliation.all_items(session, statement.id)
    xlsx = exports.statement_xlsx(statement, partner, lines, items)
    return Response(xlsx, media_type=exports.XLSX_MEDIA_TYPE, headers=headers)
