from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app


async def _client_for(settings: Settings, database: Database) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, database))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_database_is_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "migrations": "head"}


async def test_readyz_is_503_when_migrations_are_behind(client: httpx.AsyncClient, connection: AsyncConnection) -> None:
    await connection.execute(text("UPDATE alembic_version SET version_num = 'not-the-head'"))
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert "alliance migrate" in response.json()["detail"]


async def test_readyz_is_503_when_database_refuses_connections(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    down = settings.model_copy(update={"database_url": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port}/none"})
    database = Database(create_engine(down.database_url or "", down))
    async with await _client_for(down, database) as client:
        response = await client.get("/readyz")
    await database.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers: a hung database."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    server.close()


async def test_readyz_answers_503_quickly_when_database_hangs(settings: Settings, silent_server: int) -> None:
    hung = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://nobody@127.0.0.1:{silent_server}/none",
            "readiness_timeout_s": 1.0,
            "db_connect_timeout_s": 30.0,
        }
    )
    database = Database(create_engine(hung.database_url or "", hung))
    started = time.monotonic()
    async with await _client_for(hung, database) as client:
        response = await client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 5
