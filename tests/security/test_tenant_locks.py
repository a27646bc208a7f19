"""Another partner's call never reads, locks or waits for the owner's rows: the tenant is in the lookup's WHERE.

On a scratch database where every step commits, a second connection holds ``FOR UPDATE`` locks on every row of
partner A's objects while partner B calls each partner route with a path id on them. A lookup that fetched the row
``FOR UPDATE`` and checked its owner afterwards would wait for that lock (seen in ``pg_blocking_pids``); one that
filters by partner in the statement never touches A's row and answers 404 at once. And every SQL statement B's
request sends with the id of one of A's objects also filters by B's partner id (a fetch-then-check without a lock
reads A's row: it would name A's id alone).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.conftest import Caller, migrated_scratch_database, new_caller
from tests.factories.referrals import PartnerDesk
from tests.security.policy import partner_routes_with_ids
from tests.security.principals import disable_rate_limit
from tests.security.tenant_objects import FOOTPRINTS, Call, Objects, new_desk, prepare, send, without_factory

T = TypeVar("T")
PATIENCE_S = 15.0
SCOPED = re.compile(r"\bWHERE\b.*\bpartner_id\s*=", re.DOTALL)


class CommittedWorld:
    """A scratch database: each step is its own committed transaction, as in production."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, database: Database) -> None:
        self.app, self.client, self.database = app, client, database

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.database.sessionmaker() as session, session.begin():
            return await work(session)

    async def caller(self, kind: str, *, role: str | None = None, partner_id: str | None = None) -> Caller:
        async with self.database.sessionmaker() as session, session.begin():
            return await new_caller(self.app, session, kind, role=role, partner_id=partner_id)


@pytest.fixture(scope="module")
def locks_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_locks") as url:
        yield url


@pytest.fixture
async def world(locks_database: str, settings: Settings) -> AsyncIterator[CommittedWorld]:
    scratch = settings.model_copy(update={"database_url": locks_database})
    database = Database(create_engine(locks_database, scratch))
    app = create_app(scratch, database)
    disable_rate_limit(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield CommittedWorld(app, client, database)
    await database.dispose()


async def _lock_rows(holder: AsyncConnection, objects: Objects, call: Call) -> int:
    """Lock every row of A's objects named by the call; returns how many."""
    locked = 0
    for name in call.parameters:
        for table, column in FOOTPRINTS[name]:
            rows = await holder.execute(
                text(f"SELECT 1 FROM {table} WHERE {column} = :id FOR UPDATE"),
                {"id": objects.ids[name]},
            )
            locked += len(rows.all())
    return locked


async def _waits_for(holder: AsyncConnection, holder_pid: int, request: asyncio.Task[httpx.Response]) -> bool:
    """Whether the request ends up waiting for one of the holder's locks (False once it answered)."""
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not request.done():
        blocked = await holder.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
            {"holder": holder_pid},
        )
        if blocked:
            return True
        assert asyncio.get_running_loop().time() < deadline, "the request neither answered nor waited for a lock"
        await asyncio.sleep(0.02)
    return False


def _unscoped(sent: list[tuple[str, tuple[object, ...]]], owned_ids: set[str], partner_id: str) -> list[str]:
    """The statements that name one of A's ids without filtering by the calling partner."""
    flat = [(" ".join(statement.split()), parameters) for statement, parameters in sent]
    return [
        statement[statement.find(" FROM ") :][:300]
        for statement, parameters in flat
        if owned_ids & {value for value in parameters if isinstance(value, str)}
        and not (SCOPED.search(statement) and partner_id in parameters)
    ]


@dataclass
class Observed:
    waited: bool  # for one of the holder's locks
    response: httpx.Response
    sent: list[tuple[str, tuple[object, ...]]]  # every SQL statement of the request, with its parameters


class LockHolder:
    """A second connection that locks A's rows while one call runs, and watches what the call does."""

    def __init__(self, world: CommittedWorld, url: str) -> None:
        self.world = world
        self.engine = create_async_engine(url, pool_size=1)

    async def observe(self, objects: Objects, call: Call, who: PartnerDesk) -> Observed:
        sent: list[tuple[str, tuple[object, ...]]] = []

        def record(_connection: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
            sent.append((statement, tuple(parameters) if isinstance(parameters, (list, tuple)) else ()))

        app_engine = self.world.database.bind.sync_engine
        async with self.engine.connect() as holder:
            await holder.begin()
            holder_pid = await holder.scalar(text("SELECT pg_backend_pid()"))
            assert await _lock_rows(holder, objects, call) >= len(call.parameters)
            event.listen(app_engine, "before_cursor_execute", record)
            request = asyncio.create_task(send(self.world, call, who))
            try:
                waited = await _waits_for(holder, holder_pid, request)
            finally:
                await holder.rollback()
                response = await request
                event.remove(app_engine, "before_cursor_execute", record)
        return Observed(waited, response, sent)


@pytest.fixture
async def lock_holder(world: CommittedWorld, locks_database: str) -> AsyncIterator[LockHolder]:
    holder = LockHolder(world, locks_database)
    yield holder
    await holder.engine.dispose()


async def test_another_partners_call_neither_reads_nor_locks_the_owners_rows(
    world: CommittedWorld, lock_holder: LockHolder
) -> None:
    routes = partner_routes_with_ids(world.app)
    assert routes and not (missing := without_factory(routes)), "\n".join(missing)
    objects = Objects(world, await new_desk(world, "甲方银行"))
    intruder = await new_desk(world, "乙方银行")
    failures = []
    for method, path in routes:
        call = await prepare(objects, method, path)
        seen = await lock_holder.observe(objects, call, intruder)
        if seen.waited:
            failures.append(f"{method} {path} by another partner waited for a lock on A's rows")
        if seen.response.status_code != 404:
            failures.append(f"{method} {path} by another partner: {seen.response.status_code} {seen.response.text}")
        owned = {objects.ids[name] for name in call.parameters}
        failures.extend(
            f"{method} {path} read A's row unscoped: {statement}"
            for statement in _unscoped(seen.sent, owned, intruder.partner.id)
        )
    assert not failures, "\n".join(failures)

    # The watch itself works: the owner's own withdrawal does lock its referral, and is seen waiting for it.
    withdrawal = await prepare(objects, "POST", "/v1/referrals/{referral_id}/withdraw")
    seen = await lock_holder.observe(objects, withdrawal, objects.owner)
    assert seen.waited and seen.response.status_code == 200, seen.response.text
