"""The one PostgreSQL database: URL resolution, async engine, and the per-request session and transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, Request
from sqlalchemy import Select, TextClause, event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from app.core.config import Settings
from app.core.embedded_db import start_embedded_postgres

log = structlog.get_logger(__name__)


def normalise_url(url: str) -> str:
    """Accept the usual spellings (``postgres://``, ``postgresql://``) and use the asyncpg driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def resolve_database_url(settings: Settings) -> str:
    """The configured server, or the embedded one (started on demand) when none is configured."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    return start_embedded_postgres(settings.embedded_pgdata)


def redacted(url: str) -> str:
    """The URL as it may appear in logs: never with its password."""
    return make_url(url).render_as_string(hide_password=True)


# SQLSTATEs that mean the connection is gone or cannot be had: class 08 (connection exception) and 57P01-57P04
# (the server shut down, crashed, is starting up or recovering, or the database was dropped). asyncpg reports the
# "starting up" refusal at connect as a plain database error, which would otherwise be answered 500.
_DISCONNECT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "57P04")


def _flag_disconnects(context: ExceptionContext) -> None:
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_DISCONNECT_SQLSTATES):
        # A disconnect: the error is answered 503, and the pool drops its connections instead of handing them out.
        context.is_disconnect = True


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # No pre-ping: it costs a round trip per checkout, and a connection found dropped mid-request is answered
        # 503 (``_flag_disconnects``) while the pool replaces it.
        pool_recycle=1800,
        # Statement parameters (secrets, tokens, personal data) never appear in exception messages or logs.
        hide_parameters=True,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 5
            if settings.db_statement_timeout_ms
            else None,
            "server_settings": {
                "application_name": "alliance",
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "timezone": "UTC",
                # Statements keep PostgreSQL's default plan caching; the batch lookups that need a custom plan
                # per run ask for it in their own transaction (``CUSTOM_PLANS``).
            },
        },
    )
    event.listen(engine.sync_engine, "handle_error", _flag_disconnects)
    return engine


# asyncpg prepares every statement. After five runs PostgreSQL may keep a generic plan for good, chosen with the
# statistics of that moment: on a young table that grows fast (a batch's referrals) a plan made when the table was
# nearly empty scans it whole for every lookup, for the life of the connection. A custom plan per run costs a
# fraction of a millisecond and follows the table's size: the transactions that run such lookups execute this first.
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


class Database:
    """An engine and the session factory bound to it.

    Tests bind the factory to one outer connection instead, so that every request joins a transaction that is
    rolled back after the test.
    """

    def __init__(self, bind: AsyncEngine | AsyncConnection, *, join_savepoint: bool = False) -> None:
        self.bind = bind
        options: dict[str, Any] = {"join_transaction_mode": "create_savepoint"} if join_savepoint else {}
        self.sessionmaker = async_sessionmaker(bind=bind, expire_on_commit=False, autoflush=False, **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        url = resolve_database_url(settings)
        log.info("database_selected", url=redacted(url))
        return cls(create_engine(url, settings))

    def listener(
        self, channel: str, on_notice: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> NoticeListener | None:
        """A listener on ``channel`` (not started); None when bound to one connection (the tests' transaction,
        in which no notice is ever delivered)."""
        if not isinstance(self.bind, AsyncEngine):
            return None
        return NoticeListener(self.bind, channel, on_notice, on_state)

    def autocommit_engine(self, pool_size: int) -> AsyncEngine | None:
        """A small pool of its own on the same database, in autocommit, for one-statement work that must never
        wait for a connection of the request pool (a request may hold one while it waits); None in the tests'
        one-connection binding."""
        if not isinstance(self.bind, AsyncEngine):
            return None
        engine = create_async_engine(
            self.bind.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_recycle=1800,
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 10, "server_settings": {"application_name": "alliance-side", "timezone": "UTC"}},
        )
        event.listen(engine.sync_engine, "handle_error", _flag_disconnects)
        return engine

    async def dispose(self) -> None:
        if isinstance(self.bind, AsyncEngine):
            await self.bind.dispose()


async def get_database(request: Request) -> Database:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off per request.
    database: Database = request.app.state.database
    return database


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    # ``request`` rather than ``Depends(get_database)``: FastAPI resolves every dependency node on each call (twice
    # here, as ``authenticate`` takes the session too), and the session is in every route.
    database: Database = request.app.state.database
    # The request owns the one transaction: services flush, this commits once the endpoint returned, and
    # before the response is sent, so a failed commit is never answered with a success.
    async with database.sessionmaker() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def read_connection(session: AsyncSession) -> AsyncConnection:
    """The connection for a read that is one statement: outside any transaction (no ``BEGIN`` nor ``COMMIT``, two
    round trips saved) when the request has not used the database yet, else the request's own transaction.

    Never a second connection while the session holds one: under load, requests each holding one connection and
    waiting for another would empty the pool. In the tests (the session bound to one connection, in a transaction
    rolled back afterwards) it is always the session's.
    """
    transaction = session.sync_session.get_transaction()
    # SessionTransaction._connections: the connections the session's transaction has begun (empty until first use).
    started = transaction is not None and bool(transaction._connections)
    if isinstance(session.bind, AsyncEngine) and not started:
        return await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return await session.connection()


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

    async def rows(self, connection: AsyncConnection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows, each as ``{column: value}``, read on ``connection`` (within its transaction, if it has one)."""
        arguments = []
        for name, literal, processor in self._parameters:
            value = values.get(name, literal)
            arguments.append(processor(value) if processor is not None else value)
        pooled = await connection.get_raw_connection()
        adapted: Any = pooled.dbapi_connection  # SQLAlchemy's asyncpg adapter: its transaction begins on first use
        try:
            async with adapted._execute_mutex:
                if adapted._transaction is None:
                    await adapted._start_transaction()  # nothing in autocommit
                records = await adapted._connection.fetch(self.sql, *arguments)
        except Exception as error:
            raise await self._as_sqlalchemy_error(connection, adapted, error) from error
        rows = []
        for record in records:
            decoded = list(record)
            for index, processor in self._decoders:
                decoded[index] = processor(decoded[index])
            rows.append(dict(zip(self.columns, decoded, strict=True)))
        return rows

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
        isinstance(sqlstate, str) and sqlstate.startswith(_DISCONNECT_SQLSTATES)
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


# --- notices ------------------------------------------------------------------------------------------------------

LISTEN_RETRY_S = 0.5


class NoticeListener:
    """One connection of its own that LISTENs on ``channel`` for the life of the process, outside the pool.

    ``on_state(True)`` once it listens, ``on_state(False)`` as soon as its connection is lost (it then connects
    again every ``LISTEN_RETRY_S``); ``on_notice(payload)`` for each notice, in the order they were committed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        channel: str,
        on_notice: Callable[[str], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self.engine, self.channel = engine, channel
        self.on_notice, self.on_state = on_notice, on_state
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"listen:{self.channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.on_state(False)

    async def _run(self) -> None:
        while True:
            try:
                connection = await self._connect()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("notice_listener_unavailable", channel=self.channel, error=type(exc).__name__)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            lost = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(self.channel, lambda *args: self.on_notice(str(args[-1])))
                self.on_state(True)
                await lost.wait()
                log.warning("notice_listener_lost", channel=self.channel)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("notice_listener_failed", channel=self.channel, error=type(exc).__name__)
            finally:
                self.on_state(False)
                if not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _connect(self) -> asyncpg.Connection:
        url = self.engine.url.set(drivername="postgresql")
        return await asyncpg.connect(
            url.render_as_string(hide_password=False),
            timeout=5,
            server_settings={"application_name": "alliance-listener"},
        )


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
    arguments = []
    for name, literal, processor in read._parameters:
        value = values.get(name, literal)
        arguments.append(processor(value) if processor is not None else value)
    pooled = await engine.raw_connection()
    try:
        adapted: Any = pooled.dbapi_connection  # SQLAlchemy's asyncpg adapter, checked in with no transaction
        try:
            async with adapted._execute_mutex:
                records = await adapted._connection.fetch(read.sql, *arguments)
        except Exception as error:
            raise await _pooled_read_error(engine, pooled, adapted, read.sql, error) from error
    finally:
        pooled.close()  # back to the pool: its reset (a rollback) has no transaction to end, so no round trip
    rows = []
    for record in records:
        decoded = list(record)
        for index, processor in read._decoders:
            decoded[index] = processor(decoded[index])
        rows.append(dict(zip(read.columns, decoded, strict=True)))
    return rows


async def _pooled_read_error(engine: AsyncEngine, pooled: Any, adapted: Any, sql: str, error: Exception) -> Exception:
    """The error as ``session.execute`` raises it (as ``CompiledRead``'s), the connection invalidated when gone."""
    translated: Any = error
    try:
        adapted._handle_exception(error)  # raises the DB-API form of the asyncpg error
    except Exception as dbapi_error:
        translated = dbapi_error
    dialect = engine.dialect
    sqlstate = getattr(translated, "sqlstate", None)
    gone = dialect.is_disconnect(translated, adapted, None) or (
        isinstance(sqlstate, str) and sqlstate.startswith(_DISCONNECT_SQLSTATES)
    )
    if gone:
        await greenlet_spawn(pooled.invalidate, translated)
    return DBAPIError.instance(
        sql,
        None,
        translated,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=gone,
        dialect=dialect,
    )
