"""Regression tests for the security review of the OAuth endpoints: hostile input answered as OAuth errors (never
500), replays, lockouts, enumeration, audit and body limits."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.auth import service
from app.auth.limits import FailureThrottle
from app.auth.models import UsedClientAssertion
from app.core.config import Settings
from tests.auth.helpers import ASSERTION_TYPE, client_assertion, token_with_assertion, token_with_secret

ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _events(session: AsyncSession, action: str, object_id: str | None = None) -> list[AuditEvent]:
    statement = select(AuditEvent).where(AuditEvent.action == action)
    if object_id is not None:
        statement = statement.where(AuditEvent.object_id == object_id)
    return list((await session.scalars(statement.order_by(AuditEvent.created_at))).all())


def _assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


# --- 1. an assertion's jti outlives the clock-skew leeway ---------------------------------------------------------


async def test_an_assertion_is_remembered_until_its_leeway_ends(
    client: httpx.AsyncClient, jwt_client: service.NewClient, key: ECKey, settings: Settings, session: AsyncSession
) -> None:
    client_id = jwt_client.client.id
    now = int(time.time())
    # Expired 5 s ago, but still inside the accepted clock skew.
    late = client_assertion(key, client_id, settings.token_endpoint, issued_at=now - 65, lifetime_s=60)
    assert (await token_with_assertion(client, late)).status_code == 200
    kept_until = await session.scalar(
        select(UsedClientAssertion.expires_at).where(UsedClientAssertion.client_id == client_id)
    )
    assert kept_until is not None
    assert kept_until >= datetime.fromtimestamp(now - 5 + settings.clock_skew_s, UTC)
    # Another assertion purges what has expired; the late one must still be remembered.
    fresh = client_assertion(key, client_id, settings.token_endpoint)
    assert (await token_with_assertion(client, fresh)).status_code == 200
    replay = await token_with_assertion(client, late)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"


# --- 2. hostile client ids, jti and kid: OAuth errors, not 500 ------------------------------------------------------


def _basic(username: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:secret".encode()).decode()}


@pytest.mark.parametrize(
    ("how", "claimed"),
    [
        ("basic", "x" * 100),
        ("basic", "a\x00b"),
        ("basic", "a%00b"),
        ("basic", "cli_\n"),
        ("basic", "ü" * 10),
        ("post", "x" * 41),
        ("post", "a\x00b"),
        ("post", "a\tb"),
    ],
)
async def test_impossible_client_ids_are_invalid_client_without_a_lookup(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch, how: str, claimed: str
) -> None:
    async def no_lookup(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an impossible client id reached the database")

    monkeypatch.setattr(service, "load_token_client", no_lookup)
    form = {"grant_type": "client_credentials"}
    if how == "basic":
        response = await client.post("/oauth/token", data=form, headers=_basic(claimed))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    else:
        response = await client.post("/oauth/token", data={**form, "client_id": claimed, "client_secret": "s"})
        assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    [event] = await _events(session, "auth.failed")
    assert event.actor_id == "anonymous"
    assert event.object_id is None


async def test_an_assertion_with_an_impossible_subject_is_invalid_client(
    client: httpx.AsyncClient, key: ECKey, settings: Settings
) -> None:
    response = await token_with_assertion(client, client_assertion(key, "x" * 200, settings.token_endpoint))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("jti", ["J" * 201, "a\x00b", "line\nbreak", "\ud800"])
async def test_unusable_assertion_ids_are_invalid_client(
    client: httpx.AsyncClient, jwt_client: service.NewClient, key: ECKey, settings: Settings, jti: str
) -> None:
    client_id = jwt_client.client.id
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": settings.issuer, "iat": now, "exp": now + 60, "jti": jti}
    # The payload is serialised by hand: JSON carries a lone surrogate escaped, which JWT libraries refuse to.
    assertion = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, json.dumps(claims).encode(), key)
    response = await token_with_assertion(client, assertion)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client"


async def test_a_jti_of_200_characters_is_accepted(
    client: httpx.AsyncClient, jwt_client: service.NewClient, key: ECKey, settings: Settings
) -> None:
    assertion = client_assertion(key, jwt_client.client.id, settings.token_endpoint, jti="J" * 200)
    assert (await token_with_assertion(client, assertion)).status_code == 200


@pytest.mark.parametrize("kid", [{"a": 1}, ["a"], 7])
async def test_a_bearer_token_with_a_non_string_kid_is_401(
    client: httpx.AsyncClient, partner_client: service.NewClient, kid: object
) -> None:
    token = f"{_b64(json.dumps({'alg': 'ES256', 'typ': 'at+jwt', 'kid': kid}).encode())}.{_b64(b'{}')}.{_b64(b'sig')}"
    response = await client.get("/v1/admin/clients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["type"].endswith("/invalid-token")
    introspected = await client.post(
        "/oauth/introspect", data={"token": token}, auth=(partner_client.client.id, partner_client.secret or "")
    )
    assert introspected.status_code == 200
    assert introspected.json() == {"active": False}


# --- 4. strangers cannot lock a partner out -------------------------------------------------------------------------


async def test_failures_from_another_address_never_block_a_correct_authentication(
    client_at: ClientAt, partner_client: service.NewClient, settings: Settings
) -> None:
    client_id, secret = partner_client.client.id, partner_client.secret or ""
    async with client_at("198.51.100.66") as stranger:
        for _ in range(settings.auth_failures_per_client):
            assert (await token_with_secret(stranger, client_id, "acs_guess")).status_code == 401
        assert (await token_with_secret(stranger, client_id, secret)).status_code == 429
    async with client_at("203.0.113.10") as partner:
        response = await token_with_secret(partner, client_id, secret)
        assert response.status_code == 200, response.text


async def test_the_address_limit_stops_an_address_trying_many_client_ids(app: FastAPI, client_at: ClientAt) -> None:
    app.state.address_failures = FailureThrottle(limit=5, window_s=300)
    async with client_at("198.51.100.77") as stranger:
        for number in range(5):
            assert (await token_with_secret(stranger, f"cli_guess{number}", "acs_guess")).status_code == 401
        blocked = await token_with_secret(stranger, "cli_guess_more", "acs_guess")
        assert blocked.status_code == 429
        assert blocked.json()["error"] == "slow_down"


# --- 9. introspection and revocation authenticate like the token endpoint -------------------------------------------


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
async def test_introspection_and_revocation_failures_are_throttled_and_audited(
    client: httpx.AsyncClient,
    partner_client: service.NewClient,
    settings: Settings,
    session: AsyncSession,
    endpoint: str,
) -> None:
    client_id, secret = partner_client.client.id, partner_client.secret or ""
    for _ in range(settings.auth_failures_per_client):
        response = await client.post(endpoint, data={"token": "x"}, auth=(client_id, "acs_wrong"))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    throttled = await client.post(endpoint, data={"token": "x"}, auth=(client_id, secret))
    assert throttled.status_code == 429
    events = await _events(session, "auth.failed", client_id)
    assert len(events) == settings.auth_failures_per_client
    assert {event.details["endpoint"] for event in events} == {endpoint.rsplit("/", 1)[1]}


async def test_an_assertion_is_single_use_across_all_oauth_endpoints(
    client: httpx.AsyncClient, jwt_client: service.NewClient, key: ECKey, settings: Settings
) -> None:
    client_id = jwt_client.client.id
    used = client_assertion(key, client_id, settings.token_endpoint)
    issued = await token_with_assertion(client, used)
    assert issued.status_code == 200
    access_token = issued.json()["access_token"]
    for endpoint in ("/oauth/introspect", "/oauth/revoke"):
        replay = await client.post(endpoint, data=_assertion_form(used, token=access_token))
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_client"
    once = client_assertion(key, client_id, settings.token_endpoint)
    introspected = await client.post("/oauth/introspect", data=_assertion_form(once, token=access_token))
    assert introspected.json()["active"] is True
    again = await client.post("/oauth/revoke", data=_assertion_form(once, token=access_token))
    assert again.status_code == 400
    assert (await token_with_assertion(client, once)).status_code == 400


# --- 10. assertion audience ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    [
        ["https://elsewhere.example", "{token_endpoint}"],
        ["{token_endpoint}"],
        ["{issuer}"],
        "{issuer}/",
    ],
)
async def test_the_assertion_audience_is_one_string_naming_this_server(
    client: httpx.AsyncClient, jwt_client: service.NewClient, key: ECKey, settings: Settings, audience: Any
) -> None:
    names = {"token_endpoint": settings.token_endpoint, "issuer": settings.issuer}
    aud = [item.format(**names) for item in audience] if isinstance(audience, list) else audience.format(**names)
    client_id = jwt_client.client.id
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": secrets.token_hex(8)}
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])
    response = await token_with_assertion(client, assertion)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


# --- 12. unknown clients cost the same and read the same --------------------------------------------------------


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    verify = service.verify_secret

    def counting(secret_hash: str, secret: str) -> bool:
        checked.append(secret_hash)
        return verify(secret_hash, secret)

    monkeypatch.setattr(service, "verify_secret", counting)
    return checked


async def test_unknown_and_secretless_clients_cost_an_argon2_check_and_read_like_a_wrong_secret(
    client: httpx.AsyncClient,
    partner_client: service.NewClient,
    jwt_client: service.NewClient,
    argon2_checks: list[str],
) -> None:
    wrong_secret = await token_with_secret(client, partner_client.client.id, "acs_wrong")
    assert len(argon2_checks) == 1
    unknown = await token_with_secret(client, "cli_nobody_at_all", "acs_wrong")
    assert len(argon2_checks) == 2
    secretless = await token_with_secret(client, jwt_client.client.id, "acs_wrong")
    assert len(argon2_checks) == 3
    for response in (wrong_secret, unknown, secretless):
        assert response.status_code == 401
        assert response.json() == wrong_secret.json()
        assert response.headers["www-authenticate"] == wrong_secret.headers["www-authenticate"]
    assert wrong_secret.json()["error"] == "invalid_client"


async def test_the_failure_reason_is_kept_for_staff_in_the_audit_log(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await token_with_secret(client, "cli_nobody_at_all", "acs_wrong")
    [event] = await _events(session, "auth.failed", "cli_nobody_at_all")
    assert event.details["error"] == "invalid_client"
    assert event.details["endpoint"] == "token"
    assert event.details["reason"]
    assert "acs_wrong" not in json.dumps(event.details)


# --- 14. only authentication failures count as such ----------------------------------------------------------------


async def test_refusals_other_than_invalid_client_are_audited_but_not_throttled(
    client: httpx.AsyncClient, partner_client: service.NewClient, settings: Settings, session: AsyncSession
) -> None:
    client_id, secret = partner_client.client.id, partner_client.secret or ""
    for _ in range(settings.auth_failures_per_client + 1):
        response = await token_with_secret(client, client_id, secret, scope="finance:write")
        assert response.json()["error"] == "invalid_scope"
    assert (await token_with_secret(client, client_id, secret)).status_code == 200
    refused = await _events(session, "token.refused", client_id)
    assert len(refused) == settings.auth_failures_per_client + 1
    assert refused[0].details == {"endpoint": "token", "error": "invalid_scope"}
    assert refused[0].actor_id == client_id  # the client did authenticate
    assert await _events(session, "auth.failed", client_id) == []


async def test_early_refusals_are_audited(
    client: httpx.AsyncClient, partner_client: service.NewClient, session: AsyncSession
) -> None:
    client_id, secret = partner_client.client.id, partner_client.secret or ""
    both = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        auth=(client_id, secret),
    )
    assert both.json()["error"] == "invalid_request"
    grant = await client.post("/oauth/token", data={"grant_type": "password"}, auth=(client_id, secret))
    assert grant.json()["error"] == "unsupported_grant_type"
    malformed = await client.post("/oauth/token", data=_assertion_form("not.a-jwt", grant_type="client_credentials"))
    assert malformed.json()["error"] == "invalid_client"
    refused = await _events(session, "token.refused")
    assert [event.details["error"] for event in refused] == ["invalid_request", "unsupported_grant_type"]
    assert all(event.actor_id == "anonymous" for event in refused)
    [failed] = await _events(session, "auth.failed")
    assert failed.details["error"] == "invalid_client"


# --- 15. bodies: bounded, and refused the OAuth way --------------------------------------------------------------


def _is_oauth_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
async def test_form_problems_are_rfc6749_errors(
    client: httpx.AsyncClient, partner_client: service.NewClient, endpoint: str
) -> None:
    auth = (partner_client.client.id, partner_client.secret or "")
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    many = "&".join(f"f{number}=1" for number in range(2000))
    _is_oauth_error(await client.post(endpoint, content=many, headers=form_type, auth=auth), 400)
    _is_oauth_error(await client.post(endpoint, content=b"token=%ff%fe", headers=form_type, auth=auth), 400)
    _is_oauth_error(await client.post(endpoint, content=b"token=\xff", headers=form_type, auth=auth), 400)
    big = b"token=" + b"x" * (64 * 1024)
    _is_oauth_error(await client.post(endpoint, content=big, headers=form_type, auth=auth), 413)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"token="
        for _ in range(80):
            yield b"x" * 1024

    chunked = await client.post(endpoint, content=chunks(), headers=form_type, auth=auth)
    assert "content-length" not in chunked.request.headers
    _is_oauth_error(chunked, 413)


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
async def test_a_repeated_parameter_with_a_hostile_name_is_an_rfc6749_error(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    # Found by the schema fuzzer: the name was echoed in the description, where Authlib refuses a backslash or
    # non-ASCII.
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    for name in ("y%C2%9B%21", "a%5Cb", "%22q%22"):
        response = await client.post(endpoint, content=f"{name}=1&{name}=2", headers=form_type)
        _is_oauth_error(response, 400)
    plain = await client.post(endpoint, content="token=1&token=2", headers=form_type)
    _is_oauth_error(plain, 400)
    assert plain.json()["error_description"] == "The parameter 'token' is repeated."


async def test_the_oauth_errors_are_documented_in_their_rfc6749_shape(client: httpx.AsyncClient) -> None:
    # Found by the schema fuzzer: the 400s (and 401, 413, 429) these endpoints answer were not in the document.
    document = (await client.get("/openapi.json")).json()
    for endpoint in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        responses = document["paths"][endpoint]["post"]["responses"]
        for status in ("400", "401", "413", "429"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/OAuthErrorBody"}, (endpoint, status)
    assert document["components"]["schemas"]["OAuthErrorBody"]["required"] == ["error"]


async def test_a_large_declared_body_is_refused_before_it_is_read(app: FastAPI) -> None:
    received: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(b"chunk")
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(50 * 1024 * 1024).encode()),
        ],
        "client": ("127.0.0.1", 40_000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert received == []
