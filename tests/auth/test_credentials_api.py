from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.auth.models import ClientSecret
from tests.auth.helpers import partner_key, token_with_secret
from tests.conftest import CallerFactory

CLIENTS = "/v1/admin/clients"


async def test_admin_creates_a_partner_client_whose_secret_is_shown_once(
    client: httpx.AsyncClient,
    caller: CallerFactory,
    make_partner,
    session: AsyncSession,  # type: ignore[no-untyped-def]
) -> None:
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    created = await client.post(
        CLIENTS, json={"name": "Harbin Bank core", "kind": "partner", "partner_id": partner.id}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["client_secret"]
    assert secret.startswith("acs_")
    assert body["scopes"] == ["referrals:write", "referrals:read", "webhooks:manage", "statements:read", "claims:write"]
    stored = (await session.scalars(select(ClientSecret.secret_hash).where(ClientSecret.client_id == body["id"]))).one()
    assert secret not in stored and stored.startswith("$argon2id$")
    read = await client.get(f"{CLIENTS}/{body['id']}", headers=admin.headers)
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert (await token_with_secret(client, body["id"], secret)).status_code == 200
    events = (await session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == body["id"]))).all()
    assert "client.created" in events and "token.issued" in events


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "x", "kind": "partner"}, "partner_id"),
        ({"name": "x", "kind": "staff"}, "role"),
        ({"name": "x", "kind": "back_office", "scopes": ["referrals:write"]}, "allowance"),
        ({"name": "x", "kind": "back_office", "auth_method": "private_key_jwt"}, "jwks"),
        # Found by the schema fuzzer: an empty partner id passed the check and broke the foreign key (a 500).
        ({"name": "x", "kind": "back_office", "partner_id": ""}, "Only partner clients"),
    ],
)
async def test_invalid_client_configurations_are_422_and_create_nothing(
    client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession, payload: dict[str, object], message: str
) -> None:
    admin = await caller("staff", role="admin")
    before = len((await session.scalars(select(AuditEvent.id))).all())
    response = await client.post(CLIENTS, json=payload, headers=admin.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]
    assert len((await session.scalars(select(AuditEvent.id))).all()) == before


async def test_private_jwks_is_refused(client: httpx.AsyncClient, caller: CallerFactory, make_partner) -> None:  # type: ignore[no-untyped-def]
    admin = await caller("staff", role="admin")
    partner = await make_partner()
    key = partner_key()
    response = await client.post(
        CLIENTS,
        json={
            "name": "x",
            "kind": "partner",
            "partner_id": partner.id,
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [key.as_dict(private=True)]},
        },
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert "public keys only" in response.json()["detail"]


async def test_unknown_partner_is_404(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    response = await client.post(
        CLIENTS, json={"name": "x", "kind": "partner", "partner_id": "ptn_none"}, headers=admin.headers
    )
    assert response.status_code == 404


async def test_rotate_and_revoke_through_the_api(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    bank = await caller("partner")
    rotated = await client.post(
        f"{CLIENTS}/{bank.client.id}/rotate-secret", json={"grace_period_s": 0}, headers=admin.headers
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert (await token_with_secret(client, bank.client.id, bank.secret or "")).status_code == 401
    assert (await token_with_secret(client, bank.client.id, new_secret)).status_code == 200
    revoked = await client.post(f"{CLIENTS}/{bank.client.id}/revoke", headers=admin.headers)
    assert revoked.json()["status"] == "revoked"
    assert (await client.get("/v1/admin/audit-events", headers=bank.headers)).status_code == 401


async def test_client_list_is_paginated(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    for _ in range(3):
        await caller("back_office")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "kind": "back_office", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(CLIENTS, params=params, headers=admin.headers)).json()
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3


async def test_bad_cursor_is_a_400_problem(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    response = await client.get(CLIENTS, params={"cursor": "bm9wZQ"}, headers=admin.headers)
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-cursor")


@pytest.mark.parametrize("role", ["alliance_manager", "finance", "auditor"])
async def test_only_admins_manage_clients(client: httpx.AsyncClient, caller: CallerFactory, role: str) -> None:
    staff = await caller("staff", role=role)
    assert (await client.get(CLIENTS, headers=staff.headers)).status_code == 403
    assert (await client.post("/v1/admin/keys/rotate", headers=staff.headers)).status_code == 403


async def test_partner_tokens_are_refused_by_admin_routes(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    bank = await caller("partner")
    assert (await client.get(CLIENTS, headers=bank.headers)).status_code == 403


async def test_key_rotation_through_the_api(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    rotated = await client.post("/v1/admin/keys/rotate", headers=admin.headers)
    assert rotated.status_code == 200
    kids = {key["kid"] for key in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert rotated.json()["active_kid"] in kids and rotated.json()["retired_kid"] in kids
    assert (await client.get(CLIENTS, headers=admin.headers)).status_code == 200
