"""Receiving a batch: a spooled upload (``files``: no database connection is held while it streams in) staged
encrypted in chunks in one transaction, idempotently per key and content; small batches processed at once."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.models import PartnerStatus
from app.catalog.service import get_partner
from app.core import clock
from app.core.business_time import business_day
from app.core.idempotency import IdempotencyKeyReused
from app.core.models import new_id
from app.core.problems import NotFound
from app.privacy.crypto import BlindIndex, DataCipher
from app.referrals.batches.files import (
    BatchFile,
    BatchFormat,
    DataLine,
    EmptyBatch,
    Spool,
)
from app.referrals.batches.models import (
    BatchStatus,
    ReferralBatch,
    ReferralBatchChunk,
    chunk_purpose,
)
from app.referrals.batches.processing import apply_chunk, prepare_chunk
from app.referrals.service import ProgramNotAvailable

STAGE_CHUNK = 2_000  # lines per staged chunk, which is also the unit attributed per transaction
INLINE_LIMIT = 500  # batches up to this size are processed in the request itself


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
        prepared = await prepare_chunk(session, batch, last, cipher, index, business_day(clock.now()))
        await apply_chunk(session, batch, prepared, clock.now(), staged=False)
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


async def _stage(session: AsyncSession, batch_id: str, lines: list[DataLine], cipher: DataCipher) -> None:
    first_line = lines[0][0]
    payload = cipher.encrypt(json.dumps(lines, ensure_ascii=False), chunk_purpose(batch_id, first_line))
    await session.execute(
        insert(ReferralBatchChunk).values(batch_id=batch_id, first_line=first_line, lines=len(lines), payload=payload)
    )


async def _get(session: AsyncSession, batch_id: str) -> ReferralBatch:
    batch = await session.get(ReferralBatch, batch_id, populate_existing=True)
    if batch is None:
        raise NotFound("No such batch.")
    return batch
