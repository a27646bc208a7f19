"""Tokens: both authentication methods, caching, renewal before expiry, a revoked token, refusals."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from alliance_partner import AsyncClient, AuthenticationError, Client, TransportError, public_jwks
from joserfc import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import AuthMethod
from app.auth.scopes import PrincipalKind
from tests.auth.helpers import partner_key
from tests.factories.referrals import PartnerDesk
from tests.partners.conftest import Credentials, Recorder, credentials_of, in_thread

TOKEN = "/oauth/token"


def _form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode()))


async def test_client_secret_basic(make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    assert api.token is None  # nothing is fetched before the first call
    [program] = await api.list_programs().to_list()
    assert program.id == desk.program.id
    [token_request] = recorder.sent("POST", TOKEN)
    expected = base64.b64encode(f"{desk.caller.client.id}:{desk.caller.secret}".encode()).decode()
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert _form(token_request) == {"grant_type": "client_credentials"}
    assert api.token is not None and api.token["token_type"] == "Bearer"

    await api.list_programs().to_list()
    await api.get_program(desk.program.id)
    assert len(recorder.sent("POST", TOKEN)) == 1, "the token is cached"


async def test_client_secret_post_and_scope(
    make_desk: Any, session: AsyncSession, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name="bank (post)",
        kind=PrincipalKind.partner,
        partner_id=desk.partner.id,
        auth_method=AuthMethod.client_secret_post,
    )
    api = async_sdk(
        Credentials(created.client.id, created.secret), auth_method="client_secret_post", scope=["referrals:read"]
    )
    await api.list_programs().to_list()
    [token_request] = recorder.sent("POST", TOKEN)
    assert "authorization" not in token_request.headers
    form = _form(token_request)
    assert form["client_id"] == created.client.id and form["client_secret"] == created.secret
    assert form["scope"] == "referrals:read"
    assert api.token is not None and api.token["scope"] == "referrals:read"


async def test_private_key_jwt_signs_a_fresh_assertion_each_time(
    key_desk: tuple[PartnerDesk, Credentials], async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    _, credentials = key_desk
    api = async_sdk(credentials)
    await api.list_programs().to_list()
    first = api.token
    await api.fetch_token()
    await api.fetch_token()  # Authlib's own PrivateKeyJWT would resend the first jti here: refused as a replay
    assert api.token is not None and first is not None and api.token["access_token"] != first["access_token"]

    [metadata] = recorder.sent("GET", "/.well-known/oauth-authorization-server")
    assert "authorization" not in metadata.headers
    assertions = [_form(request)["client_assertion"] for request in recorder.sent("POST", TOKEN)]
    assert len(assertions) == 3
    assert credentials.key is not None
    claims = [jwt.decode(assertion, credentials.key).claims for assertion in assertions]
    assert len({claim["jti"] for claim in claims}) == 3
    for claim in claims:
        assert claim["iss"] == claim["sub"] == credentials.client_id
        assert claim["aud"] == "http://localhost:8000"  # the issuer, from the server metadata
        assert 0 < claim["exp"] - claim["iat"] <= 300


async def test_private_key_jwt_from_pem_with_the_token_endpoint_as_audience(
    make_desk: Any, session: AsyncSession, sync_sdk: Callable[..., Client], recorder: Recorder
) -> None:
    """The key as a partner keeps it (PEM), registered through the JWKS the SDK prints; the sync client."""
    desk: PartnerDesk = await make_desk()
    key = partner_key("RSA")
    pem = key.as_pem(private=True).decode()
    created = await auth_service.create_client(
        session,
        Actor.system("test"),
        name="bank (RSA key)",
        kind=PrincipalKind.partner,
        partner_id=desk.partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks=public_jwks(key.__class__.import_key(pem)),
    )
    api = sync_sdk(Credentials(created.client.id), private_key=pem, token_audience="http://localhost:8000/oauth/token")
    programs = await in_thread(lambda: api.list_programs().to_list())
    assert [program.id for program in programs] == [desk.program.id]
    assert not recorder.sent("GET", "/.well-known/oauth-authorization-server")
    header = jwt.decode(_form(recorder.sent("POST", TOKEN)[0])["client_assertion"], key, algorithms=["PS256"]).header
    assert header["alg"] == "PS256"


async def test_the_token_is_renewed_before_it_expires(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], sync_sdk: Callable[..., Client], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk), token_renewal_margin=60)
    await api.list_programs().to_list()
    assert api.token is not None
    first = api.token["access_token"]
    api.token["expires_at"] = int(time.time()) + 120  # outside the margin: still used
    await api.list_programs().to_list()
    assert api.token["access_token"] == first and len(recorder.sent("POST", TOKEN)) == 1
    api.token["expires_at"] = int(time.time()) + 30  # inside the margin: renewed before the call
    await api.list_programs().to_list()
    assert len(recorder.sent("POST", TOKEN)) == 2 and api.token["access_token"] != first
    assert recorder.sent("GET", "/v1/programs")[-1].headers["authorization"] == f"Bearer {api.token['access_token']}"

    sync_api = sync_sdk(credentials_of(desk))
    await in_thread(lambda: sync_api.list_programs().to_list())
    assert sync_api.token is not None
    sync_api.token["expires_at"] = int(time.time()) + 5
    await in_thread(lambda: sync_api.list_programs().to_list())
    assert len(recorder.sent("POST", TOKEN)) == 4


async def test_authlib_renews_by_itself_because_of_how_it_is_built(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    """The trap: Authlib's AsyncOAuth2Client renews a client-credentials token only when it was built with
    ``token_endpoint`` and ``grant_type="client_credentials"``. Bypass the SDK's own check to prove it."""
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    await api.fetch_token()
    assert api.token is not None
    api.token["expires_at"] = int(time.time()) - 1
    response = await api._http.get("/v1/programs")
    assert response.status_code == 200
    assert len(recorder.sent("POST", TOKEN)) == 2


