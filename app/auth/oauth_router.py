"""The OAuth 2.0 endpoints (form-encoded, RFC 6749 error shape) and the discovery documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from joserfc.jwk import KeySet
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.audit import service as audit
from app.auth import service
from app.auth.deps import request_actor
from app.auth.models import AuthMethod
from app.auth.scopes import SCOPES, PrincipalKind
from app.auth.server import (
    AllianceAuthorizationServer,
    AllianceClient,
    TokenRequestState,
    claimed_client_id,
    registered_partner_keys,
    run_client_authentication,
    run_token_request,
    uses_basic_auth,
)
from app.auth.tokens import InvalidToken, unverified_kid, verify_access_token
from app.core.config import Settings
from app.core.database import SessionDep

router = APIRouter(tags=["oauth"])

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# OAuth requests are a handful of short parameters (an assertion is the longest, a few KB).
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 50
# What a refused client learns, whatever the reason (unknown client, wrong secret, revoked client...): the reason
# itself is in the audit log (`auth.failed`), for staff helping a partner.
INVALID_CLIENT_DESCRIPTION = "Client authentication failed."

Operation = Callable[
    [AllianceAuthorizationServer, TokenRequestState, dict[str, str], Any], tuple[int, dict[str, Any], dict[str, str]]
]


class BodyTooLarge(InvalidRequestError):  # type: ignore[misc]
    status_code = 413


class OAuthErrorBody(BaseModel):
    """RFC 6749 section 5.2: the error shape the OAuth endpoints answer instead of problem details."""

    error: str = Field(examples=["invalid_client"])
    error_description: str | None = None
    error_uri: str | None = None


# What Authlib and the throttles answer on the endpoints where clients authenticate; the problem statuses (422, 500)
# stay declared at the app level.
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OAuthErrorBody, "description": description}
    for status, description in {
        400: "RFC 6749 error: `invalid_request`, `unsupported_grant_type`, `invalid_scope`, ...",
        401: "`invalid_client`, when the client authenticated with HTTP Basic",
        413: "`invalid_request`: the form is larger than 64 KiB",
        429: "`slow_down`: too many failed authentications; see `Retry-After`",
    }.items()
}


def _form_body(description: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {name: {"type": "string", "description": text} for name, text in fields.items()},
                    }
                }
            },
        }
    }


async def _read_body(request: Request) -> bytes:
    """The body, refused past ``MAX_FORM_BYTES`` whether or not a Content-Length announces it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidRequestError("Invalid Content-Length.")
        if int(declared) > MAX_FORM_BYTES:
            raise BodyTooLarge(f"The request body exceeds {MAX_FORM_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BodyTooLarge(f"The request body exceeds {MAX_FORM_BYTES} bytes.")
    return bytes(body)


async def _parse_form(request: Request) -> dict[str, str]:
    """The form parameters; every problem with the body is an RFC 6749 ``invalid_request``."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        raise InvalidRequestError(f"The request body must be {_FORM}.")
    body = await _read_body(request)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (ValueError, UnicodeError):
        raise InvalidRequestError(f"The body is not a valid form of at most {MAX_FORM_FIELDS} fields.") from None
    parsed: dict[str, str] = {}
    for name, value in pairs:
        if name in parsed:
            # RFC 6749 allows only printable ASCII, without double quote or backslash, in a description (Authlib
            # raises otherwise): the name is echoed only when it fits.
            named = repr(name)
            raise InvalidRequestError(
                f"The parameter {named} is repeated."
                if not invalid_error_characters(named)
                else "A parameter is repeated."
            )
        parsed[name] = value
    return parsed


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _error_parts(error: OAuth2Error) -> tuple[int, dict[str, Any], dict[str, str]]:
    status, body, headers = error(None)
    return status, dict(body), dict(headers)


def _audit_text(text: Any, limit: int = 200) -> str:
    """An error description fit for the audit log: printable (descriptions may echo what a caller sent), short."""
    return "".join(char if char.isprintable() else "?" for char in str(text))[:limit]


@dataclass
class ClientExchange:
    """The outcome of one request to an endpoint where clients authenticate (token, introspection, revocation)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    client: AllianceClient | None = None  # the authenticated client, when ``ok``

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.client is not None

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _slow_down(wait: int) -> ClientExchange:
    return ClientExchange(
        429,
        {"error": "slow_down", "error_description": "Too many failed authentications; retry later."},
        {"Retry-After": str(wait), **_NO_STORE},
    )


async def _request_state(
    request: Request, session: SessionDep, client_id: str | None, form: dict[str, str]
) -> TokenRequestState:
    """Everything Authlib's synchronous checks need, loaded beforehand.

    The client is read in a short transaction of its own, so that the request's session holds no pooled
    connection while a partner's ``jwks_uri`` is fetched (up to ``JwksFetcher.TIMEOUT_S``): slow or hostile
    partner servers cannot drain the pool.
    """
    app_state = request.app.state
    loaded = None
    if client_id:
        async with app_state.database.sessionmaker() as lookup:
            loaded = await service.load_token_client(lookup, client_id)
    client_keys: KeySet | None = None
    if loaded and loaded.client.auth_method is AuthMethod.private_key_jwt and form.get("client_assertion"):
        if loaded.client.jwks:
            client_keys = registered_partner_keys(loaded.client.jwks)
        elif loaded.client.jwks_uri:
            client_keys = await app_state.jwks_fetcher.get(loaded.client.jwks_uri)
    signing_key = await app_state.keyring.signing_key(session)
    return TokenRequestState(app_state.settings, loaded, client_keys, signing_key)


async def _client_exchange(
    request: Request, session: SessionDep, endpoint: str, operation: Operation
) -> ClientExchange:
    """The flow shared by the endpoints where clients authenticate.

    1. Refuse at once (429) an address that failed too often, or a claimed client id that failed too often
       from this address: failures from elsewhere never lock a partner out.
    2. Read the form (bounded), find the claimed client and load it, run ``operation`` (Authlib) in a thread.
    3. Record a private_key_jwt assertion's ``jti`` once the client authenticated: a replay is ``invalid_client``.
    4. A failed authentication (``invalid_client``) counts towards both limits, is audited as ``auth.failed``
       and answered with one generic description; any other error is audited as ``token.refused``.
    """
    app_state = request.app.state
    settings: Settings = app_state.settings
    address = _address(request)
    if wait := app_state.address_failures.retry_after(address):
        return _slow_down(wait)

    form: dict[str, str] = {}
    client_id: str | None = None
    state: TokenRequestState | None = None
    try:
        form = await _parse_form(request)
        client_id = claimed_client_id(form, request.headers)
        if client_id and (wait := app_state.client_failures.retry_after((client_id, address))):
            return _slow_down(wait)
        state = await _request_state(request, session, client_id, form)
        server: AllianceAuthorizationServer = app_state.authorization_server
        status, body, headers = await run_in_threadpool(operation, server, state, form, request.headers)
    except OAuth2Error as error:
        status, body, headers = _error_parts(error)

    client = state.authenticated if state else None
    if client is not None and state is not None and state.assertion_claims is not None:
        claims = state.assertion_claims
        fresh = await service.accept_client_assertion(
            session, client_id=client.row.id, jti=claims["jti"], exp=claims["exp"], leeway_s=settings.clock_skew_s
        )
        if not fresh:
            client = None
            status, body, headers = _error_parts(InvalidClientError(description="The JWT ID was used before."))

    if body.get("error") == "invalid_client":
        reason = _audit_text(body.get("error_description", ""))
        basic = uses_basic_auth(request.headers)
        status, body, headers = _error_parts(
            InvalidClientError(description=INVALID_CLIENT_DESCRIPTION, status_code=401 if basic else status)
        )
        app_state.address_failures.record(address)
        if client_id:
            app_state.client_failures.record((client_id, address))
        await audit.record(
            session,
            request_actor(request, "anonymous", "client"),
            "auth.failed",
            object_type="oauth_client",
            object_id=client_id,
            endpoint=endpoint,
            error="invalid_client",
            reason=reason,
        )
        return ClientExchange(status, body, headers, form)
    if status != 200:
        actor = (
            request_actor(request, client.row.id, client.row.kind.value)
            if client
            else request_actor(request, "anonymous", "client")
        )
        await audit.record(
            session,
            actor,
            "token.refused",
            object_type="oauth_client",
            object_id=client_id,
            endpoint=endpoint,
            error=_audit_text(body.get("error", ""), 40),
        )
        return ClientExchange(status, body, headers, form)
    return ClientExchange(status, body, headers, form, client)


@router.post(
    "/oauth/token",
    summary="Issue an access token (client credentials grant)",
    description=(
        "RFC 6749 client credentials. Authenticate with `client_secret_basic`, `client_secret_post` or "
        "`private_key_jwt` (RFC 7523). The access token is an RFC 9068 JWT signed with ES256; errors follow "
        "RFC 6749 section 5.2."
    ),
    openapi_extra=_form_body(
        "Token request",
        {
            "grant_type": "`client_credentials`",
            "scope": "Space-separated scopes; defaults to every scope the client is allowed",
            "client_id": "With client_secret_post",
            "client_secret": "With client_secret_post",
            "client_assertion_type": "`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`",
            "client_assertion": "With private_key_jwt: a JWT signed with the client's registered key",
        },
    ),
    responses={200: {"description": "The token", "content": {"application/json": {}}}, **OAUTH_ERRORS},
)
async def token(request: Request, session: SessionDep) -> JSONResponse:
    exchange = await _client_exchange(request, session, "token", run_token_request)
    if exchange.ok:
        assert exchange.client is not None
        actor = request_actor(request, exchange.client.row.id, exchange.client.row.kind.value)
        await audit.record(
            session,
            actor,
            "token.issued",
            object_type="oauth_client",
            object_id=exchange.client.row.id,
            scope=exchange.body.get("scope"),
        )
    return exchange.response()


async def _verified_claims(request: Request, session: SessionDep, token: str, *, check_expiry: bool) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    keys = await request.app.state.keyring.verification_keys(session, unverified_kid(token))
    return verify_access_token(token, keys, settings, check_expiry=check_expiry)


@router.post(
    "/oauth/introspect",
    summary="Introspect an access token (RFC 7662)",
    description="A client may introspect its own tokens; staff clients any token. Others learn only `active: false`.",
    openapi_extra=_form_body("Introspection request", {"token": "The access token", "token_type_hint": "Optional"}),
    responses={200: {"description": "Token state", "content": {"application/json": {}}}, **OAUTH_ERRORS},
)
async def introspect(request: Request, session: SessionDep) -> JSONResponse:
    exchange = await _client_exchange(request, session, "introspect", run_client_authentication)
    if not exchange.ok:
        return exchange.response()
    caller = exchange.client
    assert caller is not None
    inactive = JSONResponse({"active": False}, headers=_NO_STORE)
    try:
        claims = await _verified_claims(request, session, exchange.form.get("token", ""), check_expiry=True)
    except InvalidToken:
        return inactive
    if caller.row.kind is not PrincipalKind.staff and claims["client_id"] != caller.row.id:
        return inactive
    standing = await service.token_standing(session, claims["client_id"], claims["jti"])
    if standing is None or standing.token_revoked or not (standing.client_active and standing.partner_active):
        return inactive
    return JSONResponse({"active": True, "token_type": "Bearer", **claims}, headers=_NO_STORE)


@router.post(
    "/oauth/revoke",
    summary="Revoke an access token (RFC 7009)",
    description="A client may revoke its own tokens. The answer is 200 whether or not the token was valid.",
    openapi_extra=_form_body("Revocation request", {"token": "The access token", "token_type_hint": "Optional"}),
    responses={200: {"description": "Revoked (or nothing to revoke)"}, **OAUTH_ERRORS},
)
async def revoke(request: Request, session: SessionDep) -> Response:
    exchange = await _client_exchange(request, session, "revoke", run_client_authentication)
    if not exchange.ok:
        return exchange.response()
    caller = exchange.client
    assert caller is not None
    try:
        claims = await _verified_claims(request, session, exchange.form.get("token", ""), check_expiry=False)
    except InvalidToken:
        return Response(status_code=200, headers=_NO_STORE)
    if claims["client_id"] == caller.row.id:
        revoked = await service.revoke_token(
            session,
            jti=claims["jti"],
            client_id=claims["client_id"],
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
        if revoked:
            actor = request_actor(request, caller.row.id, caller.row.kind.value)
            await audit.record(session, actor, "token.revoked", object_type="access_token", object_id=claims["jti"])
    return Response(status_code=200, headers=_NO_STORE)


@router.get("/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)")
async def metadata(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    methods = [method.value for method in AuthMethod]
    return {
        "issuer": settings.issuer,
        "token_endpoint": settings.token_endpoint,
        "introspection_endpoint": settings.issuer + "/oauth/introspect",
        "revocation_endpoint": settings.issuer + "/oauth/revoke",
        "jwks_uri": settings.issuer + "/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": list(SCOPES),
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "PS256"],
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
    }


@router.get("/.well-known/jwks.json", summary="The public keys that sign access tokens (current and previous)")
async def jwks(request: Request, session: SessionDep) -> JSONResponse:
    keyring = request.app.state.keyring
    await keyring.signing_key(session)  # the first key is created on first use
    keys = await keyring.verification_keys(session, None)
    return JSONResponse(keys.as_dict(private=False), headers={"Cache-Control": "public, max-age=300"})
