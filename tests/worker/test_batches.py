"""The worker processes staged batches exactly once: chunk by chunk, resuming after a crash, workers sharing a batch."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.referrals.attribution import attribute
from app.referrals.batches import intake, processing
from app.worker.runner import Worker
from tests.referrals.conftest import individual, national_id
from tests.worker.conftest import Desk, Scratch, make_desk

BATCHES = "/v1/referral-batches"
CREATED = ("eligible", "existing_client", "duplicate")


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "INLINE_LIMIT", 2)
    monkeypatch.setattr(intake, "STAGE_CHUNK", 3)


def _person() -> str:
    """A national ID number unlikely to repeat across the module's tests (the database is shared)."""
    return national_id(born=date(1960, 1, 1) + timedelta(days=random.randrange(15_000)))


def _lines(desk: Desk, count: int) -> list[dict[str, Any] | str]:
    """``count`` lines: mostly new people, one person twice, one invalid line."""
    lines: list[dict[str, Any] | str] = [individual(desk.program_id, national_id=_person()) for _ in range(count - 3)]
    twice = _person()
    lines += [individual(desk.program_id, national_id=twice), individual(desk.program_id, national_id=twice)]
    lines.insert(2, '{"program_id": "nope"}')
    return lines


async def _upload(scratch: Scratch, desk: Desk, lines: list[dict[str, Any] | str]) -> dict[str, Any]:
    content = "".join(
        (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
    )
    response = await scratch.client.post(
        BATCHES, content=content.encode(), headers={**desk.with_key(), "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return dict(response.json())


async def _state(scratch: Scratch, batch_id: str) -> dict[str, Any]:
    async with scratch.database.sessionmaker() as session:
        row = (await session.execute(text("SELECT * FROM referral_batches WHERE id = :id"), {"id": batch_id})).one()
        results = (
            await session.execute(
                text(
                    "SELECT line, outcome, referral_id FROM referral_batch_results WHERE batch_id = :id ORDER BY line"
                ),
                {"id": batch_id},
            )
        ).all()
        referrals = (
            await session.scalars(text("SELECT id FROM referrals WHERE batch_id = :id"), {"id": batch_id})
        ).all()
        staged = await session.scalar(
            text("SELECT coalesce(sum(lines), 0) FROM referral_batch_chunks WHERE batch_id = :id"), {"id": batch_id}
        )
    return {"batch": row._mapping, "results": results, "referrals": set(referrals), "staged": staged}


def _assert_exactly_once(state: dict[str, Any], lines: int) -> None:
    results = state["results"]
    assert len(results) == len({result.line for result in results}) == lines
    created = [result.referral_id for result in results if result.outcome in CREATED]
    assert set(created) == state["referrals"] and len(created) == len(state["referrals"]), "one referral per line"
    batch = state["batch"]
    assert batch["status"] == "completed" and batch["processed"] == lines and state["staged"] == 0
    outcomes = ("eligible", "existing_client", "duplicate", "returned_existing")
    assert sum(batch[outcome] for outcome in outcomes) + batch["errors"] == lines


async def test_worker_processes_a_staged_batch(scratch: Scratch) -> None:
    desk = await make_desk(scratch)
    batch = await _upload(scratch, desk, _lines(desk, 10))
    worker = Worker(scratch.database, scratch.settings)
    report = await worker.run_once()
    assert report.batches >= 1 and report.failures == 0
    assert set(report.jobs) == {"expire_referrals", "erase_unconverted", "release_held_fees", "risk_signals"}
    state = await _state(scratch, batch["id"])
    _assert_exactly_once(state, 10)
    assert state["batch"]["eligible"] == 8 and state["batch"]["returned_existing"] == 1
    assert state["batch"]["errors"] == 1
    progress = await scratch.client.get(f"{BATCHES}/{batch['id']}", headers=desk.headers)
    assert progress.json()["status"] == "completed"


async def test_a_crash_mid_batch_resumes_without_losses_or_duplicates(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = await make_desk(scratch)
    batch = await _upload(scratch, desk, _lines(desk, 11))
    calls = 0
    crashed: set[int] = set()

    async def crash_in_the_second_chunk(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        call = calls  # chunks are attributed side by side: count before awaiting
        outcomes = await attribute(*args, **kwargs)  # the referrals are written, in the chunk's transaction
        if call == 2:
            crashed.update(candidate.line for candidate in args[2])
            raise RuntimeError("simulated crash")
        return outcomes

    monkeypatch.setattr(processing, "attribute", crash_in_the_second_chunk)
    first = await Worker(scratch.database, scratch.settings).run_once()
    assert first.failures == 1
    state = await _state(scratch, batch["id"])
    assert state["batch"]["status"] == "processing" and state["batch"]["attempts"] == 1
    processed = state["batch"]["processed"]
    # The crashed chunk rolled back whole; the chunks before it, or beside it, committed whole.
    assert 0 < processed < 11 and processed + state["staged"] == 11
    assert len(state["results"]) == processed and crashed and not crashed & {r.line for r in state["results"]}
    created = {r.referral_id for r in state["results"] if r.outcome in CREATED}
    assert state["referrals"] == created

    monkeypatch.setattr(processing, "attribute", attribute)
    second = await Worker(scratch.database, scratch.settings).run_once()
    assert second.failures == 0
    _assert_exactly_once(await _state(scratch, batch["id"]), 11)


async def test_workers_sharing_batches_never_process_a_chunk_twice(scratch: Scratch) -> None:
    desk = await make_desk(scratch)
    uploaded = [await _upload(scratch, desk, _lines(desk, 12)) for _ in range(2)]
    workers = [Worker(scratch.database, scratch.settings) for _ in range(3)]
    reports = await asyncio.gather(*(worker.run_once() for worker in workers))
    assert sum(report.failures for report in reports) == 0
    for batch in uploaded:
        _assert_exactly_once(await _state(scratch, batch["id"]), 12)


async def test_a_batch_that_keeps_failing_is_marked_failed(scratch: Scratch, monkeypatch: pytest.MonkeyPatch) -> None:
    desk = await make_desk(scratch)
    batch = await _upload(scratch, desk, _lines(desk, 5))

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(processing, "attribute", broken)
    for _ in range(processing.MAX_ATTEMPTS):
        await Worker(scratch.database, scratch.settings).run_once()
    state = await _state(scratch, batch["id"])
    assert state["batch"]["status"] == "failed" and state["batch"]["attempts"] == processing.MAX_ATTEMPTS
    assert state["staged"] == 5  # until the retention job discards them


def _alliance(*args: str, database_url: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env |= {"DATABASE_URL": database_url, "ALLIANCE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_the_worker_command_once(scratch: Scratch) -> None:
    desk = await make_desk(scratch)
    batch = await _upload(scratch, desk, _lines(desk, 6))
    process = _alliance("worker", "--once", database_url=scratch.url)
    stdout, stderr = await asyncio.to_thread(process.communicate, timeout=120)
    assert process.returncode == 0, stderr
    assert "batches processed:" in stdout and "expire_referrals" in stdout
    _assert_exactly_once(await _state(scratch, batch["id"]), 6)


async def test_the_worker_stops_gracefully_on_sigterm(scratch: Scratch) -> None:
    process = _alliance("worker", "--poll-interval", "0.2", database_url=scratch.url)
    assert process.stdout is not None
    first_line = await asyncio.to_thread(process.stdout.readline)
    assert first_line.startswith("worker on database")
    await asyncio.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr
