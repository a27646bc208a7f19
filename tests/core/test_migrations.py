from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.migrations import downgrade_to_base, head_revisions, upgrade_to_head
from app.tables import metadata
from tests.conftest import create_scratch_database, drop_scratch_database


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), metadata)
        )
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        applied = {row[0] for row in await connection.execute(text("SELECT version_num FROM alembic_version"))}
    assert applied == head_revisions()
    assert len(head_revisions()) == 1, "migrations have branched: merge the heads"


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    name = f"alliance_scratch_{uuid.uuid4().hex[:10]}"
    url = create_scratch_database(server_url, name)
    yield url
    drop_scratch_database(server_url, name)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def test_downgrade_to_base_then_upgrade_to_head(scratch_url: str) -> None:
    import asyncio

    upgrade_to_head(scratch_url)
    expected = set(metadata.tables) | {"alembic_version"}
    assert asyncio.run(_tables(scratch_url)) == expected
    downgrade_to_base(scratch_url)
    assert asyncio.run(_tables(scratch_url)) <= {"alembic_version"}
    upgrade_to_head(scratch_url)
    assert asyncio.run(_tables(scratch_url)) == expected