async def test_a_revoked_token_is_replaced_once(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    api = async_sdk(credentials_of(desk))
    await api.fetch_token()
    assert api.token is not None
    revoked = dict(api.token)
    await api.revoke_token()
    assert len(recorder.sent("POST", "/oauth/revoke")) == 1
    await api.list_programs().to_list()  # a new token, fetched because the old one was revoked
    assert len(recorder.sent("POST", TOKEN)) == 2

    # A token revoked behind the SDK's back: the API answers 401 invalid-token, the SDK renews once and retries.
    api._http.token = revoked
    await api.list_programs().to_list()
    statuses = [response.status_code for response in recorder.responses if response.request.url.path == "/v1/programs"]
    assert statuses[-2:] == [401, 200]
    assert len(recorder.sent("POST", TOKEN)) == 3


async def test_refused_credentials_raise_authentication_error(
    make_desk: Any, key_desk: tuple[PartnerDesk, Credentials], async_sdk: Callable[..., AsyncClient]
) -> None:
    desk: PartnerDesk = await make_desk()
    wrong = async_sdk(Credentials(desk.caller.client.id, "acs_wrong"))
    with pytest.raises(AuthenticationError) as refused:
        await wrong.list_programs().to_list()
    assert refused.value.error == "invalid_client" and refused.value.status == 401

    _, credentials = key_desk
    other_key = async_sdk(Credentials(credentials.client_id, key=partner_key("EC")))
    with pytest.raises(AuthenticationError) as bad_key:
        await other_key.fetch_token()
    assert bad_key.value.error == "invalid_client"

    too_wide = async_sdk(credentials_of(desk), scope="finance:write")
    with pytest.raises(AuthenticationError) as scope:
        await too_wide.fetch_token()
    assert scope.value.error == "invalid_scope"


async def test_a_busy_or_unreachable_token_endpoint_is_retried(
    make_desk: Any, async_sdk: Callable[..., AsyncClient], recorder: Recorder
) -> None:
    desk: PartnerDesk = await make_desk()
    recorder.fail(
        "POST",
        TOKEN,
        httpx.Response(503, json={"error": "temporarily_unavailable"}, headers={"Retry-After": "0"}),
        httpx.ConnectError("connection refused"),
    )
    api = async_sdk(credentials_of(desk))
    assert await api.list_programs().to_list()
    assert len(recorder.sent("POST", TOKEN)) == 3

    recorder.fail("POST", TOKEN, *[httpx.ConnectError("connection refused")] * 4)
    gone = async_sdk(credentials_of(desk))
    with pytest.raises(TransportError):
        await gone.fetch_token()


def test_credentials_are_checked_when_the_client_is_made() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Client(client_id="cli_x")
    with pytest.raises(ValueError, match="exactly one"):
        Client(client_id="cli_x", client_secret="s", private_key=partner_key("EC"))
    with pytest.raises(ValueError, match="does not match"):
        Client(client_id="cli_x", client_secret="s", auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="private key"):
        Client(client_id="cli_x", private_key=partner_key("EC").as_dict(private=False))
    with pytest.raises(ValueError, match="client_id"):
        Client(client_secret="s")
    assert "cli_x" in repr(Client(client_id="cli_x", client_secret="s"))
