"""Races between real concurrent transactions, on a scratch database (these tests commit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.audit.service import Actor
from app.auth import service
from app.auth.keys import ensure_active_key, rotate_signing_key
from app.auth.models import AuthMethod, ClientSecret, SigningKey, SigningKeyStatus
from app.auth.scopes import PrincipalKind, StaffRole
from app.auth.server import JwksFetcher
from app.catalog import service as catalog_service
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from tests.auth.helpers import client_assertion, partner_key, token_with_assertion, token_with_secret
from tests.conftest import migrated_scratch_database

ACTOR = Actor.system("test")
# Long enough for the second transaction to reach its lock wait before the first commits.
SETTLE_S = 0.3


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_race") as url:
        yield url


@pytest.fixture(scope="module")
async def scratch_engine(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(scratch_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(scratch_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(scratch_engine, expire_on_commit=False)


async def test_concurrent_signing_key_rotations_run_one_after_the_other(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessions() as setup, setup.begin():
        await ensure_active_key(setup, settings)

    async def rotate_and_commit(session: AsyncSession) -> tuple[str | None, str]:
        async with session.begin():
            return await rotate_signing_key(session, settings)

    async with sessions() as first, sessions() as second:
        _, first_kid = await rotate_signing_key(first, settings)
        racing = asyncio.create_task(rotate_and_commit(second))
        await asyncio.sleep(SETTLE_S)
        assert not racing.done(), "the second rotation must wait for the first"
        await first.commit()
        retired_kid, second_kid = await racing
    assert retired_kid == first_kid  # the second rotation retired the key the first one made

    async with sessions() as check:
        active = (await check.scalars(select(SigningKey.kid).where(SigningKey.status == SigningKeyStatus.active))).all()
    assert active == [second_kid]


async def test_concurrent_secret_rotations_leave_one_secret_without_an_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as setup, setup.begin():
        created = await service.create_client(
            setup, ACTOR, name="racing rotations", kind=PrincipalKind.staff, role=StaffRole.admin
        )
    client_id = created.client.id

    async def rotate_and_commit(session: AsyncSession) -> str:
        async with session.begin():
            _, secret, _ = await service.rotate_client_secret(session, ACTOR, client_id, grace_s=0)
            return secret

    async with sessions() as first, sessions() as second:
        await service.rotate_client_secret(first, ACTOR, client_id, grace_s=0)
        racing = asyncio.create_task(rotate_and_commit(second))
        await asyncio.sleep(SETTLE_S)
        assert not racing.done(), "the second rotation must wait for the first"
        await first.commit()
        last_secret = await racing

    async with sessions() as check:
        ends = (await check.scalars(select(ClientSecret.expires_at).where(ClientSecret.client_id == client_id))).all()
        current = await service.load_token_client(check, client_id)
    assert len(ends) == 3
    assert sum(1 for end in ends if end is None) == 1
    assert current is not None
    assert len(current.secret_hashes) == 1
    assert service.verify_any_secret(current.secret_hashes, last_secret)


async def test_a_slow_partner_jwks_uri_holds_no_database_connection(scratch_url: str, settings: Settings) -> None:
    """With a pool of one connection, another client is served while a partner's jwks_uri hangs."""
    engine = create_async_engine(scratch_url, pool_size=1, max_overflow=0, pool_timeout=2)
    database = Database(engine)
    scratch_settings = settings.model_copy(update={"database_url": scratch_url})
    app = create_app(scratch_settings, database)
    key = partner_key()
    fetch_started, release = asyncio.Event(), asyncio.Event()

    async def hanging_partner_server(request: httpx.Request) -> httpx.Response:
        fetch_started.set()
        await asyncio.wait_for(release.wait(), timeout=10)
        return httpx.Response(200, json={"keys": [key.as_dict(private=False)]})

    app.state.jwks_fetcher = JwksFetcher(scratch_settings, transport=httpx.MockTransport(hanging_partner_server))
    try:
        async with database.sessionmaker() as setup, setup.begin():
            bank = await catalog_service.create_partner(
                setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="招商银行股份有限公司")
            )
            insurer = await catalog_service.create_partner(
                setup, ACTOR, PartnerCreate(kind=PartnerKind.insurer, legal_name="平安保险股份有限公司")
            )
            with_secret = await service.create_client(
                setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=bank.id
            )
            with_jwks_uri = await service.create_client(
                setup,
                ACTOR,
                name="insurer",
                kind=PrincipalKind.partner,
                partner_id=insurer.id,
                auth_method=AuthMethod.private_key_jwt,
                jwks_uri="https://insurer.example/jwks.json",
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assertion = client_assertion(key, with_jwks_uri.client.id, scratch_settings.token_endpoint)
            waiting = asyncio.create_task(token_with_assertion(client, assertion))
            await asyncio.wait_for(fetch_started.wait(), timeout=5)
            served = await token_with_secret(client, with_secret.client.id, with_secret.secret or "")
            assert served.status_code == 200, served.text
            release.set()
            assert (await waiting).status_code == 200
    finally:
        release.set()
        await engine.dispose()
