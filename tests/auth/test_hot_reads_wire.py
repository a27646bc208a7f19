"""Hot reads as production runs them: the real app served by uvicorn on a port, its own engine and pool on a
committed scratch database, every statement a pooled connection sends logged by asyncpg. A warm hot read is one
statement, with no ``BEGIN``, ``COMMIT`` nor ``ROLLBACK``; the pool does not grow past its size under concurrent
calls and no connection is left in a transaction; a revocation is still refused within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.service import Actor
from app.auth import service
from app.auth.scopes import PrincipalKind, StaffRole
from app.catalog import service as catalog_service
from app.catalog.models import Partner, PartnerKind, PartnerStatus
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.auth.helpers import token_with_secret
from tests.conftest import _asyncpg_dsn, eventually, migrated_scratch_database
from tests.core.test_serve import free_port
from tests.factories.referrals import make_program

ACTOR = Actor.system("test")
PROGRAMS = "/v1/programs"
AUDIT = "/v1/admin/audit-events?limit=1"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "SAVEPOINT", "RELEASE")
WITHIN_S = 1.0


@dataclass
class Served:
    app: FastAPI
    engine: AsyncEngine
    http: httpx.AsyncClient
    url: str
    statements: list[str] = field(default_factory=list)
    connects: int = 0

    async def logged(self) -> list[str]:
        """What the pool's connections sent since the last call (asyncpg calls its loggers with ``call_soon``)."""
        await asyncio.sleep(0.01)
        sent, self.statements[:] = list(self.statements), []
        return sent


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_hot_wire") as url:
        yield url


@pytest.fixture
async def served(scratch_url: str, settings: Settings) -> AsyncIterator[Served]:
    scratch = settings.model_copy(update={"database_url": scratch_url, "rate_limit_per_second": 100_000})
    engine = create_engine(scratch_url, scratch)  # as production makes it: no pre-ping, its pool size
    app = create_app(scratch, Database(engine))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    running = Served(app, engine, httpx.AsyncClient(base_url=base_url, timeout=10), scratch_url)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        running.connects += 1
        dbapi_connection._connection.add_query_logger(lambda query: running.statements.append(query.query))

    event.listen(engine.sync_engine, "connect", on_connect)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server), "the server")
        await eventually(lambda: _listening(app), "the standing notice listener")
        yield running
    finally:
        await running.http.aclose()
        server.should_exit = True
        await serving


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def _listening(app: FastAPI) -> bool:
    return bool(app.state.token_standings.listening)


@dataclass
class Partnered:
    partner: Partner
    client_id: str
    secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _partner_with_programs(served: Served) -> Partnered:
    async with Database(served.engine).sessionmaker() as setup, setup.begin():
        partner = await catalog_service.create_partner(
            setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="招商银行股份有限公司")
        )
        for name in ("银证合作", "代发工资"):
            await make_program(setup, partner, name=name)
        created = await service.create_client(
            setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=partner.id
        )
    assert created.secret is not None
    answer = await token_with_secret(served.http, created.client.id, created.secret)
    assert answer.status_code == 200, answer.text
    return Partnered(partner, created.client.id, created.secret, answer.json()["access_token"])


async def _admin_headers(served: Served) -> dict[str, str]:
    async with Database(served.engine).sessionmaker() as setup, setup.begin():
        created = await service.create_client(
            setup, ACTOR, name="admin", kind=PrincipalKind.staff, role=StaffRole.admin
        )
    assert created.secret is not None
    answer = await token_with_secret(served.http, created.client.id, created.secret)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _controls_transactions(statement: str) -> bool:
    return statement.strip().upper().startswith(TRANSACTION_CONTROL)


async def test_a_warm_hot_read_is_one_statement_outside_any_transaction(served: Served) -> None:
    bank = await _partner_with_programs(served)
    admin = await _admin_headers(served)
    for path, headers in ((PROGRAMS, bank.headers), (AUDIT, admin)):
        for _ in range(2):  # the first calls learn the token, its key and its standing
            assert (await served.http.get(path, headers=headers)).status_code == 200
        await served.logged()

        answer = await served.http.get(path, headers=headers)

        assert answer.status_code == 200, answer.text
        sent = await served.logged()
        assert len(sent) == 1, sent
        assert sent[0].lstrip().upper().startswith("SELECT"), sent
    assert len(answer.json()["data"]) == 1  # the last answer: a page of one audit event (creating clients is audited)
    programs = (await served.http.get(PROGRAMS, headers=bank.headers)).json()["data"]
    assert sorted(program["name"] for program in programs) == ["代发工资", "银证合作"]


async def test_concurrent_hot_reads_keep_to_the_pool_and_leave_no_transaction_open(served: Served) -> None:
    bank = await _partner_with_programs(served)
    admin = await _admin_headers(served)
    assert (await served.http.get(PROGRAMS, headers=bank.headers)).status_code == 200
    assert (await served.http.get(AUDIT, headers=admin)).status_code == 200
    await served.logged()
    gate = asyncio.Semaphore(40)

    async def call(path: str, headers: dict[str, str]) -> int:
        async with gate:
            return (await served.http.get(path, headers=headers)).status_code

    calls = [call(PROGRAMS, bank.headers) for _ in range(150)] + [call(AUDIT, admin) for _ in range(150)]
    statuses = await asyncio.gather(*calls)

    assert set(statuses) == {200}
    sent = await served.logged()
    assert len(sent) == len(calls), "one statement per call"
    assert not [statement for statement in sent if _controls_transactions(statement)]
    settings: Settings = served.app.state.settings
    assert served.connects <= settings.db_pool_size
    assert served.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    watcher = await asyncpg.connect(**_asyncpg_dsn(served.url))  # type: ignore[arg-type]
    try:
        open_transactions = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'alliance' AND state LIKE 'idle in transaction%'"
        )
    finally:
        await watcher.close()
    assert open_transactions == 0


async def _revoke_token(served: Served, bank: Partnered) -> None:
    answer = await served.http.post("/oauth/revoke", data={"token": bank.token}, auth=(bank.client_id, bank.secret))
    assert answer.status_code == 200, answer.text


async def _revoke_client(served: Served, bank: Partnered) -> None:  # as `alliance clients revoke` does
    async with Database(served.engine).sessionmaker() as session, session.begin():
        await service.revoke_client(session, ACTOR, bank.client_id)


async def _suspend_partner(served: Served, bank: Partnered) -> None:
    async with Database(served.engine).sessionmaker() as session, session.begin():
        await catalog_service.change_partner_status(session, ACTOR, bank.partner.id, PartnerStatus.suspended, "test")


@pytest.mark.parametrize("revoke", [_revoke_token, _revoke_client, _suspend_partner])
async def test_a_revocation_is_refused_within_a_second(
    served: Served, revoke: Callable[[Served, Partnered], Awaitable[None]]
) -> None:
    bank = await _partner_with_programs(served)
    for _ in range(2):
        assert (await served.http.get(PROGRAMS, headers=bank.headers)).status_code == 200
    await served.logged()
    assert (await served.http.get(PROGRAMS, headers=bank.headers)).status_code == 200
    assert len(await served.logged()) == 1  # the standing is known: not read again

    await revoke(served, bank)
    changed_at = time.monotonic()
    status = 200
    while status == 200 and time.monotonic() - changed_at < WITHIN_S + 0.5:
        status = (await served.http.get(PROGRAMS, headers=bank.headers)).status_code
        await asyncio.sleep(0.01)

    assert status == 401
    assert time.monotonic() - changed_at < WITHIN_S
