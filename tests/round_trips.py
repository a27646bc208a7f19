"""Counting what one request sends to PostgreSQL, through SQLAlchemy's engine events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
