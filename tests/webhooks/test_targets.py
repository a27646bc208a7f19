"""Webhook targets under production rules: refused when set (creation and PATCH), and refused again at delivery
when the name resolves to an address that is not public, without connecting and without storing an answer."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core import outbound_urls
from app.core.config import Settings
from app.core.database import Database
from app.core.outbound_urls import outbound_client
from app.main import create_app
from app.webhooks.delivery import deliver_due
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories.referrals import PartnerDesk
from tests.factories.targets import REFUSED

ENDPOINTS = "/v1/webhook-endpoints"


@pytest.fixture
def production_rules(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private_targets": False})


@pytest.fixture
def app(production_rules: Settings, connection: AsyncConnection) -> FastAPI:
    return create_app(production_rules, Database(connection, join_savepoint=True))


async def _endpoint(client: httpx.AsyncClient, desk: PartnerDesk, url: str) -> httpx.Response:
    body = {"url": url, "event_types": ["referral.status_changed"]}
    return await client.post(ENDPOINTS, json=body, headers=desk.caller.headers)


@pytest.mark.parametrize("url", REFUSED)
async def test_a_refused_target_is_422_at_creation_and_on_patch_and_changes_nothing(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, url: str
) -> None:
    created = await _endpoint(client, bank, url)
    assert created.status_code == 422, created.text
    assert created.headers["content-type"].startswith("application/problem+json")
    assert "s3cret" not in created.text
    assert (
        await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.partner_id == bank.partner.id))
    ).all() == []

    good = (await _endpoint(client, bank, "https://hooks.partner.example/in")).json()
    patched = await client.patch(f"{ENDPOINTS}/{good['id']}", json={"url": url}, headers=bank.caller.headers)
    assert patched.status_code == 422, patched.text
    assert "s3cret" not in patched.text
    read = await client.get(f"{ENDPOINTS}/{good['id']}", headers=bank.caller.headers)
    assert read.json()["url"] == "https://hooks.partner.example/in"


async def test_a_target_is_stored_and_echoed_in_normal_form(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    created = await _endpoint(client, bank, "https://Hooks.Partner.EXAMPLE./in?v=1#top")
    assert created.status_code == 201, created.text
    assert created.json()["url"] == "https://hooks.partner.example/in?v=1"
    patched = await client.patch(
        f"{ENDPOINTS}/{created.json()['id']}", json={"url": "https://回调.example:8443/a"}, headers=bank.caller.headers
    )
    assert patched.json()["url"] == "https://" + "回调.example".encode("idna").decode() + ":8443/a"


# --- at delivery ------------------------------------------------------------------------------------------------


class Listener:
    """A TCP port on loopback that counts connections (and answers like a metadata service, were one to come)."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\nconnection: close\r\n\r\nAccessKeyId=AK1")
        await writer.drain()
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[tuple[Listener, int]]:
    listener = Listener()
    server = await asyncio.start_server(listener.handle, "127.0.0.1", 0)
    yield listener, int(server.sockets[0].getsockname()[1])
    server.close()


@pytest.mark.parametrize("answer", ["127.0.0.1", "100.100.100.200", "169.254.169.254", "fd00::1"])
async def test_a_name_resolving_to_a_non_public_address_is_refused_at_delivery_without_connecting(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    connection: AsyncConnection,
    production_rules: Settings,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    listener: tuple[Listener, int],
    answer: str,
) -> None:
    server, port = listener
    endpoint = (await _endpoint(client, bank, f"https://hooks.partner.example:{port}/in")).json()
    test = (await client.post(f"{ENDPOINTS}/{endpoint['id']}/test", headers=bank.caller.headers)).json()

    async def rebound(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(answer)]

    monkeypatch.setattr(outbound_urls, "resolve_host", rebound)
    database = Database(connection, join_savepoint=True)
    async with outbound_client(allow_private=False, timeout=5) as http:
        assert await deliver_due(database.sessionmaker, production_rules, http) == 1
    assert server.connections == 0
    delivery = await session.get(WebhookDelivery, test["id"], populate_existing=True)
    assert delivery is not None and delivery.status is DeliveryStatus.pending and delivery.last_status_code is None
    [attempt] = (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == test["id"]))).all()
    assert attempt.response_excerpt is None and "non-public" in (attempt.error or "")
    detail = (await client.get(f"/v1/webhook-deliveries/{test['id']}", headers=bank.caller.headers)).json()
    assert "AccessKeyId" not in str(detail)


async def test_a_target_stored_under_older_rules_is_refused_at_delivery(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    connection: AsyncConnection,
    production_rules: Settings,
    session: AsyncSession,
    listener: tuple[Listener, int],
) -> None:
    server, port = listener
    endpoint = (await _endpoint(client, bank, "https://hooks.partner.example/in")).json()
    for stored in (f"https://alice:s3cret@127.0.0.1:{port}/in", f"https://2130706433:{port}/in"):
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint["id"]).values(url=stored))
        await client.post(f"{ENDPOINTS}/{endpoint['id']}/test", headers=bank.caller.headers)
        async with outbound_client(allow_private=False, timeout=5) as http:
            assert await deliver_due(Database(connection, join_savepoint=True).sessionmaker, production_rules, http)
    assert server.connections == 0
    attempts = (await session.scalars(select(WebhookAttempt))).all()
    assert len(attempts) == 2 and all(attempt.response_excerpt is None for attempt in attempts)
    assert all(
        "UnsafeTarget" in (attempt.error or "") and "s3cret" not in (attempt.error or "") for attempt in attempts
    )
