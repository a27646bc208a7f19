"""The standing of a token (client active, partner active, token not revoked) is kept in each API process's memory
and forgotten on the database's notice: a protected call reads nothing of it from the database, and a revocation
still takes effect in every process within a second. These tests commit, on a scratch database, and run two
instances of the service side by side, as two API processes would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.service import Actor
from app.auth import service
from app.auth.scopes import PrincipalKind
from app.catalog import service as catalog_service
from app.catalog.models import PartnerKind, PartnerStatus
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.auth.helpers import token_with_secret
from tests.conftest import eventually, migrated_scratch_database
from tests.round_trips import round_trips

ACTOR = Actor.system("test")
WITHIN_S = 1.0
PROTECTED = "/v1/programs"


@dataclass
class Service:
    """One API process: its app, its engine and an HTTP client on it."""

    app: FastAPI
    engine: AsyncEngine
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_standing") as url:
        yield url


@pytest.fixture
async def services(scratch_url: str, settings: Settings) -> AsyncIterator[list[Service]]:
    scratch = settings.model_copy(update={"database_url": scratch_url, "rate_limit_per_second": 100_000})
    async with AsyncExitStack() as stack:
        running = []
        for _ in range(2):
            engine = create_engine(scratch_url, scratch)
            app = create_app(scratch, Database(engine))
            await stack.enter_async_context(app.router.lifespan_context(app))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
            )
            running.append(Service(app, engine, http))
        for each in running:  # each process listens before the test starts
            await eventually(lambda each=each: _listening(each), "the notice listener")
        yield running


@dataclass
class Caller:
    partner_id: str
    client_id: str
    secret: str
    token: str


async def _listening(running: Service) -> bool:
    return bool(running.app.state.token_standings.listening)


async def _partner_caller(engine: AsyncEngine, http: httpx.AsyncClient) -> Caller:
    """A new partner with a client, committed, and a token of that client."""
    async with Database(engine).sessionmaker() as setup, setup.begin():
        partner = await catalog_service.create_partner(
            setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="招商银行股份有限公司")
        )
        created = await service.create_client(
            setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=partner.id
        )
    assert created.secret is not None
    answer = await token_with_secret(http, created.client.id, created.secret)
    assert answer.status_code == 200, answer.text
    return Caller(partner.id, created.client.id, created.secret, answer.json()["access_token"])


async def _refused_everywhere_within_a_second(
    services: list[Service], token: str, change: Callable[[], Awaitable[None]]
) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    for each in services:  # warm: each process knows the token's standing
        for _ in range(2):
            assert (await each.http.get(PROTECTED, headers=headers)).status_code == 200
    await change()
    changed_at = time.monotonic()
    pending = list(services)
    while pending and time.monotonic() - changed_at < WITHIN_S + 0.5:
        pending = [each for each in pending if (await each.http.get(PROTECTED, headers=headers)).status_code != 401]
        await asyncio.sleep(0.01)
    assert not pending, "a process still accepted the token"
    return time.monotonic() - changed_at


async def test_a_protected_call_reads_no_standing_once_known(services: list[Service]) -> None:
    first = services[0]
    token = (await _partner_caller(first.engine, first.http)).token
    headers = {"Authorization": f"Bearer {token}"}
    assert (await first.http.get(PROTECTED, headers=headers)).status_code == 200
    with round_trips(first.engine) as seen:
        answer = await first.http.get(PROTECTED, headers=headers)
    assert answer.status_code == 200
    assert not [statement for statement in seen.statements if "revoked_tokens" in statement], seen.statements
    # BEGIN, the programs and what they show, COMMIT.
    assert seen.count <= 5, seen.statements


async def test_a_revoked_token_is_refused_by_every_process_within_a_second(services: list[Service]) -> None:
    first = services[0]
    caller = await _partner_caller(first.engine, first.http)

    async def revoke() -> None:
        answer = await first.http.post(
            "/oauth/revoke", data={"token": caller.token}, auth=(caller.client_id, caller.secret)
        )
        assert answer.status_code == 200, answer.text

    assert await _refused_everywhere_within_a_second(services, caller.token, revoke) < WITHIN_S


async def test_a_revoked_client_is_refused_by_every_process_within_a_second(services: list[Service]) -> None:
    first = services[0]
    caller = await _partner_caller(first.engine, first.http)

    async def revoke() -> None:  # as `alliance clients revoke` does, from another process
        async with Database(first.engine).sessionmaker() as session, session.begin():
            await service.revoke_client(session, ACTOR, caller.client_id)

    assert await _refused_everywhere_within_a_second(services, caller.token, revoke) < WITHIN_S


async def test_a_suspended_partner_is_refused_by_every_process_within_a_second(services: list[Service]) -> None:
    first = services[0]
    caller = await _partner_caller(first.engine, first.http)

    async def suspend() -> None:
        async with Database(first.engine).sessionmaker() as session, session.begin():
            await catalog_service.change_partner_status(
                session, ACTOR, caller.partner_id, PartnerStatus.suspended, "test"
            )

    assert await _refused_everywhere_within_a_second(services, caller.token, suspend) < WITHIN_S


async def test_a_process_that_lost_its_listener_reads_the_standing_again(services: list[Service]) -> None:
    first = services[0]
    caller = await _partner_caller(first.engine, first.http)
    headers = {"Authorization": f"Bearer {caller.token}"}
    assert (await first.http.get(PROTECTED, headers=headers)).status_code == 200
    standings = first.app.state.token_standings
    standings.listen(False)  # as when its connection drops: no notice can arrive
    async with Database(first.engine).sessionmaker() as session, session.begin():
        await service.revoke_client(session, ACTOR, caller.client_id)
    assert (await first.http.get(PROTECTED, headers=headers)).status_code == 401
