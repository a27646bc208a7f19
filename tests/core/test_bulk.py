"""Set-based inserts: a few rows as arrays, many through a temporary table; the same outcome either way."""

from __future__ import annotations

import os
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.bulk import COPY_FROM, JsonText, Then, _staging_name, copy_rows_new, insert_rows
from app.core.models import new_id, new_ids
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


@pytest.mark.parametrize("count", [3, COPY_FROM * 2])
async def test_a_statement_run_with_the_insert_reads_the_inserted_rows(session: AsyncSession, count: int) -> None:
    now = await session.scalar(text("SELECT now()"))
    rows = [(os.urandom(32), date(2020, 1, day % 28 + 1), now) for day in range(count)]
    then = Then("SELECT count(*), max(opened_on), :label FROM inserted", {"label": "counted"})
    counted = await insert_rows(session, CLIENTS, COLUMNS, rows, returning=["opened_on"], then=then)
    assert counted == [(count, max(row[1] for row in rows), "counted")]
    stored = await session.scalar(
        text("SELECT count(*) FROM existing_clients WHERE identity_hash = ANY(:hashes)"),
        {"hashes": [r[0] for r in rows]},
    )
    assert stored == count


@pytest.mark.parametrize("count", [3, COPY_FROM * 2])
async def test_constants_are_stored_in_every_row_with_a_then(session: AsyncSession, count: int) -> None:
    now = await session.scalar(text("SELECT now()"))
    hashes = [os.urandom(32) for _ in range(count)]
    rows = [(identity,) for identity in hashes]
    constants = {"opened_on": date(2019, 3, 4), "updated_at": now}
    then = Then("SELECT count(*) FROM inserted")
    counted = await insert_rows(
        session, CLIENTS, ("identity_hash",), rows, returning=["identity_hash"], then=then, constants=constants
    )
    assert counted == [(count,)]
    stored = await session.execute(
        text(
            "SELECT opened_on, updated_at, count(*) FROM existing_clients WHERE identity_hash = ANY(:hashes) "
            "GROUP BY 1, 2"
        ),
        {"hashes": hashes},
    )
    assert stored.all() == [(date(2019, 3, 4), now, count)]


@pytest.mark.parametrize("count", [2, COPY_FROM])
async def test_json_already_encoded_is_sent_as_it_is(session: AsyncSession, count: int) -> None:
    await session.execute(text("CREATE TEMPORARY TABLE json_rows (id text, doc jsonb)"))
    table = sa.Table("json_rows", sa.MetaData(), sa.Column("id", sa.Text), sa.Column("doc", JSONB))
    rows = [(f"r{n}", JsonText('{"a": [1, "二"]}') if n % 2 else {"a": [1, "二"]}) for n in range(count)]
    await insert_rows(session, table, ("id", "doc"), rows)
    docs = (await session.execute(text("SELECT DISTINCT doc FROM json_rows"))).scalars().all()
    assert docs == [{"a": [1, "二"]}]  # the same document either way, never a JSON string of it


@pytest.mark.parametrize("count", [3, COPY_FROM * 2])
async def test_new_rows_are_copied_straight_in_and_a_taken_key_falls_back_to_skipping(
    session: AsyncSession, count: int
) -> None:
    now = await session.scalar(text("SELECT now()"))
    hashes = [os.urandom(32) for _ in range(count)]
    rows = [(identity,) for identity in hashes]
    constants = {"opened_on": date(2018, 5, 6), "updated_at": now}
    first = await copy_rows_new(
        session, CLIENTS, ("identity_hash",), rows, returning=["identity_hash"], constants=constants
    )
    assert first == rows
    # Half of them again with new ones: the COPY meets a taken key, the rows already there are skipped.
    fresh = [(os.urandom(32),) for _ in range(count)]
    again = [*rows[: count // 2], *fresh]
    second = await copy_rows_new(
        session, CLIENTS, ("identity_hash",), again, returning=["identity_hash"], constants=constants
    )
    assert sorted(second) == sorted(fresh)
    stored = await session.execute(
        text(
            "SELECT opened_on, updated_at, count(*) FROM existing_clients WHERE identity_hash = ANY(:hashes) "
            "GROUP BY 1, 2"
        ),
        {"hashes": [*hashes, *(row[0] for row in fresh)]},
    )
    assert stored.all() == [(date(2018, 5, 6), now, count * 2)]  # each once, the transaction still usable


async def test_json_is_copied_straight_in_as_documents(session: AsyncSession) -> None:
    await session.execute(text("CREATE TEMPORARY TABLE json_copied (id text PRIMARY KEY, doc jsonb)"))
    table = sa.Table("json_copied", sa.MetaData(), sa.Column("id", sa.Text), sa.Column("doc", JSONB))
    rows = [(f"r{n}", JsonText('{"a": [1, "二"]}') if n % 2 else {"a": [1, "二"]}) for n in range(COPY_FROM)]
    assert len(await copy_rows_new(session, table, ("id", "doc"), rows, returning=["id"])) == COPY_FROM
    docs = (await session.execute(text("SELECT DISTINCT doc FROM json_copied"))).scalars().all()
    assert docs == [{"a": [1, "二"]}]


def test_ids_made_together_look_like_ids_made_one_by_one() -> None:
    together = new_ids("rev", 500)
    alone = new_id("rev")
    assert len(set(together)) == 500
    assert {len(made) for made in together} == {len(alone)}
    assert all(made.startswith("rev_") and made[4:].replace("-", "").replace("_", "").isalnum() for made in together)
