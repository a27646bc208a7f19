from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service
from app.auth.deps import Principal, requires
from app.auth.keys import rotate_signing_key
from app.catalog.models import PartnerStatus
from app.catalog.service import change_partner_status
from app.core.config import Settings
from tests.auth.helpers import token_with_secret
from tests.conftest import CallerFactory

AUDIT = "/v1/admin/audit-events"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.issuer,
        "aud": settings.issuer,
        "sub": "cli_x",
        "client_id": "cli_x",
        "iat": now,
        "exp": now + 600,
        "jti": "j1",
        "scope": "audit:read",
        "kind": "staff",
    }
    claims.update(overrides)
    return claims


async def test_no_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(AUDIT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_valid_token_with_scope_passes(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    response = await client.get(AUDIT, headers=admin.headers)
    assert response.status_code == 200
    assert "data" in response.json()


async def test_missing_scope_is_403(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    finance = await caller("staff", role="finance")
    response = await client.get(AUDIT, headers=finance.headers)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/insufficient-scope")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_narrowed_token_lacks_the_scopes_it_did_not_ask_for(
    client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    admin = await caller("staff", role="admin", scopes=["clients:manage"])
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 403


@pytest.mark.parametrize(
    "forgery",
    ["expired", "tampered", "other_key", "alg_none", "hs256_public_key", "other_audience", "not_at_jwt", "garbage"],
)
async def test_forged_or_unusable_tokens_are_401(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    session: AsyncSession,
    settings: Settings,
    forgery: str,
) -> None:
    admin = await caller("staff", role="admin")
    key: ECKey = await app.state.keyring.signing_key(session)
    base = _claims(settings, sub=admin.client.id, client_id=admin.client.id)
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    if forgery == "expired":
        token = jwt.encode(header, {**base, "iat": 1_600_000_000, "exp": 1_600_000_600}, key)
    elif forgery == "tampered":
        head, _, signature = admin.token.split(".")
        token = ".".join([head, _b64({**base, "scope": "audit:read keys:manage"}), signature])
    elif forgery == "other_key":
        stranger = ECKey.generate_key("P-256", parameters={"kid": key.kid, "alg": "ES256"}, private=True)
        token = jwt.encode(header, base, stranger)
    elif forgery == "alg_none":
        token = ".".join([_b64({"alg": "none", "typ": "at+jwt", "kid": key.kid}), _b64(base), ""])
    elif forgery == "hs256_public_key":
        public_pem = key.as_pem(private=False)
        import hashlib
        import hmac

        signing_input = f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': key.kid})}.{_b64(base)}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        token = signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
        assert OctKey  # the library refuses to build this key itself; the MAC is computed by hand
    elif forgery == "other_audience":
        token = jwt.encode(header, {**base, "aud": "https://other-api.example"}, key)
    elif forgery == "not_at_jwt":
        token = jwt.encode({**header, "typ": "JWT"}, base, key)
    else:
        token = "not.a.jwt"
    response = await client.get(AUDIT, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["type"].endswith("/invalid-token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_of_suspended_partner_stops_at_once(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession
) -> None:
    @app.get("/_test/partner-only")
    async def partner_only(principal: Principal = requires("referrals:read")) -> dict[str, str | None]:
        return {"partner_id": principal.partner_id}

    bank = await caller("partner")
    first = await client.get("/_test/partner-only", headers=bank.headers)
    assert first.json() == {"partner_id": bank.partner_id}
    await change_partner_status(session, Actor.system("test"), bank.partner_id or "", PartnerStatus.suspended, "test")
    assert (await client.get("/_test/partner-only", headers=bank.headers)).status_code == 401


async def test_revoked_client_tokens_stop_at_once(
    client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession
) -> None:
    admin = await caller("staff", role="admin")
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200
    await service.revoke_client(session, Actor.system("test"), admin.client.id)
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 401


async def test_revocation_endpoint_stops_the_token_at_once(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    issued = await token_with_secret(client, admin.client.id, admin.secret or "")
    token = issued.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get(AUDIT, headers=bearer)).status_code == 200
    revoked = await client.post("/oauth/revoke", data={"token": token}, auth=(admin.client.id, admin.secret or ""))
    assert revoked.status_code == 200
    assert (await client.get(AUDIT, headers=bearer)).status_code == 401
    introspected = await client.post(
        "/oauth/introspect", data={"token": token}, auth=(admin.client.id, admin.secret or "")
    )
    assert introspected.json() == {"active": False}


async def test_a_client_cannot_revoke_another_clients_token(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    bank = await caller("partner")
    revoked = await client.post("/oauth/revoke", data={"token": admin.token}, auth=(bank.client.id, bank.secret or ""))
    assert revoked.status_code == 200
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200


async def test_revocation_needs_client_authentication(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    admin = await caller("staff", role="admin")
    response = await client.post("/oauth/revoke", data={"token": admin.token}, auth=(admin.client.id, "acs_wrong"))
    assert response.status_code == 401
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200


async def test_introspection(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    bank = await caller("partner")
    other = await caller("partner")
    own = await client.post("/oauth/introspect", data={"token": bank.token}, auth=(bank.client.id, bank.secret or ""))
    body = own.json()
    assert body["active"] is True
    assert body["client_id"] == bank.client.id
    assert body["partner_id"] == bank.partner_id
    foreign = await client.post(
        "/oauth/introspect", data={"token": bank.token}, auth=(other.client.id, other.secret or "")
    )
    assert foreign.json() == {"active": False}


async def test_key_rotation_keeps_issued_tokens_valid(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession, settings: Settings
) -> None:
    admin = await caller("staff", role="admin")
    old_kid = json.loads(base64.urlsafe_b64decode(admin.token.split(".")[0] + "=="))["kid"]
    retired, active = await rotate_signing_key(session, settings)
    assert retired == old_kid
    app.state.keyring.invalidate()
    published = {key["kid"] for key in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old_kid, active}
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200
    fresh = await token_with_secret(client, admin.client.id, admin.secret or "")
    new_kid = json.loads(base64.urlsafe_b64decode(fresh.json()["access_token"].split(".")[0] + "=="))["kid"]
    assert new_kid == active
    assert (
        await client.get(AUDIT, headers={"Authorization": "Bearer " + fresh.json()["access_token"]})
    ).status_code == 200


async def test_jwks_never_publishes_private_material(client: httpx.AsyncClient) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert keys
    assert all("d" not in key and key["kty"] == "EC" and key["alg"] == "ES256" for key in keys)


async def test_metadata_document(client: httpx.AsyncClient, settings: Settings) -> None:
    document = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert document["issuer"] == settings.issuer
    assert document["token_endpoint"] == settings.issuer + "/oauth/token"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]


async def test_api_rate_limit_answers_429_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, caller: CallerFactory
) -> None:
    from app.auth.limits import TokenBuckets

    app.state.api_rate_limits = TokenBuckets(default_rate=2)
    admin = await caller("staff", role="admin")
    statuses = [(await client.get(AUDIT, headers=admin.headers)).status_code for _ in range(6)]
    assert statuses[:4] == [200, 200, 200, 200]
    limited = await client.get(AUDIT, headers=admin.headers)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
