"""An admin-set ``jwks_uri`` obeys the rules of every outbound target: refused when set, refused at each fetch."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.models import OAuthClient
from app.auth.server import JwksFetcher
from app.core import outbound_urls
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from tests.conftest import CallerFactory
from tests.factories.targets import REFUSED

CLIENTS = "/v1/admin/clients"


@pytest.fixture
def production_rules(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private_targets": False})


@pytest.fixture
def app(production_rules: Settings, connection: AsyncConnection) -> FastAPI:
    return create_app(production_rules, Database(connection, join_savepoint=True))


def _client_body(partner_id: str, jwks_uri: str) -> dict[str, object]:
    return {
        "name": "bank with jwks_uri",
        "kind": "partner",
        "partner_id": partner_id,
        "auth_method": "private_key_jwt",
        "jwks_uri": jwks_uri,
    }


@pytest.mark.parametrize("uri", REFUSED)
async def test_a_refused_jwks_uri_is_422_and_creates_nothing(
    client: AsyncClient,
    caller: CallerFactory,
    make_partner,
    session: AsyncSession,
    uri: str,  # type: ignore[no-untyped-def]
) -> None:
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    response = await client.post(CLIENTS, json=_client_body(partner.id, uri), headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "s3cret" not in response.text
    assert (await session.scalars(select(OAuthClient).where(OAuthClient.partner_id == partner.id))).all() == []


async def test_a_jwks_uri_is_stored_in_normal_form(
    client: AsyncClient,
    caller: CallerFactory,
    make_partner,  # type: ignore[no-untyped-def]
) -> None:
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    body = _client_body(partner.id, "https://Keys.Bank.EXAMPLE./jwks.json#k")
    response = await client.post(CLIENTS, json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["jwks_uri"] == "https://keys.bank.example/jwks.json"


class Listener:
    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[tuple[Listener, int]]:
    listener = Listener()
    server = await asyncio.start_server(listener.handle, "127.0.0.1", 0)
    yield listener, int(server.sockets[0].getsockname()[1])
    server.close()


@pytest.mark.parametrize("answer", ["127.0.0.1", "100.100.100.200"])
async def test_the_fetcher_never_connects_to_a_name_resolving_to_a_non_public_address(
    production_rules: Settings, monkeypatch: pytest.MonkeyPatch, listener: tuple[Listener, int], answer: str
) -> None:
    server, port = listener
    lookups: list[str] = []

    async def rebound(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        return [ipaddress.ip_address(answer)]

    monkeypatch.setattr(outbound_urls, "resolve_host", rebound)
    fetcher = JwksFetcher(production_rules)
    assert await fetcher.get(f"https://keys.bank.example:{port}/jwks.json") is None
    assert lookups == ["keys.bank.example"] and server.connections == 0


async def test_the_fetcher_refuses_a_uri_stored_under_older_rules(
    production_rules: Settings, listener: tuple[Listener, int]
) -> None:
    server, port = listener
    fetcher = JwksFetcher(production_rules)
    for stored in (f"https://alice:s3cret@127.0.0.1:{port}/jwks.json", f"https://2130706433:{port}/jwks.json"):
        assert await fetcher.get(stored) is None
    assert server.connections == 0
