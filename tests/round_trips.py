"""Counting what one request sends to PostgreSQL: through SQLAlchemy's engine events, or on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class RoundTrips:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    @property
    def count(self) -> int:
        """Statements, plus the BEGIN and the COMMIT (or ROLLBACK) of each transaction that ran one."""
        return len(self.statements) + (2 * self.transactions if self.statements else 0)


@contextmanager
def round_trips(engine: AsyncEngine) -> Iterator[RoundTrips]:
    seen = RoundTrips()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(statement)

    def on_begin(conn: Any) -> None:
        seen.transactions += 1

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", on_statement)
    event.listen(sync, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(sync, "before_cursor_execute", on_statement)
        event.remove(sync, "begin", on_begin)


# What reaches PostgreSQL, whoever sends it: asyncpg logs its simple queries (BEGIN, COMMIT, SAVEPOINT, ...) and the
# statements run on its connection itself, not those run as prepared statements (SQLAlchemy's), which SQLAlchemy's
# own event sees.
_TRANSACTION_CONTROL = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "PREPARE TRANSACTION")


@dataclass
class Wire:
    queries: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # those PostgreSQL answered with an error

    @property
    def transaction_control(self) -> list[str]:
        return [query for query in self.queries if query.lstrip().upper().startswith(_TRANSACTION_CONTROL)]

    @property
    def statements(self) -> list[str]:
        return [query for query in self.queries if query not in self.transaction_control]


@asynccontextmanager
async def on_the_wire(engine: AsyncEngine) -> AsyncIterator[Wire]:
    """Every query sent on the engine's connections while the block runs, in the order they were sent (as far as
    an ASGI app in the same event loop lets one tell)."""
    seen = Wire()
    tapped: list[Any] = []

    def logged(record: Any) -> None:
        seen.queries.append(record.query)
        if record.exception is not None:
            seen.failed.append(record.query)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        connection = dbapi_connection._connection  # the asyncpg connection under SQLAlchemy's adapter
        if connection not in tapped:
            connection.add_query_logger(logged)
            tapped.append(connection)

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.queries.append(statement)

    sync = engine.sync_engine
    event.listen(sync.pool, "checkout", on_checkout)
    event.listen(sync, "before_cursor_execute", on_statement)
    try:
        yield seen
        await asyncio.sleep(0)  # asyncpg calls its loggers soon after each query, not at once
    finally:
        event.remove(sync.pool, "checkout", on_checkout)
        event.remove(sync, "before_cursor_execute", on_statement)
        for connection in tapped:
            connection.remove_query_logger(logged)
