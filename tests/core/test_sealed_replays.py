"""A secret shown once never sits in clear in the stored replay of the call that made it; the replay shows it."""

from __future__ import annotations

import base64

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk


async def _stored_replay(session: AsyncSession, key: str) -> str:
    """Everything the idempotency table holds for ``key``, as text."""
    row = (
        await session.execute(
            text("SELECT CAST(r.* AS text) FROM idempotency_records r WHERE key = :key"), {"key": key}
        )
    ).scalar_one()
    return str(row)


def _forms(secret: str) -> list[str]:
    """The secret as text, and its key material in base64 and hex (what a careless encoding would leave)."""
    material = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    return [secret, secret.split("_", 1)[1], material.hex(), base64.b64encode(material).decode()]


async def _post_twice(
    client: httpx.AsyncClient, path: str, body: dict[str, object], headers: dict[str, str], key: str
) -> tuple[httpx.Response, httpx.Response]:
    first = await client.post(path, json=body, headers=headers | {"Idempotency-Key": key})
    replay = await client.post(path, json=body, headers=headers | {"Idempotency-Key": key})
    return first, replay


async def test_a_webhook_signing_secret_is_sealed_in_the_stored_replay(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    body = {"url": "https://hooks.partner.example/in", "event_types": ["referral.status_changed"]}
    first, replay = await _post_twice(client, "/v1/webhook-endpoints", body, bank.caller.headers, "hook-once")
    assert first.status_code == replay.status_code == 201, first.text
    secret = first.json()["secret"]
    stored = await _stored_replay(session, "hook-once")
    assert first.json()["id"] in stored  # the replay is stored, with the endpoint ...
    assert not [form for form in _forms(secret) if form in stored]  # ... but not its secret
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()


async def test_an_oauth_client_secret_is_sealed_in_the_stored_replay(
    client: httpx.AsyncClient,
    caller: CallerFactory,
    make_partner,
    session: AsyncSession,  # type: ignore[no-untyped-def]
) -> None:
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    body = {"name": "Harbin Bank core", "kind": "partner", "partner_id": partner.id}
    first, replay = await _post_twice(client, "/v1/admin/clients", body, admin.headers, "client-once")
    assert first.status_code == replay.status_code == 201, first.text
    secret = first.json()["client_secret"]
    stored = await _stored_replay(session, "client-once")
    assert first.json()["id"] in stored
    assert not [form for form in _forms(secret) if form in stored]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    clients = await session.scalar(
        text("SELECT count(*) FROM oauth_clients WHERE partner_id = :partner"), {"partner": partner.id}
    )
    assert clients == 1  # the replay created nothing


async def test_a_client_without_a_secret_replays_its_null(
    client: httpx.AsyncClient,
    caller: CallerFactory,
    make_partner,  # type: ignore[no-untyped-def]
) -> None:
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    body = {
        "name": "bank with jwks_uri",
        "kind": "partner",
        "partner_id": partner.id,
        "auth_method": "private_key_jwt",
        "jwks_uri": "https://keys.bank.example/jwks.json",
    }
    first, replay = await _post_twice(client, "/v1/admin/clients", body, admin.headers, "jwt-once")
    assert first.status_code == replay.status_code == 201, first.text
    assert first.json()["client_secret"] is None and replay.json() == first.json()
