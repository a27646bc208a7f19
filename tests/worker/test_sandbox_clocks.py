"""Sandbox test clocks with committed transactions (DESIGN.md, "Time"): a partner's batch is processed on the
partner's test clock (its referrals are received, and their windows start, at the clock's instant, whatever the
worker's real time), and concurrent advances of one partner serialise on its clock."""

from __future__ import annotations

import asyncio
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


async def test_concurrent_advances_of_one_partner_wait_for_each_other_and_run_no_job_twice(scratch: Scratch) -> None:
    desk = await make_desk(scratch, "并发沙箱银行")
    frozen_at = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    advance = "/v1/sandbox/clock/advance"
    assert (
        await scratch.client.post(advance, json={"to": frozen_at.isoformat()}, headers=desk.headers)
    ).status_code == 200
    created = await scratch.client.post(
        "/v1/referrals", json=individual(desk.program_id, national_id=national_id()), headers=desk.with_key()
    )
    assert created.status_code == 201, created.text

    answers = await asyncio.gather(
        *(scratch.client.post(advance, json={"by_days": 50}, headers=desk.headers) for _ in range(2))
    )
    assert [answer.status_code for answer in answers] == [200, 200]
    starts = sorted(answer.json()["previous_now"] for answer in answers)
    ends = sorted(answer.json()["clock"]["now"] for answer in answers)
    assert starts[1] == ends[0]  # the second started where the first ended
    expiries = [run for answer in answers for run in answer.json()["jobs"] if run["job"] == "expire_referrals"]
    assert [(run["at"], run["rows"]) for run in expiries] == [
        ((frozen_at + timedelta(days=90)).isoformat().replace("+00:00", "Z"), 1)
    ]
    clock_now = await scratch.client.get("/v1/sandbox/clock", headers=desk.headers)
    assert clock_now.json()["now"] == (frozen_at + timedelta(days=100)).isoformat().replace("+00:00", "Z")
    async with scratch.database.sessionmaker() as session:
        events = await session.scalar(
            text("SELECT count(*) FROM referral_events WHERE partner_id = :p AND to_status = 'expired'"),
            {"p": desk.partner_id},
        )
    assert events == 1
