from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.audit.models import AuditEvent
from app.core import clock
from app.core.config import Settings
from app.core.database import Database
from app.webhooks.delivery import DISABLE_AFTER_FAILURES, RETRY_DELAYS, deliver_due
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories.referrals import PartnerDesk, individual


class Receiver:
    """A partner's endpoint as an httpx transport: records requests, answers with the next status."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, text="ok" if status < 300 else "busy")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


@pytest.fixture
def database(connection: AsyncConnection) -> Database:
    return Database(connection, join_savepoint=True)


async def _subscribed(client: httpx.AsyncClient, desk: PartnerDesk) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://bank.example/hooks", "event_types": ["referral.status_changed"]},
        headers=desk.caller.headers,
    )
    return dict(response.json())


async def test_delivery_is_signed_per_standard_webhooks(
    client: httpx.AsyncClient, bank: PartnerDesk, database: Database, settings: Settings, session: AsyncSession
) -> None:
    endpoint = await _subscribed(client, bank)
    await client.post("/v1/referrals", json=individual(bank.program.id, "SIGNED-1"), headers=bank.headers())
    receiver = Receiver(200)
    async with receiver.client() as http:
        assert await deliver_due(database.sessionmaker, settings, http) == 1
    [request] = receiver.requests
    payload = Webhook(endpoint["secret"]).verify(request.content, dict(request.headers))
    assert payload["type"] == "referral.status_changed"
    assert payload["data"]["external_ref"] == "SIGNED-1"
    delivery = (
        await session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint["id"]))
    ).one()
    await session.refresh(delivery)
    assert request.headers["webhook-id"] == delivery.id
    assert delivery.status is DeliveryStatus.succeeded and delivery.attempts == 1
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(request.content, dict(request.headers))


async def test_both_secrets_sign_during_rotation(
    client: httpx.AsyncClient, bank: PartnerDesk, database: Database, settings: Settings
) -> None:
    endpoint = await _subscribed(client, bank)
    rotated = await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=bank.caller.headers)
    await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=bank.caller.headers)
    receiver = Receiver(200)
    async with receiver.client() as http:
        await deliver_due(database.sessionmaker, settings, http)
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], rotated.json()["secret"]):
        assert Webhook(secret).verify(request.content, dict(request.headers))["type"] == "webhook.test"


async def test_retry_schedule_then_dead_letter_then_manual_retry(
    client: httpx.AsyncClient, bank: PartnerDesk, database: Database, settings: Settings, session: AsyncSession
) -> None:
    endpoint = await _subscribed(client, bank)
    test = (await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=bank.caller.headers)).json()
    receiver = Receiver(503)
    async with receiver.client() as http:
        for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
            before = clock.now()
            assert await deliver_due(database.sessionmaker, settings, http) == 1
            delivery = await session.get(WebhookDelivery, test["id"], populate_existing=True)
            assert delivery is not None and delivery.attempts == attempt
            if delay is None:
                assert delivery.status is DeliveryStatus.failed
            else:
                assert delivery.status is DeliveryStatus.pending
                assert before + delay <= delivery.next_attempt_at <= clock.now() + delay
                assert await deliver_due(database.sessionmaker, settings, http) == 0  # not due yet
                await session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id == test["id"]).values(next_attempt_at=clock.now())
                )
    assert sum(RETRY_DELAYS, timedelta()) > timedelta(days=3)
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1
    detail = (await client.get(f"/v1/webhook-deliveries/{test['id']}", headers=bank.caller.headers)).json()
    assert len(detail["attempt_log"]) == len(RETRY_DELAYS) + 1
    assert detail["attempt_log"][0]["status_code"] == 503 and detail["attempt_log"][0]["response_excerpt"] == "busy"

    retried = await client.post(f"/v1/webhook-deliveries/{test['id']}/retry", headers=bank.caller.headers)
    assert retried.json()["status"] == "pending"
    async with Receiver(200).client() as http:
        assert await deliver_due(database.sessionmaker, settings, http) == 1
    delivery = await session.get(WebhookDelivery, test["id"], populate_existing=True)
    assert delivery is not None and delivery.status is DeliveryStatus.succeeded


async def test_endpoint_is_disabled_after_repeated_failure_and_says_so(
    client: httpx.AsyncClient, bank: PartnerDesk, database: Database, settings: Settings, session: AsyncSession
) -> None:
    endpoint = await _subscribed(client, bank)
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint["id"])
        .values(consecutive_failures=DISABLE_AFTER_FAILURES - 1)
    )
    await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=bank.caller.headers)
    await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=bank.caller.headers)
    async with Receiver(500).client() as http:
        await deliver_due(database.sessionmaker, settings, http, limit=1)
        await session.execute(update(WebhookDelivery).values(next_attempt_at=clock.now()))
        assert await deliver_due(database.sessionmaker, settings, http) == 0  # disabled: nothing is claimed
    read = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=bank.caller.headers)).json()
    assert read["enabled"] is False and "consecutive failed" in read["disabled_reason"]
    assert (await session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.disabled"))).one()
    reenabled = await client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=bank.caller.headers
    )
    assert reenabled.json()["consecutive_failures"] == 0
    async with Receiver(200).client() as http:
        assert await deliver_due(database.sessionmaker, settings, http) == 2  # nothing was lost meanwhile


async def test_unreachable_target_is_an_attempt_with_an_error(
    client: httpx.AsyncClient, bank: PartnerDesk, database: Database, settings: Settings, session: AsyncSession
) -> None:
    endpoint = await _subscribed(client, bank)
    await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=bank.caller.headers)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        await deliver_due(database.sessionmaker, settings, http)
    attempt = (await session.scalars(select(WebhookAttempt))).one()
    assert attempt.status_code is None and "ConnectError" in (attempt.error or "")
