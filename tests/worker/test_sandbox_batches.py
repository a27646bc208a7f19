"""A sandbox partner's batch is processed on the partner's test clock (DESIGN.md, "Time"): its referrals are
received, and their windows start, at the clock's instant, whatever the real time of the worker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.core import clock
from app.referrals.batches import intake
from app.worker.runner import PassReport, Worker
from tests.factories.referrals import individual, national_id
from tests.worker.conftest import Scratch, make_desk


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "INLINE_LIMIT", 2)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 3)


async def test_a_clocked_partners_batch_is_processed_on_its_clock(scratch: Scratch) -> None:
    desk = await make_desk(scratch, "沙箱批量银行")
    frozen_at = (clock.now() + timedelta(days=40)).replace(microsecond=0)
    moved = await scratch.client.post(
        "/v1/sandbox/clock/advance", json={"to": frozen_at.isoformat()}, headers=desk.headers
    )
    assert moved.status_code == 200, moved.text
    lines = "".join(
        json.dumps(individual(desk.program_id, national_id=national_id()), ensure_ascii=False) + "\n" for _ in range(5)
    )
    uploaded = await scratch.client.post(
        "/v1/referral-batches",
        content=lines.encode(),
        headers={**desk.with_key(), "Content-Type": "application/x-ndjson"},
    )
    assert uploaded.status_code == 202, uploaded.text
    worker = Worker(scratch.database, scratch.settings)
    try:
        await worker.process_batches(PassReport())
    finally:
        await worker.http.aclose()
    async with scratch.database.sessionmaker() as session:
        rows = (
            await session.execute(
                text("SELECT created_at, window_ends_at FROM referrals WHERE partner_id = :p"), {"p": desk.partner_id}
            )
        ).all()
    assert len(rows) == 5
    assert {tuple(row) for row in rows} == {(frozen_at, frozen_at + timedelta(days=90))}
