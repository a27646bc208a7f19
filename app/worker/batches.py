"""Processing one referral batch: its staged chunks, each claimed, validated, encrypted and attributed in a
transaction of its own.

A chunk is claimed by locking its staged row (``FOR UPDATE SKIP LOCKED``) and is deleted by the transaction that
attributes it: any number of workers, and ``LANES`` lanes in each, work on the same batch without ever taking the
same chunk, and a worker that dies mid-chunk leaves that chunk staged, unlocked, for the next one. While one lane
waits for the database, another validates and encrypts, so that Python and PostgreSQL work at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy import text

from app.core import business_time, clock
from app.core.database import CUSTOM_PLANS, Database
from app.privacy.service import DataKeyring
from app.referrals.batches import processing
from app.referrals.batches.models import BatchStatus, ReferralBatch
from app.sandbox.clocks import partner_clock

log = structlog.get_logger("alliance.worker")

LANES = 2  # chunks of one batch in progress at once in this process, each in its own transaction


async def process_batch(
    database: Database,
    keyring: DataKeyring,
    batch_id: str,
    *,
    stop: asyncio.Event | None = None,
    sandbox: bool = False,
) -> bool:
    """Process the batch's chunks until none is left to claim; False when this run processed none. ``stop`` ends
    the run between chunks. When a chunk fails, the other lanes finish the chunk they hold, then the error is
    raised. In a ``sandbox``, the batch's partner's test clock (if it has one) is the time of its rules."""
    async with database.sessionmaker() as session:
        batch = await session.get(ReferralBatch, batch_id)
        partner_time = await partner_clock(session, batch.partner_id) if sandbox and batch is not None else None
    if batch is None or batch.status not in (BatchStatus.pending, BatchStatus.processing):
        return False
    stop, halt = stop or asyncio.Event(), asyncio.Event()
    with clock.scoped(partner_time) if partner_time is not None else contextlib.nullcontext():
        outcomes = await asyncio.gather(
            *(_lane(database, keyring, batch, stop, halt) for _ in range(LANES)),
            return_exceptions=True,
        )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return any(outcomes)


async def _lane(
    database: Database, keyring: DataKeyring, batch: ReferralBatch, stop: asyncio.Event, halt: asyncio.Event
) -> int:
    """Claim and process chunks one after the other; returns how many."""
    processed = 0
    while not stop.is_set() and not halt.is_set():
        today = business_time.today()
        async with database.sessionmaker() as session, session.begin():
            try:
                await session.execute(text(CUSTOM_PLANS))  # the chunk's lookups, see CUSTOM_PLANS
                cipher = await keyring.cipher(session)
                lines = await processing.next_staged_chunk(session, batch.id, 0, cipher)
                # Checked again once claimed: a chunk that failed in another lane is unlocked by its rollback,
                # which comes after the halt, and must wait for the next run.
                if lines is None or stop.is_set() or halt.is_set():
                    return processed
                prepared = await processing.prepare_chunk(session, batch, lines, cipher, keyring.index, today)
                if await processing.apply_chunk(session, batch, prepared, clock.now()):
                    log.info("batch_completed", batch_id=batch.id)
            except BaseException:
                halt.set()  # before the rollback releases the chunk
                raise
        processed += 1
    return processed
