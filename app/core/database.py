"""The one PostgreSQL database: URL resolution, async engine, and the per-request session and transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
DISCONNECT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "57P04")


def _flag_disconnects(context: ExceptionContext) -> None:
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(DISCONNECT_SQLSTATES):
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
