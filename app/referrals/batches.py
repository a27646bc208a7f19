"""Batch submission of referrals: a CSV or JSON Lines upload of up to 100,000 referrals, spooled while it
streams in (``batch_files``: no database connection is held meanwhile), staged encrypted in one transaction, then
validated and attributed chunk by chunk through the same code path as a single submission.

Exactly once: processing a chunk is one transaction that deletes the staged chunk, attributes its lines, writes
one result per line and bumps the batch's counters. A crash anywhere leaves either all of it or none of it, so a
rerun resumes from the chunks still staged, without losses or duplicates. Results hold no personal data and are
kept; staged chunks (encrypted personal data) live only until they are processed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from app.catalog.models import PartnerStatus, Program
from app.catalog.service import get_partner
from app.core.bulk import copy_records
from app.core.business_time import business_day
from app.core.idempotency import IdempotencyKeyReused
from app.core.models import created_at_field, enum_type, id_field, new_id, updated_at_field, utcnow
from app.core.pagination import InvalidCursor, PageParams, paginate_query
from app.core.problems import Conflict, NotFound, field_errors
from app.core.tenancy import Tenant, owned_row, scoped
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals.attribution import Candidate, Outcome, attribute
from app.referrals.batch_files import (
    MALFORMED,
    REQUIRED_CSV_COLUMNS,
    BatchFile,
    BatchFormat,
    DataLine,
    EmptyBatch,
    Record,
    Spool,
)
from app.referrals.models import ReferralStatus
from app.referrals.schemas import ReferralCreate
from app.referrals.service import ProgramNotAvailable, build_candidate, open_programs

STAGE_CHUNK = 2_000  # lines per staged chunk, which is also the unit attributed per transaction
INLINE_LIMIT = 500  # batches up to this size are processed in the request itself
PREPARE_SLICE = 100  # lines validated and encrypted between two yields to the event loop
MAX_ATTEMPTS = 5  # failed processing runs before a batch is marked failed
CHUNK_PURPOSE = "referral_batch_chunks.payload"  # associated data of a staged chunk's ciphertext

_SUBJECT_COLUMNS = (
    "name",
    "mobile",
    "national_id",
    "credit_code",
    "contact_mobile",
    "declared_assets_band",
    "employer",
)
# CSV column → field of ``Consent``.
_CONSENT_COLUMNS = {
    "consent_captured_at": "captured_at",
    "consent_channel": "channel",
    "consent_notice_version": "notice_version",
    "consent_notice_sha256": "notice_sha256",
    "consent_recipient_name": "recipient_name",
    "consent_purpose": "purpose",
    "consent_data_categories": "data_categories",
    "consent_retention_days": "retention_days",
    "consent_separate": "separate_consent",
    "consent_evidence_ref": "evidence_ref",
}
_CONSENT_FIELDS = {field: column for column, field in _CONSENT_COLUMNS.items()}
_TRUE, _FALSE = frozenset({"true", "1", "yes", "y"}), frozenset({"false", "0", "no", "n"})
_EXTERNAL_REF = re.compile(r"^[\x21-\x7e]{1,100}$")


# --- tables -----------------------------------------------------------------------------------------------------


class BatchStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"


class LineOutcome(StrEnum):
    eligible = "eligible"
    existing_client = "existing_client"
    duplicate = "duplicate"
    returned_existing = "returned_existing"
    error = "error"


OPEN_SQL = "status IN ('pending', 'processing')"


class ReferralBatch(SQLModel, table=True):
    """One upload: its idempotency key and content hash, its progress and the count of each outcome."""

    __tablename__ = "referral_batches"
    __table_args__ = (
        sa.UniqueConstraint("client_id", "idempotency_key", name="uq_referral_batches_client_key"),
        sa.Index("ix_referral_batches_partner_created", "partner_id", "created_at", "id"),
        sa.Index("ix_referral_batches_open", "created_at", postgresql_where=sa.text(OPEN_SQL)),
    )

    id: str = id_field("bat")
    partner_id: str = Field(foreign_key="partners.id", max_length=40)
    client_id: str = Field(foreign_key="oauth_clients.id", max_length=40)
    idempotency_key: str = Field(max_length=200)
    content_sha256: str | None = Field(default=None, max_length=64)
    format: BatchFormat = Field(sa_type=enum_type(BatchFormat, "referral_batch_format"), nullable=False)
    columns: list[str] | None = Field(default=None, sa_type=JSONB, description="The CSV header, in file order.")
    status: BatchStatus = Field(
        default=BatchStatus.pending, sa_type=enum_type(BatchStatus, "referral_batch_status"), nullable=False
    )
    total_lines: int = 0
    processed: int = 0
    eligible: int = 0
    existing_client: int = 0
    duplicate: int = 0
    returned_existing: int = 0
    errors: int = 0
    attempts: int = Field(default=0, description="Processing runs that failed; the batch fails after MAX_ATTEMPTS.")
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    completed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ReferralBatchChunk(SQLModel, table=True):
    """Staged lines waiting to be processed, ``(line number, raw line)`` pairs encrypted together (they hold
    personal data): one row per chunk, so staging and processing cost one row and one cipher call per chunk."""

    __tablename__ = "referral_batch_chunks"

    batch_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("referral_batches.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    first_line: int = Field(primary_key=True)
    lines: int
    payload: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class ReferralBatchResult(SQLModel, table=True):
    """What became of one line: the referral, or why it was refused. Never any personal data."""

    __tablename__ = "referral_batch_results"

    batch_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("referral_batches.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    line: int = Field(primary_key=True)
    outcome: LineOutcome = Field(sa_type=enum_type(LineOutcome, "referral_batch_outcome"), nullable=False)
    external_ref: str | None = Field(default=None, max_length=100)
    # No foreign key: the referral is written in the same transaction and never deleted (erasure keeps the row),
    # and a check per line is a sizeable share of a batch's cost.
    referral_id: str | None = Field(default=None, max_length=40)
    referral_status: ReferralStatus | None = Field(
        default=None, sa_type=enum_type(ReferralStatus, "referral_batch_referral_status")
    )
    errors: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONB)


# --- problems ---------------------------------------------------------------------------------------------------


class BatchClosed(Conflict):
    slug, title = "batch-closed", "Batch closed"


# --- parsing and validating one line ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineResult:
    line: int
    outcome: LineOutcome
    external_ref: str | None
    referral_id: str | None = None
    referral_status: ReferralStatus | None = None
    errors: list[dict[str, Any]] | None = None

    def record(self, batch_id: str) -> tuple[Any, ...]:
        errors = json.dumps(self.errors, ensure_ascii=False) if self.errors else None
        status = self.referral_status.value if self.referral_status else None
        return (batch_id, self.line, self.outcome.value, self.external_ref, self.referral_id, status, errors)


_RESULT_COLUMNS = ("batch_id", "line", "outcome", "external_ref", "referral_id", "referral_status", "errors")


def _safe_ref(value: object) -> str | None:
    """The partner's reference, echoed only when it is a valid one (anything else might be personal data)."""
    return value if isinstance(value, str) and _EXTERNAL_REF.match(value) else None


