"""Statements compiled once for the hottest paths, run on asyncpg without SQLAlchemy's per-call execution:
``CompiledRead`` (a Core ``select``), ``CompiledStatement`` (a statement that may run alone, outside a
transaction) and ``ReadScope`` (the reads of a read-only call, on a pooled connection in autocommit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import asyncpg
from fastapi import Depends
from sqlalchemy import Select, TextClause
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

from app.core.database import DISCONNECT_SQLSTATES, Database, SessionDep, read_connection

# --- compiled reads -----------------------------------------------------------------------------------------------

_ASYNCPG = PGDialect_asyncpg()


class CompiledRead:
    """A Core ``select`` compiled once, for the reads the hottest routes make on every call.

    SQLAlchemy's own execution (the cache key of the statement, the execution context, the result and its rows)
    costs more CPU than the statement's round trip. This runs the compiled SQL on the request's asyncpg connection
    (asyncpg keeps it prepared) and decodes each value with its column's SQLAlchemy result processor, so the values
    are those ``session.execute`` would give. Values are bound by name (``bindparam``), as for ``execute``.
    """

    def __init__(self, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = compiled.string
        # Per positional parameter: its name, the value bound at build time (a literal), its bind processor.
        self._parameters = tuple(
            (name, compiled.binds[name].effective_value, compiled.binds[name].type._cached_bind_processor(_ASYNCPG))
            for name in compiled.positiontup or ()
        )
        self.columns = tuple(str(column.key) for column in statement.selected_columns)
        self._decoders = tuple(
            (index, processor)
            for index, column in enumerate(statement.selected_columns)
            if (processor := column.type._cached_result_processor(_ASYNCPG, None)) is not None
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments of ``sql`` for ``values`` (by name; a literal of the statement otherwise)."""
        arguments = []
        for name, literal, processor in self._parameters:
            value = values.get(name, literal)
            arguments.append(processor(value) if processor is not None else value)
        return arguments

    def decoded(self, records: list[asyncpg.Record]) -> list[dict[str, Any]]:
        """asyncpg's records as ``session.execute`` would give their values, each row as ``{column: value}``."""
        rows = []
        for record in records:
            values = list(record)
            for index, processor in self._decoders:
                values[index] = processor(values[index])
            rows.append(dict(zip(self.columns, values, strict=True)))
        return rows

    async def rows(self, connection: AsyncConnection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows, each as ``{column: value}``, read on ``connection`` (within its transaction, if it has one)."""
        arguments = self.arguments(values)
        pooled = await connection.get_raw_connection()
        adapted: Any = pooled.dbapi_connection  # SQLAlchemy's asyncpg adapter: its transaction begins on first use
        try:
            async with adapted._execute_mutex:
                if adapted._transaction is None:
                    await adapted._start_transaction()  # nothing in autocommit
                records = await adapted._connection.fetch(self.sql, *arguments)
        except Exception as error:
            raise await self._as_sqlalchemy_error(connection, adapted, error) from error
        return self.decoded(records)

    async def _as_sqlalchemy_error(self, connection: AsyncConnection, adapted: Any, error: Exception) -> Exception:
        return await as_sqlalchemy_error(self.sql, connection.dialect, adapted, error, connection.invalidate)


async def as_sqlalchemy_error(
    sql: str, dialect: Any, adapted: Any, error: Exception, invalidate: Callable[[Exception], Awaitable[None]]
) -> Exception:
    """An asyncpg ``error`` of ``sql`` run on ``adapted`` (SQLAlchemy's asyncpg adapter) as ``session.execute``
    raises it (the problem handler answers those), the connection invalidated when it is gone."""
    translated: Any = error
    try:
        adapted._handle_exception(error)  # raises the DB-API form of the asyncpg error
    except Exception as dbapi_error:
        translated = dbapi_error
    sqlstate = getattr(translated, "sqlstate", None)
    gone = dialect.is_disconnect(translated, adapted, None) or (
        isinstance(sqlstate, str) and sqlstate.startswith(DISCONNECT_SQLSTATES)
    )
    if gone:
        await invalidate(translated)
    return DBAPIError.instance(
        sql,
        None,
        translated,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=gone,
        dialect=dialect,
    )


# --- compiled statements ------------------------------------------------------------------------------------------


def runs_alone(session: AsyncSession) -> bool:
    """Whether a statement of this request would run alone (``CompiledStatement.row``): the session is bound to the
    engine (not to the tests' one connection) and its transaction has not begun (holds no connection yet)."""
    if not isinstance(session.bind, AsyncEngine):
        return False
    transaction = session.sync_session.get_transaction()
    # SessionTransaction._connections: the connections the session's transaction has begun (empty until first use).
    return transaction is None or not transaction._connections


class StatementUndone(Exception):
    """The statement met the condition of its ``undo_if`` and failed on purpose: nothing it did is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def undo_if(condition: str, reason: str) -> str:
    """A SQL expression (NULL) that fails the statement, with ``reason``, where ``condition`` holds.

    The text becomes an integer only once ``condition`` is known to hold, row by row: a constant would be cast (and
    fail) while the statement is planned. ``reason`` must be a plain word (letters and dashes).
    """
    return f"CAST(CASE WHEN {condition} THEN '{reason}' END AS integer)"


class CompiledStatement:
    """A text statement (``sa.text``, values bound by name) compiled once, for the writes the hottest routes make
    in one statement; run on the asyncpg connection directly (asyncpg keeps it prepared), its row as asyncpg reads
    it: no ORM, no SQLAlchemy execution context.

    When the request's transaction has not begun (``runs_alone``), the statement runs alone on a connection of the
    pool, in autocommit: a statement is atomic by itself, and BEGIN and COMMIT would cost a round trip each. The
    request holds no other connection meanwhile, and its session still begins its own transaction afterwards if the
    request needs one. Otherwise it runs in the request's transaction, as ``session.execute`` would.
    """

    def __init__(self, statement: TextClause, *, undo_reasons: tuple[str, ...] = ()) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        self._undo_reasons = tuple(f'"{reason}"' for reason in undo_reasons)  # as PostgreSQL quotes the text

    async def row(self, session: AsyncSession, values: Mapping[str, Any]) -> asyncpg.Record | None:
        """The statement's one row (None when it returns none). Raises ``StatementUndone`` when it failed on
        purpose (``undo_if``), SQLAlchemy's errors otherwise."""
        arguments = [values[name] for name in self._names]
        if runs_alone(session):
            engine = session.bind
            assert isinstance(engine, AsyncEngine)
            # The pool's connection itself (no SQLAlchemy Connection around it: nothing else runs on it).
            pooled = await greenlet_spawn(engine.sync_engine.raw_connection)

            async def invalidate(error: Exception) -> None:
                await greenlet_spawn(pooled.invalidate, error)

            try:
                return await self._fetchrow(pooled.dbapi_connection, engine.dialect, invalidate, arguments, alone=True)
            finally:
                await greenlet_spawn(pooled.close)
        connection = await session.connection()
        adapted = (await connection.get_raw_connection()).dbapi_connection
        return await self._fetchrow(adapted, connection.dialect, connection.invalidate, arguments, alone=False)

    async def _fetchrow(
        self,
        adapted: Any,  # SQLAlchemy's asyncpg adapter
        dialect: Any,
        invalidate: Callable[[Exception], Awaitable[None]],
        arguments: list[Any],
        *,
        alone: bool,
    ) -> Any:
        try:
            async with adapted._execute_mutex:
                if not alone and adapted._transaction is None:
                    await adapted._start_transaction()  # the request's transaction, begun on first use
                return await adapted._connection.fetchrow(self.sql, *arguments)
        except asyncpg.InvalidTextRepresentationError as error:
            reason = next((reason for reason in self._undo_reasons if reason in str(error)), None)
            if reason is None:
                raise await as_sqlalchemy_error(self.sql, dialect, adapted, error, invalidate) from error
            raise StatementUndone(reason.strip('"')) from error
        except Exception as error:
            raise await as_sqlalchemy_error(self.sql, dialect, adapted, error, invalidate) from error


# --- hot reads: one statement on a pooled connection, outside any transaction -------------------------------------
# (kept apart from the rest of this module: the request spine's read-only routes, see ``app.auth.deps.HotRead``)


class ReadScope:
    """The database as a read-only call sees it: ``rows_of`` runs each read on a connection of the pool in
    autocommit, one statement and no ``BEGIN`` nor ``COMMIT``; an ORM session exists only once something asks for
    one (``session()``: a standing or a key not known yet), and then every later read runs in its transaction.

    Never a second connection while the session holds one (requests holding one connection each and waiting for
    another would empty the pool under load). In the tests, bound to one connection in a rolled-back transaction,
    every read runs in the session so that it sees what the test wrote.
    """

    __slots__ = ("_database", "_owned", "_session")

    def __init__(self, database: Database | None, session: AsyncSession | None = None) -> None:
        self._database = database
        self._session = session
        self._owned = session is None

    @classmethod
    def joining(cls, session: AsyncSession) -> ReadScope:
        """Reads in ``session`` (outside its transaction while it has not begun, as ``read_connection``); the
        session's owner commits or closes it."""
        return cls(None, session)

    async def session(self) -> AsyncSession:
        if self._session is None:
            assert self._database is not None
            self._session = self._database.sessionmaker()
        return self._session

    @property
    def pooled_engine(self) -> AsyncEngine | None:
        """The engine whose pool the next read may use on its own: none once there is a session."""
        if self._session is not None or self._database is None:
            return None
        bind = self._database.bind
        return bind if isinstance(bind, AsyncEngine) else None

    async def close(self, *, failed: bool) -> None:
        """Commit (or, when the call failed, roll back) what a session of its own began, before the answer is
        sent, as the request's session is."""
        session, self._session = (self._session if self._owned else None), None
        if session is None:
            return
        try:
            if session.in_transaction():
                await (session.rollback() if failed else session.commit())
        finally:
            await session.close()


async def request_reads(session: SessionDep) -> ReadScope:
    """The request's reads when FastAPI resolves them: in the request's session (``authenticate`` takes it too),
    outside its transaction while it has not begun. ``HotRead`` routes make their own ``ReadScope`` instead."""
    return ReadScope.joining(session)


ReadsDep = Annotated[ReadScope, Depends(request_reads)]


async def rows_of(reads: ReadScope, read: CompiledRead, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``read`` (as ``CompiledRead.rows``), on a pooled connection in autocommit when the scope has no
    session, else on the session's connection."""
    engine = reads.pooled_engine
    if engine is None:
        return await read.rows(await read_connection(await reads.session()), values)
    arguments = read.arguments(values)
    pooled = await engine.raw_connection()
    try:
        adapted: Any = pooled.dbapi_connection  # SQLAlchemy's asyncpg adapter, checked in with no transaction
        try:
            async with adapted._execute_mutex:
                records = await adapted._connection.fetch(read.sql, *arguments)
        except Exception as error:
            raise await as_sqlalchemy_error(
                read.sql, engine.dialect, adapted, error, lambda gone: greenlet_spawn(pooled.invalidate, gone)
            ) from error
    finally:
        pooled.close()  # back to the pool: its reset (a rollback) has no transaction to end, so no round trip
    return read.decoded(records)
