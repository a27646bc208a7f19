"""A batch upload holds no database connection while the client sends its file: a slow client (or many) never
keeps one from the pool. On a scratch database of its own, with a pool of one connection and a short wait for it,
so that a connection held by the upload would starve the other request at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.conftest import _asyncpg_dsn
from tests.referrals.conftest import individual
from tests.worker.conftest import open_desk

BATCHES = "/v1/referral-batches"
PIECES = 4
PAUSE_S = 0.3


async def _app_transactions(observer: asyncpg.Connection) -> list[str]:
    """The states of the app's backends that are inside a transaction (idle in it, or running a statement)."""
    rows = await observer.fetch(
        "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'alliance' "
        "AND (state LIKE 'idle in transaction%' OR state = 'active')"
    )
    return [row["state"] for row in rows]


async def test_no_connection_is_held_while_a_client_streams_its_file(worker_database: str, settings: Settings) -> None:
    one_connection = settings.model_copy(
        update={"database_url": worker_database, "db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 1.5}
    )
    database = Database(create_engine(worker_database, one_connection))
    app = create_app(one_connection, database)
    observer = await asyncpg.connect(**_asyncpg_dsn(worker_database), server_settings={"application_name": "observer"})  # type: ignore[arg-type]
    assert isinstance(database.bind, AsyncEngine)
    pool: Any = database.bind.pool  # a queue pool: checkedout() counts the connections in use
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            desk = await open_desk(database, one_connection, app.state.keyring, "慢速银行")
            lines = [json.dumps(individual(desk.program_id), ensure_ascii=False) + "\n" for _ in range(PIECES)]
            seen: list[tuple[int, list[str], int]] = []

            async def slow_client() -> AsyncIterator[bytes]:
                for line in lines:
                    yield line.encode()
                    # The service has read the piece before: it authenticated the caller and is receiving.
                    await asyncio.sleep(PAUSE_S)
                    meanwhile = await client.get(BATCHES, headers=desk.headers)
                    seen.append((pool.checkedout(), await _app_transactions(observer), meanwhile.status_code))

            response = await client.post(
                BATCHES, content=slow_client(), headers={**desk.with_key(), "Content-Type": "application/x-ndjson"}
            )
            assert response.status_code == 202, response.text
            assert response.json()["counts"]["eligible"] == PIECES
            # While the client was sending: no connection checked out, no transaction open, the pool served others.
            assert seen == [(0, [], 200)] * PIECES
            assert pool.checkedout() == 0
    finally:
        await observer.close()
        await database.dispose()