def _error(line: int, external_ref: str | None, field_name: str | None, message: str) -> LineResult:
    return LineResult(line, LineOutcome.error, external_ref, errors=[{"field": field_name, "message": message}])


def _csv_body(columns: Sequence[str], cells: list[str]) -> dict[str, Any]:
    values = {name: cell for name, cell in zip(columns, map(str.strip, cells), strict=True) if cell}
    body: dict[str, Any] = {name: values[name] for name in REQUIRED_CSV_COLUMNS if name in values}
    body["subject"] = {name: values[name] for name in _SUBJECT_COLUMNS if name in values}
    consent: dict[str, Any] = {}
    for column in _CONSENT_COLUMNS.keys() & values.keys():
        name = _CONSENT_COLUMNS[column]
        value: Any = values[column]
        if name == "data_categories":
            value = [item.strip() for item in value.split(";") if item.strip()]
        elif name == "retention_days" and value.isdigit():
            value = int(value)
        elif name == "separate_consent":
            lowered = value.lower()
            value = True if lowered in _TRUE else False if lowered in _FALSE else value
        consent[name] = value
    if consent:
        body["consent"] = consent
    return body


def _csv_field(loc: tuple[int | str, ...]) -> str | None:
    """The CSV column a validation error is about."""
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return None
    if names[0] == "consent" and len(names) > 1:
        return _CONSENT_FIELDS.get(names[1], "consent")
    if names[0] == "subject" and len(names) > 1:
        return names[1]
    return names[0]


