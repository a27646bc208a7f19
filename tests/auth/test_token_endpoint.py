from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from joserfc import jws
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.auth import service
from app.auth.models import AuthMethod, ClientSecret
from app.auth.scopes import PARTNER_SCOPES, PrincipalKind
from app.catalog.models import PartnerStatus
from app.catalog.service import change_partner_status
from app.core import clock
from app.core.config import Settings
from tests.auth.helpers import client_assertion, partner_key, token_with_assertion, token_with_secret


async def test_client_secret_basic_issues_an_rfc9068_token(
    client: httpx.AsyncClient, partner_client: service.NewClient, settings: Settings
) -> None:
    response = await token_with_secret(client, partner_client.client.id, partner_client.secret or "")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_s == 600
    assert set(body["scope"].split()) == set(PARTNER_SCOPES)
    token = jws.extract_compact(body["access_token"].encode())
    assert token.protected["typ"] == "at+jwt"
    assert token.protected["alg"] == "ES256"
    assert token.protected["kid"]
    import json

    claims = json.loads(token.payload)
    assert claims["iss"] == claims["aud"] == settings.issuer
    assert claims["sub"] == claims["client_id"] == partner_client.client.id
    assert claims["partner_id"] == partner_client.client.partner_id
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]


async def test_client_secret_post(client: httpx.AsyncClient, post_client: service.NewClient) -> None:
    response = await token_with_secret(client, post_client.client.id, post_client.secret or "", post=True)
    assert response.status_code == 200, response.text


async def test_a_client_uses_only_its_registered_method(
    client: httpx.AsyncClient, post_client: service.NewClient
) -> None:
    response = await token_with_secret(client, post_client.client.id, post_client.secret or "")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_wrong_secret_is_invalid_client_with_challenge(
    client: httpx.AsyncClient, partner_client: service.NewClient, session: AsyncSession
) -> None:
    response = await token_with_secret(client, partner_client.client.id, "acs_wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    failures = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.failed", AuditEvent.object_id == partner_client.client.id
            )
        )
    ).all()
    assert len(failures) == 1
    assert "acs_wrong" not in str(failures[0].details)


