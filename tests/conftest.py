"""The test harness: a real PostgreSQL, the real migrations once per run, a rolled-back transaction per test.

The server is ``TEST_DATABASE_URL`` or ``DATABASE_URL`` when set, otherwise the embedded one. Each run creates
its own database on that server (so runs never share rows) and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
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
from app.demo import load_demo
from app.main import create_app
from app.people import service as people_service

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


# Templates: the real migrations run once per run into a database of their own (and the demo is loaded once into a
# copy of it); those databases are never connected to again, and every migrated (or demo) scratch database is a copy
# (``CREATE DATABASE … TEMPLATE``: a fraction of a second instead of every migration, or the demo's year, again).
# They are dropped when the run ends.
_TEMPLATES: dict[tuple[str, str], str] = {}
_TEMPLATES_LOCK = threading.Lock()


def clone_database(server_url: str, template: str, name: str) -> str:
    """A new database on the test server, a copy of ``template`` (nobody may be connected to it); returns its URL."""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def migrated_template(server_url: str) -> str:
    """The name of this run's template database on ``server_url``, migrated to head by the real migrations once."""
    with _TEMPLATES_LOCK:
        if (server_url, "migrated") not in _TEMPLATES:
            name = f"alliance_template_{uuid.uuid4().hex[:10]}"
            url = create_scratch_database(server_url, name)
            try:
                upgrade_to_head(url)
            except BaseException:
                drop_scratch_database(server_url, name)
                raise
            _TEMPLATES[server_url, "migrated"] = name
        return _TEMPLATES[server_url, "migrated"]


def pytest_unconfigure(config: pytest.Config) -> None:
    with _TEMPLATES_LOCK:
        for (server_url, _), name in _TEMPLATES.items():
            drop_scratch_database(server_url, name)
        _TEMPLATES.clear()


@contextmanager
def migrated_scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database on the test server, migrated to head; dropped afterwards, whatever happens. Yields its URL.

    It is a copy of this run's migrated template (the same schema and rows the migrations leave)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = clone_database(server_url, migrated_template(server_url), name)
    try:
        yield url
    finally:
        drop_scratch_database(server_url, name)


@dataclass(frozen=True)
class DemoTemplate:
    """This run's demo template: a migrated database with the demo alliance loaded once (``app.demo.load_demo``)."""

    name: str
    credentials: list[dict[str, str | None]]  # what that first load returned, secrets included
    load_s: float  # how long that first load took


_DEMO_TEMPLATES: dict[str, DemoTemplate] = {}


async def demo_template(server_url: str, settings: Settings) -> DemoTemplate:
    """This run's demo template on ``server_url``, loaded the first time by ``settings`` (its database URL aside)."""
    if server_url not in _DEMO_TEMPLATES:
        migrated = await asyncio.to_thread(migrated_template, server_url)
        name = f"alliance_template_demo_{uuid.uuid4().hex[:10]}"
        url = await asyncio.to_thread(clone_database, server_url, migrated, name)
        try:
            started = time.perf_counter()
            credentials = await load_demo(url, settings.model_copy(update={"database_url": url}))
            load_s = time.perf_counter() - started
        except BaseException:
            await asyncio.to_thread(drop_scratch_database, server_url, name)
            raise
        with _TEMPLATES_LOCK:
            _TEMPLATES[server_url, "demo"] = name
        _DEMO_TEMPLATES[server_url] = DemoTemplate(name, credentials, load_s)
    return _DEMO_TEMPLATES[server_url]


@asynccontextmanager
async def demo_database_copy(
    server_url: str, settings: Settings, prefix: str
) -> AsyncIterator[tuple[str, DemoTemplate]]:
    """A new database with the demo loaded (a copy of this run's demo template), dropped afterwards; yields its URL
    and the template (the credentials its load returned)."""
    template = await demo_template(server_url, settings)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = await asyncio.to_thread(clone_database, server_url, template.name, name)
    try:
        yield url, template
    finally:
        await asyncio.to_thread(drop_scratch_database, server_url, name)


async def eventually(probe: Callable[[], Awaitable[object]], what: str, timeout_s: float = 60.0) -> object:
    """What ``probe`` returns once it is truthy (polled every 50 ms); fails the test after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# argon2 at a test cost: every test that makes a client or a person hashes its secret or password, and the production
# profiles (19 MiB and 64 MiB of memory per hash) would spend most of the run there. The hashes are still argon2id and
# still verified; the production profiles are asserted in tests/security/test_hash_profiles.py, and they are what the
# service started as a process (tests/core/test_serve.py, the worker's and the fault tests' processes) uses.
PRODUCTION_HASHERS = {"secret": auth_service.SECRET_HASHER, "password": people_service.PASSWORD_HASHER}
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def argon2_at_test_cost() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth_service, "SECRET_HASHER", TEST_HASHER)
        patch.setattr(people_service, "PASSWORD_HASHER", TEST_HASHER)
        auth_service._dummy_secret_hash.cache_clear()
        people_service._dummy_hash.cache_clear()
        yield
    auth_service._dummy_secret_hash.cache_clear()
    people_service._dummy_hash.cache_clear()


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
