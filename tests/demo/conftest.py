"""The demo alliance loaded once into a scratch database of its own (loading commits), then loaded again: what
``make run`` does on its first and its next start. The first load is the run's demo template's (``tests.conftest``),
into a fresh migrated database; the module works on a copy of it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.demo import load_demo
from app.main import create_app
from tests.conftest import DemoTemplate, _asyncpg_dsn, demo_database_copy


@dataclass
class LoadedDemo:
    url: str
    settings: Settings
    app: FastAPI
    database: Database
    secrets: dict[str, str]
    first_load_s: float
    second_load_s: float
    rows_after_first: dict[str, int]
    rows_after_second: dict[str, int]
    second_credentials: list[dict[str, str | None]]

    async def token(self, client_id: str) -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://demo") as http:
            answer = await http.post(
                "/oauth/token",
                auth=(client_id, self.secrets[client_id]),
                data={"grant_type": "client_credentials"},
            )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    async def get(self, client_id: str, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.token(client_id)}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://demo") as http:
            return await http.get(path, params=params, headers=headers)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(**_asyncpg_dsn(self.url))  # type: ignore[arg-type]
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()


async def row_counts(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        return {
            row["tablename"]: int(await connection.fetchval(f'SELECT count(*) FROM "{row["tablename"]}"'))
            for row in tables
        }
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def demo_database(server_url: str, settings: Settings) -> AsyncIterator[tuple[str, DemoTemplate]]:
    """A copy of the run's demo template: the demo loaded once into a fresh migrated database (``load_demo``)."""
    async with demo_database_copy(server_url, settings, "alliance_demo_history") as copy:
        yield copy


@pytest.fixture(scope="module")
async def demo(demo_database: tuple[str, DemoTemplate], settings: Settings) -> AsyncIterator[LoadedDemo]:
    url, template = demo_database
    if True:
        scratch = settings.model_copy(update={"database_url": url})
        # The first load is the template's: into a fresh migrated database, with these settings.
        credentials, first = template.credentials, template.load_s
        after_first = await row_counts(url)
        started = time.perf_counter()
        again = await load_demo(url, scratch)
        second = time.perf_counter() - started
        after_second = await row_counts(url)
        # Reported, not asserted: speed depends on the machine (README: the first start, measured).
        print(f"\ndemo history: first load {first:.1f} s, second load {second:.2f} s")
        database = Database(create_engine(url, scratch))
        secrets = {str(item["client_id"]): str(item["client_secret"]) for item in credentials}
        yield LoadedDemo(
            url,
            scratch,
            create_app(scratch, database),
            database,
            secrets,
            first,
            second,
            after_first,
            after_second,
            again,
        )
        await database.dispose()
