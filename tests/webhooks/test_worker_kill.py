"""A worker killed (SIGKILL) in the middle of a delivery: after a restart the delivery is made, with the same
``webhook-id``, once the lease of the dead worker has run out. Real processes, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.tenancy import Tenant
from app.webhooks import service
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from tests.conftest import migrated_scratch_database


class Receiver:
    """A partner's HTTP endpoint on loopback: holds the first request unanswered, answers 200 afterwards."""

    def __init__(self) -> None:
        self.webhook_ids: list[str] = []
        self.first_arrived = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
        headers = {name.lower(): value for name, value in headers.items()}
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.webhook_ids.append(headers["webhook-id"])
        if len(self.webhook_ids) == 1:
            self.first_arrived.set()
            await asyncio.sleep(60)  # the worker dies while waiting for this answer
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_kill") as url:
        yield url


@pytest.fixture
async def database(scratch_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = Database(create_engine(scratch_url, settings.model_copy(update={"database_url": scratch_url})))
    yield database
    await database.dispose()


async def _worker(scratch_url: str) -> asyncio.subprocess.Process:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env.update(
        DATABASE_URL=scratch_url,
        ALLIANCE_WEBHOOK_LEASE_S="2",
        ALLIANCE_WEBHOOK_TIMEOUT_S="120",
        ALLIANCE_LOG_LEVEL="WARNING",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "worker",
        "--poll-interval",
        "0.2",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_killed_worker_loses_nothing(scratch_url: str, database: Database, settings: Settings) -> None:
    receiver = Receiver()
    port = await receiver.start()
    async with database.sessionmaker() as session, session.begin():
        partner = await catalog.create_partner(
            session, Actor.system("test"), PartnerCreate(kind=PartnerKind.bank, legal_name="断电银行")
        )
        endpoint = await service.create_endpoint(
            session,
            settings,
            Actor.system("test"),
            Tenant.of_partner(partner.id),
            url=f"http://127.0.0.1:{port}/hooks",
            event_types=["referral.status_changed"],
            description=None,
            enabled=True,
        )
        delivery = await service.enqueue_test(session, Tenant.everyone(Actor.system("test")), endpoint.endpoint.id)

    first = await _worker(scratch_url)
    try:
        await asyncio.wait_for(receiver.first_arrived.wait(), 60)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    async with database.sessionmaker() as session:
        mid = await session.get(WebhookDelivery, delivery.id)
        assert mid is not None and mid.status is DeliveryStatus.pending and mid.attempts == 1

    second = await _worker(scratch_url)
    try:
        for _ in range(300):
            async with database.sessionmaker() as session:
                done = await session.get(WebhookDelivery, delivery.id)
                if done is not None and done.status is DeliveryStatus.succeeded:
                    break
            await asyncio.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
        assert receiver.server is not None
        receiver.server.close()
    assert done is not None and done.status is DeliveryStatus.succeeded
    assert receiver.webhook_ids == [delivery.id, delivery.id]  # the same message, sent again after the lease
    async with database.sessionmaker() as session:
        attempts = (
            await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id))
        ).all()
    assert [attempt.status_code for attempt in attempts] == [200]
    assert second.returncode == 0