def _validation_errors(error: ValidationError, batch_format: BatchFormat) -> list[dict[str, Any]]:
    # Only the location and message, as a response may show them: never the submitted value or an unknown name.
    return [
        {
            "field": _csv_field(tuple(item["loc"]))
            if batch_format is BatchFormat.csv
            else ".".join(str(part) for part in item["loc"]) or None,
            "message": item["msg"],
        }
        for item in field_errors(error.errors())
    ]


def parse_line(
    batch_format: BatchFormat, columns: Sequence[str] | None, line: int, record: Record
) -> ReferralCreate | LineResult:
    """One data record (see ``batch_files``) as a validated ``ReferralCreate``, or its error result."""
    if isinstance(record, dict):
        return _error(line, None, None, record.get("unreadable") or MALFORMED)
    if isinstance(record, str):  # a JSON line
        try:
            return ReferralCreate.model_validate_json(record)
        except ValidationError as exc:
            try:
                external_ref = _safe_ref(json.loads(record).get("external_ref"))
            except (ValueError, AttributeError, RecursionError):
                external_ref = None
            return LineResult(line, LineOutcome.error, external_ref, errors=_validation_errors(exc, batch_format))
    assert columns is not None and len(columns) == len(record)
    body = _csv_body(columns, record)
    try:
        return ReferralCreate.model_validate(body)
    except ValidationError as exc:
        errors = _validation_errors(exc, batch_format)
        return LineResult(line, LineOutcome.error, _safe_ref(body.get("external_ref")), errors=errors)


# --- receiving a batch ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    batch: ReferralBatch
    replayed: bool


async def receive_batch(
    session: AsyncSession,
    *,
    partner_id: str,
    client_id: str,
    idempotency_key: str,
    file: BatchFile,
    spool: Spool,
    cipher: DataCipher,
    index: BlindIndex,
) -> Received:
    """Stage a spooled upload (small ones are processed at once), idempotently per key and content.

    The key is claimed first by inserting the batch row: a concurrent upload with the same key waits on that row,
    then finds the batch and compares the content.
    """
    if (await get_partner(session, partner_id)).status is not PartnerStatus.active:
        raise ProgramNotAvailable("The partner is not active.")
    batch_id = await session.scalar(
        insert(ReferralBatch)
        .values(
            id=new_id("bat"),
            partner_id=partner_id,
            client_id=client_id,
            idempotency_key=idempotency_key,
            format=file.format,
            status=BatchStatus.pending,
        )
        .on_conflict_do_nothing(index_elements=["client_id", "idempotency_key"])
        .returning(col(ReferralBatch.id))
    )
    if batch_id is None:
        return await _replay(session, client_id, idempotency_key, file.format, spool.sha256)

    staged, last = False, []
    for chunk in file.chunks(spool, STAGE_CHUNK):
        if len(chunk) < STAGE_CHUNK:  # the last one
            last = chunk
        else:
            await _stage(session, batch_id, chunk, cipher)
            staged = True
    if file.lines == 0:
        raise EmptyBatch("The file has no data lines.")
    await session.execute(
        update(ReferralBatch)
        .where(col(ReferralBatch.id) == batch_id)
        .values(content_sha256=spool.sha256, total_lines=file.lines, columns=file.header)
    )
    batch = await _get(session, batch_id)
    if not staged and file.lines <= INLINE_LIMIT:
        prepared = await prepare_chunk(session, batch, last, cipher, index, business_day(utcnow()))
        await apply_chunk(session, batch, prepared, utcnow(), staged=False)
        batch = await _get(session, batch_id)
    elif last:
        await _stage(session, batch_id, last, cipher)
    return Received(batch, replayed=False)


