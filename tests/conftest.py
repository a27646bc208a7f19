"""The test harness: a real PostgreSQL, the real migrations once per run, a rolled-back transaction per test.

The server is ``TEST_DATABASE_URL`` or ``DATABASE_URL`` when set, otherwise the embedded one. Each run creates
its own database on that server (so runs never share rows) and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import OAuthClient
from app.auth.scopes import PrincipalKind, StaffRole
from app.auth.tokens import mint_access_token
from app.catalog import service as catalog_service
from app.catalog.models import Partner, PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core import clock
from app.core.config import Settings
from app.core.database import Database, normalise_url
from app.core.embedded_db import start_embedded_postgres
from app.core.migrations import upgrade_to_head
from app.main import create_app

pytest_plugins = ["tests.factories.referrals"]

TEST_PGDATA = Path(__file__).resolve().parents[1] / ".alliance" / "test-pgdata"


def _server_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        return normalise_url(configured)
    return start_embedded_postgres(TEST_PGDATA)


def _asyncpg_dsn(url: str) -> dict[str, object]:
    parsed = make_url(url)
    return {
        "user": parsed.username,
        "password": parsed.password,
        "host": parsed.query.get("host") or parsed.host,
        "port": parsed.port,
        "database": parsed.database,
    }


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_scratch_database(server_url: str, name: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_scratch_database(server_url: str, name: str) -> None:
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def migrated_scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database on the test server, migrated to head; dropped afterwards, whatever happens. Yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_scratch_database(server_url, name)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        drop_scratch_database(server_url, name)


async def eventually(probe: Callable[[], Awaitable[object]], what: str, timeout_s: float = 60.0) -> object:
    """What ``probe`` returns once it is truthy (polled every 50 ms); fails the test after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(environment="test", database_url=database_url, log_json=True, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def manual_clock(settings: Settings) -> Iterator[clock.ManualClock]:
    """A clock every rule reads, standing at the real now until the test moves it (``app.core.clock``)."""
    with clock.install(clock.ManualClock(clock.real_now()), settings) as manual:
        yield manual


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session inside the test's transaction; what the code under test commits is a savepoint."""
    database = Database(connection, join_savepoint=True)
    async with database.sessionmaker() as session:
        yield session


@pytest.fixture
def app(settings: Settings, connection: AsyncConnection) -> FastAPI:
    return create_app(settings, Database(connection, join_savepoint=True))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# --- principals and tokens -------------------------------------------------------------------------------------


@dataclass
class Caller:
    """A client created for a test, with a fresh access token for it."""

    client: OAuthClient
    secret: str | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def partner_id(self) -> str | None:
        return self.client.partner_id


class CallerFactory(Protocol):
    async def __call__(
        self,
        kind: PrincipalKind | str = ...,
        *,
        role: StaffRole | str | None = ...,
        partner: Partner | None = ...,
        scopes: list[str] | None = ...,
    ) -> Caller: ...


@pytest.fixture
async def make_partner(session: AsyncSession) -> Callable[..., Awaitable[Partner]]:
    async def make(kind: PartnerKind = PartnerKind.bank, legal_name: str = "哈尔滨银行股份有限公司") -> Partner:
        return await catalog_service.create_partner(
            session, Actor.system("test"), PartnerCreate(kind=kind, legal_name=legal_name)
        )

    return make


@pytest.fixture
async def caller(app: FastAPI, session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]) -> CallerFactory:
    """Any principal with a valid token: ``await caller("partner")``, ``await caller("staff", role="finance")``.

    Partner callers get a new partner unless one is given; ``scopes`` narrows the client's allowance.
    """

    async def make(
        kind: PrincipalKind | str = PrincipalKind.partner,
        *,
        role: StaffRole | str | None = None,
        partner: Partner | None = None,
        scopes: list[str] | None = None,
    ) -> Caller:
        if PrincipalKind(kind) is PrincipalKind.partner and partner is None:
            partner = await make_partner()
        return await new_caller(
            app, session, kind, role=role, partner_id=partner.id if partner else None, scopes=scopes
        )

    return make


async def new_caller(
    app: FastAPI,
    session: AsyncSession,
    kind: PrincipalKind | str,
    *,
    role: StaffRole | str | None = None,
    partner_id: str | None = None,
    scopes: list[str] | None = None,
) -> Caller:
    """A new client of ``kind`` and a token for it (every scope of its allowance unless ``scopes`` narrows it)."""
    kind = PrincipalKind(kind)
    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name=f"test {kind.value}",
        kind=kind,
        role=StaffRole(role) if role else None,
        partner_id=partner_id,
    )
    granted = scopes if scopes is not None else list(created.client.scopes)
    key = await app.state.keyring.signing_key(session)
    token = mint_access_token(
        key,
        app.state.settings,
        client_id=created.client.id,
        scope=" ".join(granted),
        kind=kind.value,
        partner_id=created.client.partner_id,
        role=created.client.role.value if created.client.role else None,
    )
    return Caller(created.client, created.secret, token)
