"""``alliance finance close-period`` leaves out the lines of a referral under a risk review, as the API's close does,
and says so: how many lines, how much, how many partners. The command runs as operators run it, on a database of
its own whose rows this test committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.core.config import Settings
from app.core.database import create_engine
from app.fees.models import Statement
from tests.conftest import migrated_scratch_database
from tests.core.test_cli import alliance
from tests.fees.conftest import START, Ledger
from tests.risk.reviewed import funded, lines_of, review


@pytest.fixture(scope="module")
def cli_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_cli_close") as url:
        yield url


@pytest.fixture
async def connection(cli_database: str, settings: Settings) -> AsyncIterator[AsyncConnection]:
    """The test's connection on the command's database: what the test commits there, the command reads."""
    engine = create_engine(cli_database, settings.model_copy(update={"database_url": cli_database}))
    async with engine.connect() as connection:
        await connection.begin()
        yield connection
        if connection.in_transaction():
            await connection.rollback()
    await engine.dispose()


async def test_the_cli_close_names_the_lines_it_left_out_under_review(
    make_ledger: Any, session: AsyncSession, connection: AsyncConnection, cli_database: str
) -> None:
    ledger: Ledger = await make_ledger()
    reviewed, other = await funded(ledger, "C-CLI-1"), await funded(ledger, "C-CLI-2")
    await review(session, ledger.partner_id, reviewed, f"cli-review:{reviewed}", START + timedelta(days=1))
    held = await lines_of(session, reviewed)
    assert held
    await session.commit()
    await connection.commit()

    result = await asyncio.to_thread(alliance, "finance", "close-period", "2026-02", database_url=cli_database)

    assert result.returncode == 0, result.stderr
    amount = sum(line.amount_fen for line in held)
    assert f"under review, left out: {len(held)} line(s), {amount} fen, 1 partner(s)" in result.stdout, result.stdout
    assert amount > 0
    assert all(line.statement_id is None for line in await lines_of(session, reviewed))
    on_it = await lines_of(session, other)
    [statement] = (
        await session.scalars(
            select(Statement)
            .where(col(Statement.partner_id) == ledger.partner_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert {line.statement_id for line in on_it} == {statement.id}
    assert statement.line_count == len(on_it) and statement.id in result.stdout