async def test_unknown_client_is_invalid_client(client: httpx.AsyncClient) -> None:
    response = await token_with_secret(client, "cli_nobody", "acs_whatever")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_scope_outside_the_allowance_is_invalid_scope(
    client: httpx.AsyncClient, partner_client: service.NewClient
) -> None:
    response = await token_with_secret(
        client, partner_client.client.id, partner_client.secret or "", scope="referrals:read finance:write"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_narrower_scope_is_granted(client: httpx.AsyncClient, partner_client: service.NewClient) -> None:
    response = await token_with_secret(
        client, partner_client.client.id, partner_client.secret or "", scope="referrals:read"
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "referrals:read"


async def test_other_grant_types_are_unsupported(client: httpx.AsyncClient, partner_client: service.NewClient) -> None:
    response = await client.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(partner_client.client.id, partner_client.secret or "")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_json_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_two_authentication_methods_at_once_are_refused(
    client: httpx.AsyncClient, partner_client: service.NewClient
) -> None:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": partner_client.client.id, "client_secret": "x"},
        auth=(partner_client.client.id, partner_client.secret or ""),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_suspended_partner_cannot_get_tokens(
    client: httpx.AsyncClient, partner_client: service.NewClient, session: AsyncSession
) -> None:
    await change_partner_status(
        session, Actor.system("test"), partner_client.client.partner_id or "", PartnerStatus.suspended, "test"
    )
    response = await token_with_secret(client, partner_client.client.id, partner_client.secret or "")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_revoked_client_cannot_get_tokens(
    client: httpx.AsyncClient, partner_client: service.NewClient, session: AsyncSession
) -> None:
    await service.revoke_client(session, Actor.system("test"), partner_client.client.id)
    response = await token_with_secret(client, partner_client.client.id, partner_client.secret or "")
    assert response.status_code == 401


async def test_rotation_keeps_both_secrets_during_grace_then_only_the_new(
    client: httpx.AsyncClient, partner_client: service.NewClient, session: AsyncSession
) -> None:
    old = partner_client.secret or ""
    _, new, until = await service.rotate_client_secret(
        session, Actor.system("test"), partner_client.client.id, grace_s=3600
    )
    assert until > clock.now() + timedelta(minutes=59)
    assert (await token_with_secret(client, partner_client.client.id, old)).status_code == 200
    assert (await token_with_secret(client, partner_client.client.id, new)).status_code == 200
    await session.execute(
        update(ClientSecret)
        .where(ClientSecret.client_id == partner_client.client.id, ClientSecret.expires_at.is_not(None))
        .values(expires_at=clock.now() - timedelta(seconds=1))
    )
    assert (await token_with_secret(client, partner_client.client.id, old)).status_code == 401
    assert (await token_with_secret(client, partner_client.client.id, new)).status_code == 200


async def test_failed_authentications_are_throttled_per_client(
    client: httpx.AsyncClient, partner_client: service.NewClient, settings: Settings
) -> None:
    for _ in range(settings.auth_failures_per_client):
        assert (await token_with_secret(client, partner_client.client.id, "acs_wrong")).status_code == 401
    throttled = await token_with_secret(client, partner_client.client.id, partner_client.secret or "")
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


# --- private_key_jwt ------------------------------------------------------------------------------------------


async def test_private_key_jwt_with_token_endpoint_audience(
    client: httpx.AsyncClient,
    jwt_client: service.NewClient,
    key,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    assert jwt_client.secret is None
    response = await token_with_assertion(client, client_assertion(key, jwt_client.client.id, settings.token_endpoint))
    assert response.status_code == 200, response.text


async def test_private_key_jwt_accepts_the_issuer_as_audience(
    client: httpx.AsyncClient,
    jwt_client: service.NewClient,
    key,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    response = await token_with_assertion(client, client_assertion(key, jwt_client.client.id, settings.issuer))
    assert response.status_code == 200, response.text


async def test_private_key_jwt_ps256(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_partner,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    rsa = partner_key("RSA")
    partner = await make_partner()
    created = await service.create_client(
        session,
        Actor.system("test"),
        name="corporate",
        kind=PrincipalKind.partner,
        partner_id=partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks={"keys": [rsa.as_dict(private=False)]},
    )
    response = await token_with_assertion(client, client_assertion(rsa, created.client.id, settings.token_endpoint))
    assert response.status_code == 200, response.text


async def test_replayed_assertion_is_refused(
    client: httpx.AsyncClient,
    jwt_client: service.NewClient,
    key,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    assertion = client_assertion(key, jwt_client.client.id, settings.token_endpoint, jti="once-only")
    assert (await token_with_assertion(client, assertion)).status_code == 200
    replay = await token_with_assertion(client, assertion)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "case",
    ["wrong_audience", "expired", "other_key", "too_long_lived", "hs256", "weird_kid"],
)
async def test_bad_assertions_are_refused(
    client: httpx.AsyncClient,
    jwt_client: service.NewClient,
    key,
    settings: Settings,
    case: str,  # type: ignore[no-untyped-def]
) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    client_id = jwt_client.client.id
    if case == "wrong_audience":
        assertion = client_assertion(key, client_id, "https://elsewhere.example/token")
    elif case == "expired":
        assertion = client_assertion(key, client_id, settings.token_endpoint, issued_at=1_600_000_000)
    elif case == "other_key":
        stranger = partner_key("EC")
        stranger_with_same_kid = type(stranger).import_key(stranger.as_dict(private=True), parameters={"kid": key.kid})
        assertion = client_assertion(stranger_with_same_kid, client_id, settings.token_endpoint)
    elif case == "too_long_lived":
        assertion = client_assertion(key, client_id, settings.token_endpoint, lifetime_s=3600)
    elif case == "hs256":
        secret = OctKey.import_key(b"k" * 32)
        assertion = jwt.encode(
            {"alg": "HS256", "kid": key.kid},
            {"iss": client_id, "sub": client_id, "aud": settings.token_endpoint, "exp": 9_999_999_999, "jti": "h"},
            secret,
            algorithms=["HS256"],
        )
    else:
        stranger = partner_key("EC")
        weird = type(stranger).import_key(stranger.as_dict(private=True), parameters={"kid": 'a"b\\ü'})
        assertion = client_assertion(weird, client_id, settings.token_endpoint)
    response = await token_with_assertion(client, assertion)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_client"


async def test_jwks_uri_is_fetched_and_used(
    app,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_partner,
    key,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    from app.auth.server import JwksFetcher

    fetched: list[str] = []

    def partner_server(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json={"keys": [key.as_dict(private=False)]})

    app.state.jwks_fetcher = JwksFetcher(settings, transport=httpx.MockTransport(partner_server))
    partner = await make_partner()
    created = await service.create_client(
        session,
        Actor.system("test"),
        name="bank with jwks_uri",
        kind=PrincipalKind.partner,
        partner_id=partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks_uri="https://bank.example/.well-known/jwks.json",
    )
    for _ in range(2):
        response = await token_with_assertion(client, client_assertion(key, created.client.id, settings.token_endpoint))
        assert response.status_code == 200, response.text
    assert fetched == ["https://bank.example/.well-known/jwks.json"]  # cached after the first fetch
