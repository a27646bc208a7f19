"""Batch submission endpoints: upload a CSV or JSON Lines file of referrals, follow its progress, read its results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from app.auth.deps import Principal, requires
from app.core.database import Database, SessionDep, get_database
from app.core.idempotency import REPLAY_HEADER
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.referrals.batches import files as batch_files
from app.referrals.batches import intake, results
from app.referrals.batches.files import BatchFormat
from app.referrals.batches.models import BatchStatus, LineOutcome, ReferralBatch, ReferralBatchResult
from app.referrals.models import ReferralStatus

PREFIX = "/v1/referral-batches"
router = APIRouter(prefix=PREFIX, tags=["referral batches"], responses=problem_responses(401, 403, 404, 429))
Paging = Annotated[PageParams, Depends(page_params)]


class BatchCounts(BaseModel):
    total: int = Field(description="Data lines in the file.")
    processed: int
    eligible: int
    existing_client: int
    duplicate: int
    returned_existing: int = Field(description="Lines naming a person you had already referred: that referral.")
    error: int


class BatchOut(BaseModel):
    id: str
    status: BatchStatus
    format: BatchFormat
    counts: BatchCounts
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    links: dict[str, str] = Field(examples=[{"self": f"{PREFIX}/bat_...", "results": f"{PREFIX}/bat_.../results"}])


class LineError(BaseModel):
    field: str | None = Field(description="The CSV column (or JSON path) at fault; null for the whole line.")
    message: str


class BatchLineOut(BaseModel):
    line: int = Field(description="The file's line where the record starts (a CSV header is line 1).")
    external_ref: str | None
    outcome: LineOutcome
    referral_id: str | None
    referral_status: ReferralStatus | None
    errors: list[LineError]


def batch_out(batch: ReferralBatch) -> BatchOut:
    return BatchOut(
        id=batch.id,
        status=batch.status,
        format=batch.format,
        counts=BatchCounts(
            total=batch.total_lines,
            processed=batch.processed,
            eligible=batch.eligible,
            existing_client=batch.existing_client,
            duplicate=batch.duplicate,
            returned_existing=batch.returned_existing,
            error=batch.errors,
        ),
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        completed_at=batch.completed_at,
        links={"self": f"{PREFIX}/{batch.id}", "results": f"{PREFIX}/{batch.id}/results"},
    )


def line_out(result: ReferralBatchResult) -> BatchLineOut:
    return BatchLineOut(
        line=result.line,
        external_ref=result.external_ref,
        outcome=result.outcome,
        referral_id=result.referral_id,
        referral_status=result.referral_status,
        errors=[LineError(**error) for error in result.errors or []],
    )


SUBMIT_DESCRIPTION = f"""
Upload up to {batch_files.MAX_LINES:,} referrals (at most {batch_files.MAX_BYTES // 1024 // 1024} MiB) as **CSV**
(`Content-Type: text/csv`) or **JSON Lines** (`Content-Type: application/x-ndjson`, one `ReferralCreate` object
per line, as the body of `POST /v1/referrals`); a `format` parameter overrides the media type. The file is UTF-8,
with or without a byte-order mark, unless `charset=gbk` is declared.

Every line is validated and attributed exactly as a single submission; a bad line never blocks the others. The
answer is `202` with the batch: small batches are already `completed`, larger ones are processed in the
background: follow `links.self`, then read `links.results` (one result per line: the referral and its status,
or each field at fault with its message). `Idempotency-Key` is required: the same key and file return the same
batch; the same key with another file is refused.

**CSV.** The first line names the columns, in any order; `program_id`, `external_ref` and `kind` are required,
the others may be left out or empty:

| column | for | meaning |
|---|---|---|
| `program_id`, `external_ref`, `kind` | all | as in `POST /v1/referrals` (`kind`: `vip`, `employee`, `enterprise`) |
| `name` | all | the person's or company's name |
| `mobile`, `national_id` | vip, employee | mainland mobile; 18-character resident ID number |
| `declared_assets_band`, `employer` | vip, employee | `under_1m`, `1m_to_5m`, `5m_plus`; employer's name |
| `credit_code`, `contact_mobile` | enterprise | unified social credit code; a contact's mobile |
| `consent_captured_at` | vip, employee | ISO 8601 with its offset, e.g. `2026-11-01T10:00:00+08:00` |
| `consent_channel` | vip, employee | `mobile_app`, `online_banking`, `branch_paper`, `branch_tablet`, \
`call_center`, `hr_portal` |
| `consent_notice_version`, `consent_notice_sha256` | vip, employee | the notice shown; SHA-256 (hex) of its text |
| `consent_recipient_name`, `consent_purpose` | vip, employee | the firm's name as shown; the stated purpose |
| `consent_data_categories` | vip, employee | semicolon-separated, e.g. `name;mobile;national_id` |
| `consent_retention_days` | vip, employee | whole days, 1 to 3650 |
| `consent_separate` | vip, employee | `true` (separate consent is required) |
| `consent_evidence_ref` | vip, employee | reference or hash of the signed record |

The file is read by the rules of RFC 4180: a field in double quotes may hold commas, line breaks and doubled
quotes (`""`); a quote inside an unquoted field is an ordinary character. Blank lines and empty rows (`,,,`) are
skipped. Every other record gets exactly one result, numbered with the file's line where it starts (the header is
line 1): a record that cannot be read (a quote that never closes, the wrong number of cells, bytes that are not
text in the charset) is an error of that line alone, and errors name the CSV column at fault.
"""


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    responses={
        **problem_responses(413, 415, 422),
        202: {"description": "The batch, with a `Location` header; `Idempotent-Replayed: true` on a replay"},
    },
    summary="Submit a batch of referrals (CSV or JSON Lines)",
    description=SUBMIT_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def submit_batch(
    request: Request,
    session: SessionDep,
    database: Annotated[Database, Depends(get_database)],
    principal: Annotated[Principal, requires("referrals:write")],
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
    format: Annotated[BatchFormat | None, Query(description="Overrides the Content-Type.")] = None,
) -> JSONResponse:
    batch_format, codec = batch_files.upload_format(request.headers.get("content-type"), format)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > batch_files.MAX_BYTES:
        raise batch_files.too_large()
    # The caller is authenticated: the request's transaction ends here, so that no connection is held while the
    # client sends the file (a slow one would keep it for minutes); the batch is staged in a transaction of its
    # own once the whole file is in.
    await session.commit()
    keyring = request.app.state.data_keyring
    async with batch_files.spooled(request.stream()) as spool, database.sessionmaker() as staging, staging.begin():
        received = await intake.receive_batch(
            staging,
            partner_id=principal.tenant.own_partner_id,
            client_id=principal.client_id,
            idempotency_key=idempotency_key,
            file=batch_files.BatchFile(batch_format, codec),
            spool=spool,
            cipher=await keyring.cipher(staging),
            index=keyring.index,
        )
    headers = {"Location": f"{PREFIX}/{received.batch.id}"}
    if received.replayed:
        headers[REPLAY_HEADER] = "true"
    return JSONResponse(batch_out(received.batch).model_dump(mode="json"), status_code=202, headers=headers)


@router.get("", response_model=Page[BatchOut], summary="Your batches, newest first")
async def list_batches(
    session: SessionDep, principal: Annotated[Principal, requires("referrals:read")], params: Paging
) -> Page[BatchOut]:
    return page_of(await results.list_batches(session, principal.tenant, params), params, batch_out)


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch's progress and counts")
async def get_batch(
    batch_id: str, session: SessionDep, principal: Annotated[Principal, requires("referrals:read")]
) -> BatchOut:
    return batch_out(await results.get_batch(session, principal.tenant, batch_id))


@router.get(
    "/{batch_id}/results",
    response_model=Page[BatchLineOut],
    responses=problem_responses(400),
    summary="A batch's per-line results, in line order",
)
async def list_results(
    batch_id: str,
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:read")],
    params: Paging,
    outcome: LineOutcome | None = None,
) -> Page[BatchLineOut]:
    rows = await results.list_results(session, principal.tenant, batch_id, params, outcome)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return Page(
        data=[line_out(row) for row in rows],
        next_cursor=results.line_cursor(rows[-1].line) if more and rows else None,
    )
