from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.idempotency import IdempotencyKeyReused, IdempotencyRecord, claim
from app.core.models import utcnow


async def test_claim_replay_reuse_and_expiry(session: AsyncSession) -> None:
    first = await claim(session, "cli_a", "k-1", "hash-1")
    assert first.replay is None
    await first.remember(201, {"id": "x"})
    replay = await claim(session, "cli_a", "k-1", "hash-1")
    assert replay.replay is not None and replay.replay.status_code == 201
    with pytest.raises(IdempotencyKeyReused):
        await claim(session, "cli_a", "k-1", "hash-2")
    assert (await claim(session, "cli_b", "k-1", "hash-2")).replay is None  # keys are per client
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.key == "k-1")
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    reclaimed = await claim(session, "cli_a", "k-1", "hash-2")
    assert reclaimed.replay is None and reclaimed.key == "k-1"


async def test_no_key_means_no_record(session: AsyncSession) -> None:
    call = await claim(session, "cli_a", None, "hash")
    assert call.replay is None
    response = await call.remember(200, {"ok": True})
    assert response.status_code == 200
