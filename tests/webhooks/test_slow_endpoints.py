"""A slow or dead endpoint never holds another endpoint's delivery: a worker with a real HTTP receiver on loopback,
where some endpoints hang beyond the timeout and another partner's endpoint answers at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, update

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.tenancy import Tenant
from app.webhooks import service
from app.webhooks.models import DeliveryStatus, WebhookDelivery
from app.worker.runner import Worker
from tests.conftest import eventually, migrated_scratch_database

TIMEOUT_S = 3.0  # the receiver's slow paths hang far longer


@dataclass
class Receiver:
    """Partners' endpoints: ``/hang…`` never answers, ``/ok`` answers 204 and notes when each message came; counts
    the requests open at once on each path."""

    arrived: dict[str, float] = field(default_factory=dict)
    open_now: Counter[str] = field(default_factory=Counter)
    most_open: Counter[str] = field(default_factory=Counter)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.open_now[path] += 1
        self.most_open[path] = max(self.most_open[path], self.open_now[path])
        try:
            if path.startswith("/hang"):  # until the sender gives up and closes the connection
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(), 60)
                return
            self.arrived[headers["webhook-id"]] = asyncio.get_running_loop().time()
            writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            await writer.drain()
        finally:
            self.open_now[path] -= 1
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_slow_hooks") as url:
        yield url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = int(server.sockets[0].getsockname()[1])
    yield receiver
    server.close()


@pytest.fixture
def slow_settings(settings: Settings, scratch_url: str) -> Settings:
    return settings.model_copy(update={"database_url": scratch_url, "webhook_timeout_s": TIMEOUT_S})


@pytest.fixture
async def database(scratch_url: str, slow_settings: Settings) -> AsyncIterator[Database]:
    database = Database(create_engine(scratch_url, slow_settings))
    async with database.sessionmaker() as session, session.begin():  # each test starts with an empty outbox
        await session.execute(update(WebhookDelivery).values(status=DeliveryStatus.failed))
    yield database
    await database.dispose()


async def _endpoint(database: Database, settings: Settings, url: str, *, queued: int, failures: int = 0) -> str:
    """A new partner's endpoint at ``url`` with ``queued`` test deliveries due."""
    async with database.sessionmaker() as session, session.begin():
        partner = await catalog.create_partner(
            session, Actor.system("test"), PartnerCreate(kind=PartnerKind.bank, legal_name="回调银行")
        )
        created = await service.create_endpoint(
            session,
            settings,
            Actor.system("test"),
            Tenant.of_partner(partner.id),
            url=url,
            event_types=["referral.status_changed"],
            description=None,
            enabled=True,
        )
        created.endpoint.consecutive_failures = failures
        for _ in range(queued):
            await service.enqueue_test(session, Tenant.everyone(Actor.system("test")), created.endpoint.id)
        return created.endpoint.id


async def _queue_one(database: Database, endpoint_id: str) -> str:
    async with database.sessionmaker() as session, session.begin():
        return (await service.enqueue_test(session, Tenant.everyone(Actor.system("test")), endpoint_id)).id


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run(poll_interval_s=0.2))
    try:
        yield
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, TIMEOUT_S + 10)
        await worker.http.aclose()


async def _arrives_within(receiver: Receiver, message_id: str, since: float, seconds: float) -> None:
    async def arrived() -> bool:
        return message_id in receiver.arrived

    await eventually(arrived, f"delivery {message_id}", seconds + 5)
    assert receiver.arrived[message_id] - since < seconds, receiver.arrived[message_id] - since


async def test_a_hanging_endpoint_never_holds_another_partners_delivery(
    database: Database, slow_settings: Settings, receiver: Receiver
) -> None:
    await _endpoint(database, slow_settings, receiver.url("/hang"), queued=60)
    healthy = await _endpoint(database, slow_settings, receiver.url("/ok"), queued=0)
    queued_behind = await _queue_one(database, healthy)  # due after all sixty of the hanging endpoint
    clock = asyncio.get_running_loop()
    async with running(Worker(database, slow_settings)):
        await _arrives_within(receiver, queued_behind, clock.time(), 2.0)
        await asyncio.sleep(0.5)  # the hanging endpoint's sends are in flight now
        fresh = await _queue_one(database, healthy)
        await _arrives_within(receiver, fresh, clock.time(), 2.0)
        assert receiver.most_open["/hang"] == slow_settings.webhook_per_endpoint_concurrency
    async with database.sessionmaker() as session:
        statuses = Counter(
            (await session.scalars(select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == healthy))).all()
        )
    assert statuses == {DeliveryStatus.succeeded: 2}  # each sent once


async def test_failing_endpoints_get_one_send_each_and_never_the_whole_pool(
    database: Database, slow_settings: Settings, receiver: Receiver
) -> None:
    settings = slow_settings.model_copy(update={"webhook_concurrency": 10})
    for number in range(12):
        await _endpoint(database, settings, receiver.url(f"/hang/{number}"), queued=3, failures=3)
    healthy = await _endpoint(database, settings, receiver.url("/ok"), queued=0)
    clock = asyncio.get_running_loop()
    async with running(Worker(database, settings)):
        await asyncio.sleep(0.5)  # every slot that failing endpoints may take is taken
        fresh = await _queue_one(database, healthy)
        await _arrives_within(receiver, fresh, clock.time(), 2.0)
        hanging = {path: count for path, count in receiver.open_now.items() if path.startswith("/hang")}
        assert sum(hanging.values()) == settings.webhook_concurrency // 2
        assert max(receiver.most_open[path] for path in hanging) == 1


async def test_an_idle_pool_claims_less_and_less_often_and_still_finds_new_work(
    database: Database, slow_settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing due, the wait between claims doubles (up to ``IDLE_MAX_S``) instead of claiming every poll:
    a worker processing a batch is not taxed by an empty outbox. A delivery that falls due is still claimed."""
    from app.webhooks.delivery import DeliveryPool

    claims = 0
    original = DeliveryPool._claim

    async def counted(self: DeliveryPool) -> int:
        nonlocal claims
        claims += 1
        return await original(self)

    monkeypatch.setattr(DeliveryPool, "_claim", counted)
    worker = Worker(database, slow_settings)
    stop = asyncio.Event()
    pool = asyncio.create_task(worker.deliveries.run(stop, idle_s=0.05))
    await asyncio.sleep(1.5)  # polling every 0.05 s would claim about 30 times
    idle_claims = claims
    await _endpoint(database, slow_settings, receiver.url("/ok"), queued=1)
    await eventually(lambda: asyncio.sleep(0, bool(receiver.arrived)), "the new delivery", timeout_s=5)
    stop.set()
    await pool
    await worker.http.aclose()
    assert 3 <= idle_claims <= 8, idle_claims
