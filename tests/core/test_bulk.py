"""Set-based inserts: a few rows as arrays, many through a temporary table; the same outcome either way."""

from __future__ import annotations

import os
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.bulk import COPY_FROM, _staging_name, insert_rows
from app.referrals.models import ExistingClient

CLIENTS = ExistingClient.__table__  # type: ignore[attr-defined]
COLUMNS = ("identity_hash", "opened_on", "updated_at")


@pytest.mark.parametrize("count", [3, COPY_FROM, COPY_FROM * 3])
async def test_rows_are_inserted_once_and_conflicts_skipped(session: AsyncSession, count: int) -> None:
    hashes = [os.urandom(32) for _ in range(count)]
    now = await session.scalar(text("SELECT now()"))
    rows = [(identity, date(2020, 1, 1), now) for identity in hashes]
    first = await insert_rows(session, CLIENTS, COLUMNS, rows, on_conflict_do_nothing=True, returning=["identity_hash"])
    assert [row[0] for row in first] == hashes  # in the rows' order
    again = [*rows[: count // 2], (os.urandom(32), date(2021, 2, 2), now)]
    second = await insert_rows(session, CLIENTS, COLUMNS, again, on_conflict_do_nothing=True, returning=["opened_on"])
    assert second == [(date(2021, 2, 2),)]  # only the new row: the others conflicted
    stored = await session.scalar(
        text("SELECT count(*) FROM existing_clients WHERE identity_hash = ANY(:hashes)"), {"hashes": hashes}
    )
    assert stored == count
    if len(again) >= COPY_FROM:  # the move emptied the staging table
        staging = _staging_name(CLIENTS, COLUMNS)
        assert await session.scalar(text(f"SELECT count(*) FROM pg_temp.{staging}")) == 0