async def _replay(
    session: AsyncSession, client_id: str, idempotency_key: str, batch_format: BatchFormat, sha256: str
) -> Received:
    batch = (
        await session.scalars(
            select(ReferralBatch).where(
                col(ReferralBatch.client_id) == client_id, col(ReferralBatch.idempotency_key) == idempotency_key
            )
        )
    ).one()
    if batch.content_sha256 != sha256 or batch.format is not batch_format:
        raise IdempotencyKeyReused("This Idempotency-Key was used for another batch; use a new key.")
    return Received(batch, replayed=True)


def _chunk_purpose(batch_id: str, first_line: int) -> str:
    """Associated data binding a chunk's ciphertext to its batch and place: a chunk moved elsewhere won't decrypt."""
    return f"{CHUNK_PURPOSE}:{batch_id}:{first_line}"


async def _stage(session: AsyncSession, batch_id: str, lines: list[DataLine], cipher: DataCipher) -> None:
    first_line = lines[0][0]
    payload = cipher.encrypt(json.dumps(lines, ensure_ascii=False), _chunk_purpose(batch_id, first_line))
    await session.execute(
        insert(ReferralBatchChunk).values(batch_id=batch_id, first_line=first_line, lines=len(lines), payload=payload)
    )


async def _get(session: AsyncSession, batch_id: str) -> ReferralBatch:
    batch = await session.get(ReferralBatch, batch_id, populate_existing=True)
    if batch is None:
        raise NotFound("No such batch.")
    return batch


# --- processing ---------------------------------------------------------------------------------------------------


@dataclass
class PreparedChunk:
    """Lines validated and encrypted, ready to attribute; ``results`` already holds the refused ones."""

    lines: list[int]
    candidates: list[Candidate] = field(default_factory=list)
    external_refs: dict[int, str] = field(default_factory=dict)
    results: list[LineResult] = field(default_factory=list)

    @property
    def last_line(self) -> int:
        return self.lines[-1]

    @classmethod
    def combine(cls, parts: Sequence[PreparedChunk]) -> PreparedChunk:
        combined = cls([])
        for part in parts:
            combined.lines += part.lines
            combined.candidates += part.candidates
            combined.external_refs.update(part.external_refs)
            combined.results += part.results
        return combined


