"""Set-based writes of many rows in one statement, inside the session's transaction.

``insert_rows`` sends each column as one array and lets PostgreSQL ``unnest`` them: one statement and one round
trip whatever the number of rows, with asyncpg encoding the arrays in binary. SQLAlchemy's executemany would
process every parameter of every row in Python (and, for ORM inserts, split the rows into one statement per run
of rows whose empty columns differ), which costs more than the database's own work on the hot intake paths.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import asyncpg
import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def equals_any(column: Any, values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """``column = ANY(:values)``: one array parameter, where ``IN`` would send (and process) one per value."""
    return column == sa.any_(sa.literal(list(values), postgresql.ARRAY(column.type)))


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, in its transaction."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def copy_records(
    session: AsyncSession, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """Binary COPY into ``table`` on the session's connection, inside its transaction."""
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(table, records=records, columns=list(columns))  # type: ignore[union-attr]


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def _constants(table: sa.Table, columns: tuple[str, ...], constants: tuple[str, ...]) -> tuple[str, list[str]]:
    """The constant columns as they follow the row columns in an insert's column list and select list: each bound
    once, as the parameter numbered after the row columns' (``:c<n>``)."""
    if not constants:
        return "", []
    listed = "".join(f", {name}" for name in constants)
    bound = [
        f"CAST(:c{len(columns) + offset} AS {table.c[name].type.compile(dialect=_DIALECT)})"
        for offset, name in enumerate(constants)
    ]
    return listed, bound


@cache
def _insert_statement(
    table: sa.Table,
    columns: tuple[str, ...],
    constants: tuple[str, ...],
    on_conflict_do_nothing: bool,
    returning: str,
    then: str,
) -> str:
    arrays = []
    selected = []
    for position, name in enumerate(columns):
        column = table.c[name]
        # JSON travels as text (asyncpg has no JSON array codec of its own) and is cast back row by row.
        array_type = "text" if _is_json(column) else column.type.compile(dialect=_DIALECT)
        arrays.append(f"CAST(:c{position} AS {array_type}[])")
        selected.append(f"c{position}::jsonb" if _is_json(column) else f"c{position}")
    constant_names, bound = _constants(table, columns, constants)
    insert = (
        f"INSERT INTO {table.name} ({', '.join(columns)}{constant_names}) "
        f"SELECT {', '.join([*selected, *bound])} FROM unnest({', '.join(arrays)}) WITH ORDINALITY "
        f"AS rows({', '.join(f'c{position}' for position in range(len(columns)))}, position) ORDER BY position"
    )
    return _followed_by([], _finish(insert, on_conflict_do_nothing, returning), then)


def _finish(insert: str, on_conflict_do_nothing: bool, returning: str) -> str:
    if on_conflict_do_nothing:
        insert += " ON CONFLICT DO NOTHING"
    if returning:
        insert += f" RETURNING {returning}"
    return insert


def _followed_by(ctes: list[str], insert: str, then: str) -> str:
    """The insert, or, with ``then``, the insert as the CTE ``inserted`` that ``then`` reads."""
    if then:
        ctes = [*ctes, f"inserted AS ({insert})"]
        insert = then
    return f"WITH {', '.join(ctes)} {insert}" if ctes else insert


@dataclass(frozen=True)
class Then:
    """A statement run with an insert, as part of it: it reads the inserted rows' ``returning`` columns from the
    CTE ``inserted``. Bind parameters are named (``:now``) and must not start with ``c`` and a digit."""

    sql: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


COPY_FROM = 64  # rows from which ``insert_rows`` stages by COPY rather than sending arrays


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict_do_nothing: bool = False,
    returning: Sequence[str] = (),
    then: Then | None = None,
    constants: Mapping[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples in the order of ``columns``) in one statement, in their order (an identity column
    numbers them in that order); returns the ``returning`` columns of the rows inserted. With ``then``, a statement
    reading those columns runs as part of the same statement, and what it returns (if anything) is returned.
    ``constants`` (column: value, not JSON) are the same for every row: bound once rather than sent with each row
    (encoding a timestamp per row for COPY costs as much as a few text columns).

    A few rows travel as arrays. Many are first copied (binary COPY) into a temporary table of the connection, then
    moved in one ``INSERT … SELECT``: asyncpg checks every element of an array parameter in Python, which costs
    more than the database's own work once there are hundreds of rows."""
    if not rows:
        return []
    names = tuple(columns)
    json_positions = [position for position, name in enumerate(names) if _is_json(table.c[name])]
    listed = ", ".join(returning)
    then_sql, parameters = (then.sql, dict(then.parameters)) if then else ("", {})
    constant_names = tuple(constants or {})
    parameters |= {f"c{len(names) + offset}": value for offset, value in enumerate((constants or {}).values())}
    if len(rows) < COPY_FROM:
        statement = _insert_statement(table, names, constant_names, on_conflict_do_nothing, listed, then_sql)
        rows = [_with_json_text(row, json_positions) for row in rows] if json_positions else rows
        parameters |= {f"c{position}": list(values) for position, values in enumerate(zip(*rows, strict=True))}
    else:
        staging = await _staging_table(session, table, names)
        await copy_records(session, staging, (*names, "position"), _staged_records(rows, json_positions))
        statement = _move_statement(table, staging, names, constant_names, on_conflict_do_nothing, listed, then_sql)
    result = await session.execute(sa.text(statement), parameters)
    returns_rows = isinstance(result, sa.CursorResult) and result.returns_rows
    return [tuple(row) for row in result.all()] if returns_rows else []


