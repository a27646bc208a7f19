"""Reconciliation endpoints: partners upload claims, read the matching result and dispute; finance resolves."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import Principal, requires
from app.core import clock
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreate
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import Problem, problem_responses
from app.core.tenancy import Tenant
from app.reconciliation import service
from app.reconciliation.models import MatchClass
from app.reconciliation.schemas import (
    ClassTotals,
    DisputeIn,
    DisputeOut,
    ItemOut,
    ReconciliationOut,
    ResolutionIn,
    claim_out,
    item_out,
)

# Declared charsets a CSV claim may come in (Chinese spreadsheets often save GBK); JSON is UTF-8 by definition.
_CSV_CODECS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}
MAX_CLAIM_BYTES = 16 * 1024 * 1024  # as the service-wide body limit (app.core.middleware)

partner_router = APIRouter(
    prefix="/v1/statements", tags=["reconciliation"], responses=problem_responses(401, 403, 404, 429)
)
finance_router = APIRouter(prefix="/v1/finance", tags=["finance"], responses=problem_responses(401, 403, 404, 429))

Paging = Annotated[PageParams, Depends(page_params)]


class ClaimTooLarge(Problem):
    status, slug, title = 413, "claim-too-large", "Claim too large"


class UnsupportedClaimFormat(Problem):
    status, slug, title = 415, "unsupported-claim-format", "Unsupported claim format"


def _claim_format(content_type: str) -> tuple[str, str]:
    """The claim's media type and the codec its declared charset names."""
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    media_type = media_type.lower()
    charset = next(
        (
            value.strip('"').lower()
            for name, _, value in (p.partition("=") for p in parameters)
            if name.lower() == "charset"
        ),
        "utf-8",
    )
    if media_type not in ("text/csv", "application/json"):
        raise UnsupportedClaimFormat("Send the claim as text/csv or application/json.")
    if charset not in _CSV_CODECS or (media_type == "application/json" and _CSV_CODECS[charset] != "utf-8-sig"):
        raise UnsupportedClaimFormat(f"Unsupported charset {charset!r}: UTF-8, or GBK / GB18030 for CSV.")
    return media_type, _CSV_CODECS[charset]


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_CLAIM_BYTES:
        raise ClaimTooLarge(f"A claim is at most {MAX_CLAIM_BYTES // (1024 * 1024)} MiB.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CLAIM_BYTES:
            raise ClaimTooLarge(f"A claim is at most {MAX_CLAIM_BYTES // (1024 * 1024)} MiB.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _result(
    session: SessionDep,
    tenant: Tenant,
    reconciled: service.Reconciliation,
    params: PageParams,
    filters: service.ItemFilters,
) -> ReconciliationOut:
    items = await service.list_items(session, tenant, params, filters)
    page = page_of(items, params, item_out)
    return ReconciliationOut(
        statement_id=reconciled.statement.id,
        statement_status=reconciled.statement.status,
        claim=claim_out(reconciled.claim) if reconciled.claim else None,
        totals={match_class: ClassTotals(**vars(total)) for match_class, total in reconciled.totals.by_class.items()},
        open_items=reconciled.totals.open_items,
        data=page.data,
        next_cursor=page.next_cursor,
    )


CLAIM_DESCRIPTION = """
Your own account of what the statement owes you, matched at once against its lines. Send **CSV**
(`Content-Type: text/csv`, UTF-8 or `charset=gbk`, a header naming `external_ref`, `fee_type`, `amount_fen`
— or `amount` — and optionally `currency`) or **JSON** (`{"lines": [{"external_ref", "fee_type", "amount_fen"}]}`),
one line per reference and fee type with its total in fen. Fee types are the lines' `rule` names: `funded_bounty`,
`tier_top_up`, `bundle_fee`, `revenue_share`, `cap`, `clawback`, `adjustment`.

Amounts are taken as VAT-inclusive or not by `amounts_include_vat`, by default your VAT setting, and brought to
the statement's basis before matching. A new upload replaces the previous claim (until finance has resolved any
of its items). The answer is the matching result with its first page of items; `reconciliation.completed` is
sent to your webhooks.
"""


@partner_router.post(
    "/{statement_id}/claims",
    status_code=201,
    response_model=ReconciliationOut,
    responses=problem_responses(409, 413, 415, 422),
    summary="Upload your claim for an issued statement (CSV or JSON)",
    description=CLAIM_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
        }
    },
)
async def upload_claim(
    statement_id: str,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("claims:write")],
    params: Paging,
    once: IdempotentCreate,
    amounts_include_vat: Annotated[bool | None, Query(description="Default: your VAT setting.")] = None,
) -> Response:
    media_type, codec = _claim_format(request.headers.get("content-type") or "")
    body = await _read_body(request)

    async def upload() -> ReconciliationOut:
        lines = service.parse_csv(body, codec) if media_type == "text/csv" else service.parse_json(body)
        reconciled = await service.upload_claim(
            session,
            principal.tenant,
            principal.actor(request),
            statement_id,
            lines,
            claim_format="csv" if media_type == "text/csv" else "json",
            amounts_include_vat=amounts_include_vat,
            now=clock.now(),
        )
        filters = service.ItemFilters(statement_id=reconciled.statement.id)
        return await _result(session, principal.tenant, reconciled, params, filters)

    upload_digest = {"sha256": hashlib.sha256(body).hexdigest(), "type": media_type, "vat": amounts_include_vat}
    return await once.create(principal.client_id, upload_digest, upload)


