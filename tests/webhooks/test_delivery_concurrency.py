"""Several workers delivering at once, on real transactions: every delivery is sent once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.tenancy import Tenant
from app.webhooks import delivery, service
from app.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import migrated_scratch_database


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_hooks") as url:
        yield url


@pytest.fixture
async def database(scratch_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = Database(create_engine(scratch_url, settings.model_copy(update={"database_url": scratch_url})))
    yield database
    await database.dispose()


async def test_two_workers_never_send_the_same_delivery(database: Database, settings: Settings) -> None:
    async with database.sessionmaker() as session, session.begin():
        partner = await catalog.create_partner(
            session, Actor.system("test"), PartnerCreate(kind=PartnerKind.bank, legal_name="并发银行")
        )
        created = await service.create_endpoint(
            session,
            settings,
            Actor.system("test"),
            Tenant.of_partner(partner.id),
            url="https://bank.example/hooks",
            event_types=["referral.status_changed"],
            description=None,
            enabled=True,
        )
        for _ in range(40):
            await service.enqueue_test(session, Tenant.everyone(Actor.system("test")), created.endpoint.id)
    seen: Counter[str] = Counter()

    async def partner_server(request: httpx.Request) -> httpx.Response:
        seen[request.headers["webhook-id"]] += 1
        await asyncio.sleep(0.01)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(partner_server)) as http:

        async def worker() -> int:
            sent = 0
            while batch := await delivery.deliver_due(
                database.sessionmaker, settings, http, limit=7, lease=timedelta(seconds=30)
            ):
                sent += batch
            return sent

        totals = await asyncio.gather(worker(), worker(), worker())
    assert sum(totals) == 40 and all(total > 0 for total in totals)
    assert len(seen) == 40 and set(seen.values()) == {1}
    async with database.sessionmaker() as session:
        statuses = Counter(
            (
                await session.scalars(
                    select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == created.endpoint.id)
                )
            ).all()
        )
    assert statuses == {DeliveryStatus.succeeded: 40}
