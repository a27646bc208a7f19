"""Processing a batch: each staged chunk decrypted, validated and attributed through the same code path as a
single submission, in one transaction that deletes the chunk, writes one result per line and bumps the counters."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.models import PartnerStatus, Program
from app.catalog.service import get_partner
from app.core.bulk import copy_records
from app.core.database import CUSTOM_PLANS
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals.attribution import Candidate, Outcome, attribute
from app.referrals.batches.errors import BatchClosed
from app.referrals.batches.files import (
    DataLine,
)
from app.referrals.batches.lines import RESULT_COLUMNS, LineResult, line_error, parse_line
from app.referrals.batches.models import (
    OPEN_SQL,
    BatchStatus,
    LineOutcome,
    ReferralBatch,
    ReferralBatchChunk,
    chunk_purpose,
)
from app.referrals.batches.well_formed import Bounds
from app.referrals.service import PlainReferral, encrypted_candidate, open_programs, sealed_candidate

_OUTCOME = RESULT_COLUMNS.index("outcome")
PREPARE_SLICE = 100  # lines validated and encrypted between two yields to the event loop
MAX_ATTEMPTS = 5  # failed processing runs before a batch is marked failed


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
    pairs = json.loads(cipher.decrypt(row.payload, chunk_purpose(batch_id, row.first_line)))
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
    # Read once, not per line: attributes of ORM objects cost an instrumented lookup each time.
    batch_format, columns = batch.format, batch.columns
    windows = {program.id: program.attribution_window_days for program in (programs or {}).values()}
    bounds = Bounds.now()
    for number, record in lines:
        parsed = parse_line(batch_format, columns, number, record, bounds)
        if isinstance(parsed, LineResult):
            prepared.results.append(parsed)
        elif programs is None:
            prepared.results.append(line_error(number, parsed.external_ref, None, "The partner is not active."))
        elif (window := windows.get(parsed.program_id)) is None:
            message = "No active program with this id accepts your referrals."
            prepared.results.append(line_error(number, parsed.external_ref, "program_id", message))
        else:
            if isinstance(parsed, PlainReferral):
                candidate = sealed_candidate(number, parsed, window, cipher, index, today)
            else:
                candidate = encrypted_candidate(number, parsed, parsed.program_id, window, cipher, index, today)
            prepared.candidates.append(candidate)
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


def _record(batch_id: str, outcome: Outcome, external_ref: str) -> tuple[Any, ...]:
    """The result row of an attributed line (``LineResult.record``'s columns), made at once: no result object for
    each of a chunk's thousands of lines."""
    if outcome.referral_id is None:
        return line_error(outcome.line, external_ref, outcome.error_field, outcome.error or "refused").record(batch_id)
    assert outcome.status is not None
    kind = LineOutcome(outcome.status.value) if outcome.created else LineOutcome.returned_existing
    return (batch_id, outcome.line, kind.value, external_ref, outcome.referral_id, outcome.status.value, None)


async def apply_chunk(
    session: AsyncSession, batch: ReferralBatch, prepared: PreparedChunk, now: datetime, *, staged: bool = True
) -> bool:
    """Attribute a prepared chunk, write its results, drop its staged lines and count: the caller's transaction
    makes all of it one. Lines no longer staged (processed by an earlier run) are skipped. Returns True when the
    batch is complete.

    Chunks of one batch may be applied side by side: the batch row is locked only by the closing update of the
    counters, so their transactions wait for each other only at the very end."""
    await session.execute(text(CUSTOM_PLANS))  # the lookups of what the partner sent before (see CUSTOM_PLANS)
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
    external_refs = prepared.external_refs
    records = [result.record(batch.id) for result in results]
    records += [_record(batch.id, outcome, external_refs[outcome.line]) for outcome in outcomes]
    await copy_records(session, "referral_batch_results", RESULT_COLUMNS, records)
    counts = Counter(record[_OUTCOME] for record in records)
    done = await session.scalar(
        update(ReferralBatch)
        .where(col(ReferralBatch.id) == batch.id, sa.text(OPEN_SQL))
        .values(
            processed=col(ReferralBatch.processed) + len(records),
            eligible=col(ReferralBatch.eligible) + counts[LineOutcome.eligible],
            existing_client=col(ReferralBatch.existing_client) + counts[LineOutcome.existing_client],
            duplicate=col(ReferralBatch.duplicate) + counts[LineOutcome.duplicate],
            returned_existing=col(ReferralBatch.returned_existing) + counts[LineOutcome.returned_existing],
            errors=col(ReferralBatch.errors) + counts[LineOutcome.error],
            status=sa.case(
                (col(ReferralBatch.processed) + len(records) >= col(ReferralBatch.total_lines), BatchStatus.completed),
                else_=BatchStatus.processing,
            ),
            completed_at=sa.case(
                (col(ReferralBatch.processed) + len(records) >= col(ReferralBatch.total_lines), now), else_=None
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


async def discard_failed_lines(session: AsyncSession, before: datetime, partners: PartnerFilter = EVERY_PARTNER) -> int:
    """Drop the staged lines (personal data) of batches (of the ``partners``) that failed before ``before``."""
    discarded = await session.scalars(
        text(
            "DELETE FROM referral_batch_chunks USING referral_batches b WHERE b.id = referral_batch_chunks.batch_id "
            "AND b.status = 'failed' AND b.updated_at < :before AND "
            + partners.sql("b.partner_id")
            + " RETURNING referral_batch_chunks.lines"
        ),
        {"before": before, **partners.params},
    )
    return sum(discarded.all())
