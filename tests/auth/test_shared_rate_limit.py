"""A client's API rate limit holds across API processes: two instances of the service on one committed database
together answer what one bucket allows (its burst, then its rate), within 10 %, not twice that."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.audit.service import Actor
from app.auth import service
from app.auth.rate_leases import LEASE_S, SharedTokenBuckets
from app.auth.scopes import PrincipalKind
from app.catalog import service as catalog_service
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.auth.helpers import token_with_secret
from tests.conftest import migrated_scratch_database

ACTOR = Actor.system("test")
# Low enough that two processes ask for more even on a busy 2-core machine (about 13 calls/s each seen under load),
# long enough that what a process still holds of its last lease stays well inside the 10 % asked.
RATE = 10
LEASE_SHARE = 5  # a lease is then 2 tokens: the processes really do take chunks of one bucket
SECONDS = 6.0
SENDERS_PER_PROCESS = 8


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_shared_rate") as url:
        yield url


@pytest.fixture
async def processes(scratch_url: str, settings: Settings) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    scratch = settings.model_copy(update={"database_url": scratch_url})
    async with AsyncExitStack() as stack:
        running = []
        for _ in range(2):
            engine = create_engine(scratch_url, scratch)
            app = create_app(scratch, Database(engine))
            await stack.enter_async_context(app.router.lifespan_context(app))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
            )
            running.append((app, http))
        yield running


async def _token_of_a_client_limited_to(processes: list[tuple[FastAPI, httpx.AsyncClient]], rate: int) -> str:
    app, http = processes[0]
    database: Database = app.state.database
    async with database.sessionmaker() as setup, setup.begin():
        partner = await catalog_service.create_partner(
            setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="兴业银行股份有限公司")
        )
        created = await service.create_client(
            setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=partner.id
        )
        await setup.execute(
            text("UPDATE oauth_clients SET rate_limit_per_second = :rate WHERE id = :id"),
            {"rate": rate, "id": created.client.id},
        )
    assert created.secret is not None
    answer = await token_with_secret(http, created.client.id, created.secret)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def test_two_processes_together_hold_one_clients_rate(
    processes: list[tuple[FastAPI, httpx.AsyncClient]],
) -> None:
    for app, _ in processes:
        limits = app.state.api_rate_limits
        assert isinstance(limits, SharedTokenBuckets)
        limits.lease_share = LEASE_SHARE
    token = await _token_of_a_client_limited_to(processes, RATE)
    headers = {"Authorization": f"Bearer {token}"}
    for _, http in processes:  # each process knows the token, and the bucket exists
        assert (await http.get("/v1/programs", headers=headers)).status_code == 200
    await asyncio.sleep(2.0 + LEASE_S)  # the bucket fills up again; what the processes leased has lapsed
    statuses: list[Counter[int]] = [Counter(), Counter()]
    started = time.monotonic()
    deadline = started + SECONDS

    async def send(process: int) -> None:
        http = processes[process][1]
        while time.monotonic() < deadline:
            statuses[process][(await http.get("/v1/programs", headers=headers)).status_code] += 1

    await asyncio.gather(*(send(process) for process in (0, 1) for _ in range(SENDERS_PER_PROCESS)))
    elapsed = time.monotonic() - started
    answered = sum(counts[200] for counts in statuses)
    allowed = 2 * RATE + RATE * elapsed  # the bucket starts full (the burst of twice the rate), then refills
    assert all(set(counts) <= {200, 429} for counts in statuses), statuses
    # Both processes were refused some calls: together they asked for more than the rate, and each was limited.
    assert all(counts[429] > 0 and counts[200] > 0 for counts in statuses), statuses
    assert abs(answered - allowed) <= 0.10 * allowed, (answered, allowed, statuses)
