"""A real ``alliance worker`` process killed (SIGKILL) in the middle of a batch, inside a chunk's transaction: the
chunks it committed stay, the chunk in flight vanishes whole, and the next worker finishes the batch with one
result and at most one referral per line.

The kill must land at a known point, so the test steers the worker with table locks on
``referral_batch_results``, which a chunk writes after it has attributed (written) its referrals. The worker
works ``LANES`` chunks side by side: a first lock holds the first ones; a second lock, queued behind
them, takes over as soon as they commit and so holds the next ones. PostgreSQL grants conflicting lock requests in
the order they queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.referrals.batches import intake
from app.worker.batches import LANES
from tests.conftest import _asyncpg_dsn, eventually
from tests.worker.conftest import Scratch, make_desk
from tests.worker.test_batches import _assert_exactly_once, _lines, _state, _upload

CHUNK = 3
LINES = 2 * LANES * CHUNK - 1  # LANES chunks committed, LANES in flight when the worker dies (the last one short)
WAIT_S = 60.0


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Staging happens at the upload, in this process: the worker subprocess takes the chunks as they were staged.
    monkeypatch.setattr(intake, "INLINE_LIMIT", 2)
    monkeypatch.setattr(intake, "STAGE_CHUNK", CHUNK)


def _worker(database_url: str, *args: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env |= {"DATABASE_URL": database_url, "ALLIANCE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "worker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@asynccontextmanager
async def _connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_worker_killed_inside_a_chunk_loses_nothing_and_doubles_nothing(scratch: Scratch) -> None:
    desk = await make_desk(scratch, "断电批量银行")
    batch = await _upload(scratch, desk, _lines(desk, LINES))
    database = make_url(scratch.url).database

    async def chunk_writers_waiting() -> list[int] | None:
        """The backends of the chunk transactions waiting for ``referral_batch_results``, once all are waiting."""
        pids = await monitor.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' "
            "AND query ILIKE '%referral_batch_results%' AND pid <> ALL($2::int[])",
            database,
            [first.get_server_pid(), second.get_server_pid()],
        )
        return [int(row["pid"]) for row in pids] if len(pids) == LANES else None

    async def lock_queued(connection: asyncpg.Connection) -> bool:
        return bool(
            await monitor.fetchval(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)", connection.get_server_pid()
            )
        )

    async with (
        _connection(scratch.url) as monitor,
        _connection(scratch.url) as first,
        _connection(scratch.url) as second,
    ):
        first_lock = first.transaction()
        await first_lock.start()
        await first.execute("LOCK TABLE referral_batch_results IN EXCLUSIVE MODE")
        worker = _worker(scratch.url, "--poll-interval", "0.2")
        try:
            await eventually(chunk_writers_waiting, "the first chunks to wait")
            # The second lock queues behind the waiting chunks: granted when they commit, before the next ones.
            second_lock = second.transaction()
            await second_lock.start()
            queued = asyncio.create_task(second.execute("LOCK TABLE referral_batch_results IN EXCLUSIVE MODE"))
            await eventually(lambda: lock_queued(second), "the second lock to queue")
            await first_lock.rollback()
            await asyncio.wait_for(queued, WAIT_S)
            in_flight = await eventually(chunk_writers_waiting, "the next chunks to wait")
            assert isinstance(in_flight, list)

            mid = await _state(scratch, batch["id"])
            committed = LANES * CHUNK
            assert mid["batch"]["processed"] == committed and len(mid["results"]) == committed, "chunks committed"
            assert mid["referrals"], "the first chunks made referrals"
            writing = await monitor.fetchval(
                "SELECT bool_and(EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = p AND c.relname = 'referrals' AND l.mode = 'RowExclusiveLock' AND l.granted)) "
                "FROM unnest($1::int[]) AS p",
                in_flight,
            )
            assert writing, "the chunks in flight have written their referrals (uncommitted) when the worker dies"
        finally:
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 30)
        assert worker.returncode == -signal.SIGKILL
        await second_lock.rollback()  # the dead worker's backend goes on, finds its client gone, and rolls back

        async def gone() -> bool:
            return not await monitor.fetchval(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = ANY($1::int[]))", in_flight
            )

        await eventually(gone, "the dead worker's transactions to end")

    after_kill = await _state(scratch, batch["id"])
    assert after_kill["batch"]["processed"] == committed and len(after_kill["results"]) == committed, "chunks vanished"
    assert after_kill["referrals"] == mid["referrals"]

    resumed = _worker(scratch.url, "--once")
    _, stderr = await asyncio.to_thread(resumed.communicate, None, 120)
    assert resumed.returncode == 0, stderr
    _assert_exactly_once(await _state(scratch, batch["id"]), LINES)