async def next_staged_chunk(
    session: AsyncSession, batch_id: str, after: int, cipher: DataCipher
) -> list[DataLine] | None:
    """The lines of the first staged chunk after line ``after`` that no other transaction holds, decrypted and
    claimed (locked) until the end of the session's transaction; None when none is left."""
    row = (
        await session.execute(
            select(col(ReferralBatchChunk.first_line), col(ReferralBatchChunk.payload))
            .where(col(ReferralBatchChunk.batch_id) == batch_id, col(ReferralBatchChunk.first_line) > after)
            .order_by(col(ReferralBatchChunk.first_line))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).one_or_none()
    if row is None:
        return None
    pairs = json.loads(cipher.decrypt(row.payload, _chunk_purpose(batch_id, row.first_line)))
    return [(int(number), record) for number, record in pairs]


async def intake_context(session: AsyncSession, partner_id: str, today: date) -> dict[str, Program] | None:
    """The partner's open programs, or None when the partner may not refer anyone now."""
    partner = await get_partner(session, partner_id)
    if partner.status is not PartnerStatus.active:
        return None
    return await open_programs(session, partner_id, today)


def prepare_lines(
    batch: ReferralBatch,
    lines: list[DataLine],
    programs: dict[str, Program] | None,
    cipher: DataCipher,
    index: BlindIndex,
    today: date,
) -> PreparedChunk:
    """Validate and encrypt ``lines`` exactly as a single submission is (pure CPU, no database)."""
    prepared = PreparedChunk([number for number, _ in lines])
    for number, record in lines:
        parsed = parse_line(batch.format, batch.columns, number, record)
        if isinstance(parsed, LineResult):
            prepared.results.append(parsed)
        elif programs is None:
            prepared.results.append(_error(number, parsed.external_ref, None, "The partner is not active."))
        elif (program := programs.get(parsed.program_id)) is None:
            message = "No active program with this id accepts your referrals."
            prepared.results.append(_error(number, parsed.external_ref, "program_id", message))
        else:
            prepared.candidates.append(build_candidate(number, parsed, program, cipher, index, today))
            prepared.external_refs[number] = parsed.external_ref
    return prepared


async def prepare_chunk(
    session: AsyncSession,
    batch: ReferralBatch,
    lines: list[DataLine],
    cipher: DataCipher,
    index: BlindIndex,
    today: date,
) -> PreparedChunk:
    """``prepare_lines`` a slice at a time, yielding to the event loop in between: the statements of the chunks
    being attributed beside this one reach the database meanwhile."""
    programs = await intake_context(session, batch.partner_id, today)
    parts = []
    for start in range(0, len(lines), PREPARE_SLICE):
        parts.append(prepare_lines(batch, lines[start : start + PREPARE_SLICE], programs, cipher, index, today))
        await asyncio.sleep(0)
    return PreparedChunk.combine(parts)


def _result(outcome: Outcome, external_ref: str) -> LineResult:
    if outcome.referral_id is None:
        return _error(outcome.line, external_ref, outcome.error_field, outcome.error or "refused")
    if not outcome.created:
        return LineResult(
            outcome.line, LineOutcome.returned_existing, external_ref, outcome.referral_id, outcome.status
        )
    assert outcome.status is not None
    outcome_kind = LineOutcome(outcome.status.value)
    return LineResult(outcome.line, outcome_kind, external_ref, outcome.referral_id, outcome.status)


async def apply_chunk(
    session: AsyncSession, batch: ReferralBatch, prepared: PreparedChunk, now: datetime, *, staged: bool = True
) -> bool:
    """Attribute a prepared chunk, write its results, drop its staged lines and count: the caller's transaction
    makes all of it one. Lines no longer staged (processed by an earlier run) are skipped. Returns True when the
    batch is complete.

    Chunks of one batch may be applied side by side: the batch row is locked only by the closing update of the
    counters, so their transactions wait for each other only at the very end."""
    status = await session.scalar(select(col(ReferralBatch.status)).where(col(ReferralBatch.id) == batch.id))
    if status not in (BatchStatus.pending, BatchStatus.processing):
        return status is BatchStatus.completed
    results = prepared.results
    candidates = prepared.candidates
    if staged:
        unstaged = await session.scalar(
            text("DELETE FROM referral_batch_chunks WHERE batch_id = :batch AND first_line = :first RETURNING 1"),
            {"batch": batch.id, "first": prepared.lines[0]},
        )
        if unstaged is None:  # processed by an earlier run
            results, candidates = [], []
    outcomes = await attribute(session, batch.partner_id, candidates, now, batch_id=batch.id)
    results = results + [_result(outcome, prepared.external_refs[outcome.line]) for outcome in outcomes]
    await copy_records(session, "referral_batch_results", _RESULT_COLUMNS, [r.record(batch.id) for r in results])
    counts = Counter(result.outcome for result in results)
    done = await session.scalar(
        update(ReferralBatch)
        .where(col(ReferralBatch.id) == batch.id, sa.text(OPEN_SQL))
        .values(
            processed=col(ReferralBatch.processed) + len(results),
            eligible=col(ReferralBatch.eligible) + counts[LineOutcome.eligible],
            existing_client=col(ReferralBatch.existing_client) + counts[LineOutcome.existing_client],
            duplicate=col(ReferralBatch.duplicate) + counts[LineOutcome.duplicate],
            returned_existing=col(ReferralBatch.returned_existing) + counts[LineOutcome.returned_existing],
            errors=col(ReferralBatch.errors) + counts[LineOutcome.error],
            status=sa.case(
                (col(ReferralBatch.processed) + len(results) >= col(ReferralBatch.total_lines), BatchStatus.completed),
                else_=BatchStatus.processing,
            ),
            completed_at=sa.case(
                (col(ReferralBatch.processed) + len(results) >= col(ReferralBatch.total_lines), now), else_=None
            ),
            updated_at=now,
        )
        .returning(col(ReferralBatch.completed_at).is_not(None))
    )
    if done is None:
        raise BatchClosed("The batch was closed while this chunk was being processed.")
    return bool(done)


async def open_batches(session: AsyncSession, limit: int = 100) -> list[str]:
    """Batches waiting for processing, oldest first."""
    rows = await session.scalars(
        select(col(ReferralBatch.id)).where(sa.text(OPEN_SQL)).order_by(col(ReferralBatch.created_at)).limit(limit)
    )
    return list(rows.all())


async def record_failure(session: AsyncSession, batch_id: str, now: datetime) -> BatchStatus:
    """Count a failed processing run; after ``MAX_ATTEMPTS`` the batch is ``failed`` (its results so far stay)."""
    status = await session.scalar(
        update(ReferralBatch)
        .where(col(ReferralBatch.id) == batch_id, sa.text(OPEN_SQL))
        .values(
            attempts=col(ReferralBatch.attempts) + 1,
            status=sa.case(
                (col(ReferralBatch.attempts) + 1 >= MAX_ATTEMPTS, BatchStatus.failed), else_=col(ReferralBatch.status)
            ),
            updated_at=now,
        )
        .returning(col(ReferralBatch.status))
    )
    return BatchStatus(status) if status else BatchStatus.failed


async def discard_failed_lines(session: AsyncSession, before: datetime) -> int:
    """Drop the staged lines (personal data) of batches that failed before ``before``."""
    discarded = await session.scalars(
        text(
            "DELETE FROM referral_batch_chunks USING referral_batches b WHERE b.id = referral_batch_chunks.batch_id "
            "AND b.status = 'failed' AND b.updated_at < :before RETURNING referral_batch_chunks.lines"
        ),
        {"before": before},
    )
    return sum(discarded.all())


# --- reading ------------------------------------------------------------------------------------------------------


async def get_batch(session: AsyncSession, tenant: Tenant, batch_id: str) -> ReferralBatch:
    query = owned_row(ReferralBatch, batch_id, tenant).execution_options(populate_existing=True)
    batch = (await session.scalars(query)).one_or_none()
    if batch is None:
        raise NotFound("No such batch.")
    return batch


async def list_batches(session: AsyncSession, tenant: Tenant, params: PageParams) -> list[ReferralBatch]:
    statement = scoped(select(ReferralBatch), tenant, col(ReferralBatch.partner_id))
    statement = paginate_query(statement, params, col(ReferralBatch.created_at), col(ReferralBatch.id))
    return list((await session.scalars(statement)).all())


def line_cursor(line: int) -> str:
    return f"L{line}"


def _after_line(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not re.fullmatch(r"L\d{1,9}", cursor):
        raise InvalidCursor("The cursor is not one this API returned.")
    return int(cursor[1:])


async def list_results(
    session: AsyncSession, tenant: Tenant, batch_id: str, params: PageParams, outcome: LineOutcome | None = None
) -> list[ReferralBatchResult]:
    """A batch's results in line order, one page (plus one row, to tell whether another page follows)."""
    await get_batch(session, tenant, batch_id)
    statement = select(ReferralBatchResult).where(
        col(ReferralBatchResult.batch_id) == batch_id, col(ReferralBatchResult.line) > _after_line(params.cursor)
    )
    if outcome is not None:
        statement = statement.where(col(ReferralBatchResult.outcome) == outcome)
    rows = await session.scalars(statement.order_by(col(ReferralBatchResult.line)).limit(params.limit + 1))
    return list(rows.all())