async def copy_rows_new(
    session: AsyncSession,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str],
    constants: Mapping[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """``insert_rows(..., on_conflict_do_nothing=True)`` for rows that are new as a rule: binary COPY straight into
    ``table`` under a savepoint, with no staging table and no second statement. If a unique key turns out to be
    taken (a replay, or a concurrent writer), the savepoint is rolled back and the rows go through
    ``insert_rows``'s ``ON CONFLICT DO NOTHING``, which skips those. Returns the ``returning`` columns (which must be
    among ``columns``) of the rows inserted."""
    if len(rows) < COPY_FROM:
        return await insert_rows(
            session, table, columns, rows, on_conflict_do_nothing=True, returning=returning, constants=constants
        )
    names = tuple(columns)
    json_positions = [position for position, name in enumerate(names) if _is_json(table.c[name])]
    appended = tuple((constants or {}).values())
    records = rows
    if appended or not all(isinstance(row[p], JsonText | None) for row in rows for p in json_positions):
        # Rows built as COPY records already (JSON as ``JsonText``, no constants) are sent as they are.
        records = [_with_json_text(row, json_positions, *appended) for row in rows]
    raw = await driver_connection(session)
    await raw.execute("SAVEPOINT copy_rows_new")
    try:
        await copy_records(session, table.name, [*names, *(constants or {})], list(records))  # type: ignore[arg-type]
    except asyncpg.UniqueViolationError:
        await raw.execute("ROLLBACK TO SAVEPOINT copy_rows_new")
        await raw.execute("RELEASE SAVEPOINT copy_rows_new")
        return await insert_rows(
            session, table, columns, rows, on_conflict_do_nothing=True, returning=returning, constants=constants
        )
    await raw.execute("RELEASE SAVEPOINT copy_rows_new")
    picked = operator.itemgetter(*(names.index(name) for name in returning))
    return [picked(row) for row in rows] if len(returning) > 1 else [(picked(row),) for row in rows]


class JsonText(str):
    """A JSON value already encoded (by pydantic's serializer, say): ``insert_rows`` sends it as it is."""


def json_text(value: Any) -> str:
    """``value`` as JSON text for a ``jsonb`` column: pydantic's encoder, several times faster than ``json.dumps``
    on the small objects the hot paths write (PostgreSQL keeps jsonb in its own form, whatever the spacing)."""
    return to_json(value).decode()


def _with_json_text(row: Sequence[Any], positions: list[int], *appended: Any) -> tuple[Any, ...]:
    """The row with its JSON values (at ``positions``) as text, and ``appended`` after its own values."""
    values = [*row, *appended]
    for position in positions:
        value = values[position]
        if value is not None and not isinstance(value, JsonText):
            values[position] = "{}" if value == {} else json_text(value)
    return tuple(values)


def _staged_records(rows: Sequence[Sequence[Any]], json_positions: list[int]) -> list[tuple[Any, ...]]:
    """The rows as COPY records, JSON encoded and numbered, in one pass (the feed stages tens of thousands)."""
    if not json_positions:
        return [(*row, position) for position, row in enumerate(rows)]
    return [_with_json_text(row, json_positions, position) for position, row in enumerate(rows)]


@cache
def _staging_name(table: sa.Table, columns: tuple[str, ...]) -> str:
    return f"staging_{table.name}_{zlib.crc32(','.join(columns).encode()):08x}"


async def _staging_table(session: AsyncSession, table: sa.Table, columns: tuple[str, ...]) -> str:
    """A temporary table of the connection with ``columns`` of ``table`` and a position, emptied at commit (rows
    left by a rolled-back transaction go with it)."""
    name = _staging_name(table, columns)
    await session.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(columns)}, 0::bigint AS position FROM {table.name} WITH NO DATA"
        )
    )
    return name


@cache
def _move_statement(
    table: sa.Table,
    staging: str,
    columns: tuple[str, ...],
    constants: tuple[str, ...],
    on_conflict_do_nothing: bool,
    returning: str,
    then: str,
) -> str:
    """Empty the staging table into ``table``, in the rows' order."""
    listed = ", ".join(columns)
    constant_names, bound = _constants(table, columns, constants)
    selected = ", ".join([listed, *bound])
    insert = f"INSERT INTO {table.name} ({listed}{constant_names}) SELECT {selected} FROM staged ORDER BY position"
    staged = f"staged AS (DELETE FROM {staging} RETURNING *)"
    return _followed_by([staged], _finish(insert, on_conflict_do_nothing, returning), then)
