"""Processing one referral batch: chunk after chunk, each in its own transaction, under the batch's advisory lock.

The lock is a session-level advisory lock held on a connection of its own for the whole run: two workers never
process the same batch, and a worker that dies releases it with its connection. The run is a pipeline: the next
chunk is read, validated and encrypted while up to ``IN_FLIGHT`` chunks are being attributed, each in its own
transaction on its own connection, so that Python and PostgreSQL work at the same time. Each chunk's transaction
deletes its staged chunk, so no chunk is ever applied twice, whatever the order in which they commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.database import Database
from app.core.models import utcnow
from app.privacy.service import DataKeyring
from app.referrals import batches
from app.referrals.batches import BatchStatus, PreparedChunk, ReferralBatch

log = structlog.get_logger("alliance.worker")

LOCK_NAMESPACE = 0x5EFB  # first key of the batches' advisory locks; the second is a hash of the batch id
SLICE = 100  # lines prepared between two yields to the event loop
IN_FLIGHT = 2  # chunks being attributed at the same time, each on its own connection


async def _try_lock(connection: AsyncConnection, batch_id: str) -> bool:
    locked = await connection.scalar(select(func.pg_try_advisory_lock(LOCK_NAMESPACE, func.hashtext(batch_id))))
    await connection.commit()  # a session-level lock outlives the transaction that took it
    return bool(locked)


async def _unlock(connection: AsyncConnection, batch_id: str) -> None:
    await connection.execute(select(func.pg_advisory_unlock(LOCK_NAMESPACE, func.hashtext(batch_id))))
    await connection.commit()


async def process_batch(
    database: Database,
    keyring: DataKeyring,
    batch_id: str,
    *,
    stop: asyncio.Event | None = None,
) -> bool:
    """Process what is left of a batch; False when another worker holds it. ``stop`` ends the run between chunks."""
    assert isinstance(database.bind, AsyncEngine), "the worker needs an engine, not a single connection"
    async with database.bind.connect() as lock_connection:
        if not await _try_lock(lock_connection, batch_id):
            return False
        try:
            await _run(database, keyring, batch_id, stop or asyncio.Event())
        finally:
            with contextlib.suppress(Exception):  # a broken connection releases the lock by itself
                await _unlock(lock_connection, batch_id)
    return True


async def _run(database: Database, keyring: DataKeyring, batch_id: str, stop: asyncio.Event) -> None:
    async with database.sessionmaker() as session:
        batch = await session.get(ReferralBatch, batch_id)
    if batch is None or batch.status not in (BatchStatus.pending, BatchStatus.processing):
        return
    ahead = asyncio.create_task(_prepare(database, keyring, batch, 0))
    applying: set[asyncio.Task[None]] = set()
    try:
        while (prepared := await ahead) is not None and not stop.is_set():
            ahead = asyncio.create_task(_prepare(database, keyring, batch, prepared.last_line))
            if len(applying) >= IN_FLIGHT:
                done, applying = await asyncio.wait(applying, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failed chunk ends the run; the others in flight still commit
            applying.add(asyncio.create_task(_apply(database, batch, prepared)))
    finally:
        ahead.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ahead
        finished = await asyncio.gather(*applying, return_exceptions=True)
    for outcome in finished:
        if isinstance(outcome, BaseException):
            raise outcome


async def _apply(database: Database, batch: ReferralBatch, prepared: PreparedChunk) -> None:
    async with database.sessionmaker() as session, session.begin():
        if await batches.apply_chunk(session, batch, prepared, utcnow()):
            log.info("batch_completed", batch_id=batch.id)


async def _prepare(database: Database, keyring: DataKeyring, batch: ReferralBatch, after: int) -> PreparedChunk | None:
    today = date.today()
    async with database.sessionmaker() as session, session.begin():
        cipher = await keyring.cipher(session)
        lines = await batches.next_staged_chunk(session, batch.id, after, cipher)
        if not lines:
            return None
        programs = await batches.intake_context(session, batch.partner_id, today)
    parts = []
    for start in range(0, len(lines), SLICE):
        parts.append(batches.prepare_lines(batch, lines[start : start + SLICE], programs, cipher, keyring.index, today))
        await asyncio.sleep(0)  # let the chunk in flight reach the database meanwhile
    return PreparedChunk.combine(parts)