@partner_router.get(
    "/{statement_id}/reconciliation",
    response_model=ReconciliationOut,
    responses=problem_responses(400),
    summary="The matching result of your current claim",
    description="Totals per class, then the items newest first (cursor-paginated, filterable).",
)
async def get_reconciliation(
    statement_id: str,
    session: SessionDep,
    principal: Annotated[Principal, requires("statements:read")],
    params: Paging,
    match_class: MatchClass | None = None,
    open: bool | None = None,
) -> ReconciliationOut:
    reconciled = await service.reconciliation(session, principal.tenant, statement_id)
    filters = service.ItemFilters(statement_id=reconciled.statement.id, match_class=match_class, open=open)
    return await _result(session, principal.tenant, reconciled, params, filters)


@partner_router.post(
    "/{statement_id}/disputes",
    response_model=DisputeOut,
    responses=problem_responses(409, 422),
    summary="Dispute discrepancies of your statement, each with a reason",
    description="The statement becomes `disputed` until finance has resolved every open item and approved it.",
)
async def dispute(
    statement_id: str,
    body: DisputeIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("claims:write")],
) -> DisputeOut:
    reasons = {line.item_id: line.reason for line in body.items}
    statement, items = await service.dispute(
        session, principal.tenant, principal.actor(request), statement_id, reasons, clock.now()
    )
    return DisputeOut(
        statement_id=statement.id, statement_status=statement.status, items=[item_out(item) for item in items]
    )


@finance_router.get(
    "/reconciliation-items",
    response_model=Page[ItemOut],
    responses=problem_responses(400),
    summary="Reconciliation items of every partner",
)
async def list_items(
    session: SessionDep,
    principal: Annotated[Principal, requires("finance:read")],
    params: Paging,
    statement_id: Annotated[str | None, Query(max_length=40)] = None,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
    match_class: MatchClass | None = None,
    open: Annotated[bool | None, Query(description="Discrepancies not yet resolved.")] = None,
    disputed: bool | None = None,
) -> Page[ItemOut]:
    filters = service.ItemFilters(
        statement_id=statement_id, partner_id=partner_id, match_class=match_class, open=open, disputed=disputed
    )
    return page_of(await service.list_items(session, principal.tenant, params, filters), params, item_out)


@finance_router.post(
    "/reconciliation-items/{item_id}/resolve",
    response_model=ItemOut,
    responses=problem_responses(409, 422),
    summary="Resolve a discrepancy: accept ours, accept theirs (an adjustment), or write off",
    description=(
        "`accept_theirs` books the difference (theirs - ours) as an `adjustment` line, with the item's reference, "
        "payable with the partner's next statement. Audited. Resolving the statement's last open item sends "
        "`reconciliation.completed` again, with `stage` `resolved` (the first, `matched`, goes when a claim is "
        "matched); the statement can then be approved."
    ),
)
async def resolve_item(
    item_id: str,
    body: ResolutionIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("finance:write")],
) -> ItemOut:
    item = await service.resolve(session, principal.actor(request), item_id, body.resolution, body.note, clock.now())
    return item_out(item)
