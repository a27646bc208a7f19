"""A period close interrupted half-way leaves nothing behind, and the rerun produces one set of statements.

Two interruptions: ``alliance finance close-period`` killed (SIGKILL) after it has inserted the statements and
while it attaches the lines, and a failure raised inside the close's transaction behind the HTTP endpoint. The
close is one transaction, so either way the rerun starts from a clean slate.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.fees import statements
from app.main import create_app
from tests.conftest import _asyncpg_dsn, eventually, migrated_scratch_database
from tests.fees.test_statements_race import _finance_headers
from tests.reconciliation.books import book

ACTOR = Actor.system("test")
PARTNERS, LINES_EACH = 3, 20
PERIOD = "2026-03"
EXPECTED_TOTAL = sum(1_000 + line for line in range(LINES_EACH))


@pytest.fixture
def close_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_closefault") as url:
        yield url


@pytest.fixture
async def ledger(close_database: str, settings: Settings) -> AsyncIterator[tuple[Database, Settings]]:
    """Three partners with twenty payable March lines each."""
    scratch = settings.model_copy(update={"database_url": close_database})
    database = Database(create_engine(close_database, scratch))
    async with database.sessionmaker() as session, session.begin():
        for index in range(PARTNERS):
            partner = await catalog.create_partner(
                session, ACTOR, PartnerCreate(kind="bank", legal_name=f"中断银行{index}")
            )
            for line in range(LINES_EACH):
                await book(session, partner.id, 1_000 + line, ref=f"R-{index}-{line}")
    yield database, scratch
    await database.dispose()


async def _books(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        rows = await connection.fetch(
            "SELECT partner_id, line_count, lines_total_fen, net_fen FROM statements WHERE period = $1", PERIOD
        )
        lines = await connection.fetch("SELECT status::text, count(*) AS n FROM fee_accruals GROUP BY 1")
        attached = await connection.fetchval(
            "SELECT count(*) FROM fee_accruals a JOIN statements s ON s.id = a.statement_id WHERE s.period = $1",
            PERIOD,
        )
    finally:
        await connection.close()
    return {
        "statements": [dict(row) for row in rows],
        "lines": {row["status"]: row["n"] for row in lines},
        "attached": attached,
    }


def _assert_one_set(books: dict[str, Any]) -> None:
    assert len(books["statements"]) == PARTNERS
    assert len({row["partner_id"] for row in books["statements"]}) == PARTNERS
    assert {(row["line_count"], row["lines_total_fen"]) for row in books["statements"]} == {
        (LINES_EACH, EXPECTED_TOTAL)
    }
    assert books["lines"] == {"statemented": PARTNERS * LINES_EACH}
    assert books["attached"] == PARTNERS * LINES_EACH


def _close(url: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env |= {"DATABASE_URL": url, "ALLIANCE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "finance", "close-period", PERIOD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_a_close_killed_mid_way_leaves_nothing_and_the_rerun_makes_one_set(
    close_database: str, ledger: tuple[Database, Settings]
) -> None:
    database_name = make_url(close_database).database
    monitor = await asyncpg.connect(**_asyncpg_dsn(close_database))  # type: ignore[arg-type]
    blocker = await asyncpg.connect(**_asyncpg_dsn(close_database))  # type: ignore[arg-type]
    try:
        # One payable line locked: the close attaches the lines after it has inserted the statements, and waits.
        hold = blocker.transaction()
        await hold.start()
        await blocker.fetchval("SELECT id FROM fee_accruals ORDER BY partner_id DESC, id LIMIT 1 FOR UPDATE")
        close = _close(close_database)
        try:

            async def attaching() -> int | None:
                pid = await monitor.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' "
                    "AND query ILIKE '%statemented%'",
                    database_name,
                )
                return int(pid) if pid else None

            in_flight = await eventually(attaching, "the close to reach the ledger lines")
            wrote_statements = await monitor.fetchval(
                "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = $1 "
                "AND c.relname = 'statements' AND l.mode = 'RowExclusiveLock' AND l.granted)",
                in_flight,
            )
            assert wrote_statements, "the close has inserted its statements (uncommitted) when it dies"
        finally:
            close.send_signal(signal.SIGKILL)
            await asyncio.to_thread(close.communicate, None, 30)
        assert close.returncode == -signal.SIGKILL
        await hold.rollback()

        async def gone() -> bool:
            return not await monitor.fetchval("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)", in_flight)

        await eventually(gone, "the killed close's transaction to end")
    finally:
        await blocker.close()
        await monitor.close()

    interrupted = await _books(close_database)
    assert interrupted["statements"] == [] and interrupted["attached"] == 0
    assert interrupted["lines"] == {"payable": PARTNERS * LINES_EACH}

    rerun = _close(close_database)
    stdout, stderr = await asyncio.to_thread(rerun.communicate, None, 120)
    assert rerun.returncode == 0, stderr
    assert f"{PARTNERS} statement(s) created" in stdout
    _assert_one_set(await _books(close_database))

    again = _close(close_database)
    stdout, stderr = await asyncio.to_thread(again.communicate, None, 120)
    assert again.returncode == 0, stderr
    assert "0 statement(s) created" in stdout and f"{PARTNERS} in the period" in stdout
    _assert_one_set(await _books(close_database))


async def test_a_close_failing_inside_its_transaction_is_rerun_cleanly(
    close_database: str, ledger: tuple[Database, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, settings = ledger
    app = create_app(settings, database)
    calls = 0

    def fails_on_the_second_statement(net_fen: int, rate_bp: int, inclusive: bool) -> tuple[int, int]:
        # Called once per statement, after the statements were inserted and the lines attached.
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("simulated crash in the middle of the close")
        return original(net_fen, rate_bp, inclusive)

    original = statements.vat_and_gross
    monkeypatch.setattr(statements, "vat_and_gross", fails_on_the_second_statement)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        headers = await _finance_headers(client, database)
        failed = await client.post(f"/v1/finance/periods/{PERIOD}/close", headers=headers)
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/problem+json"
        assert "simulated" not in failed.text
        interrupted = await _books(close_database)
        assert interrupted["statements"] == [] and interrupted["lines"] == {"payable": PARTNERS * LINES_EACH}

        monkeypatch.setattr(statements, "vat_and_gross", original)
        rerun = await client.post(f"/v1/finance/periods/{PERIOD}/close", headers=headers)
        assert rerun.status_code == 200, rerun.text
        assert rerun.json()["created_statements"] == PARTNERS
    _assert_one_set(await _books(close_database))
