"""The OAuth 2.0 endpoints (form-encoded, RFC 6749 error shape) and the discovery documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool

from app.audit import service as audit
from app.audit.service import Actor
from app.auth import service
from app.auth.models import AuthMethod
from app.auth.scopes import SCOPES, PrincipalKind
from app.auth.server import (
    AllianceAuthorizationServer,
    TokenRequestState,
    authenticate_caller,
    claimed_client_id,
    run_token_request,
)
from app.auth.tokens import InvalidToken, unverified_kid, verify_access_token
from app.core.config import Settings
from app.core.database import SessionDep

router = APIRouter(tags=["oauth"])

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(error: OAuth2Error) -> JSONResponse:
    status, body, headers = error(None)
    return JSONResponse(dict(body), status_code=status, headers=dict(headers))


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


async def _parse_form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        raise InvalidRequestError(f"The request body must be {_FORM}.")
    form = await request.form()
    parsed: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in parsed:
            raise InvalidRequestError(f"The parameter {name!r} is repeated.")
        if not isinstance(value, str):
            raise InvalidRequestError("Files are not accepted here.")
        parsed[name] = value
    return parsed


async def _token_request_state(
    request: Request, session: SessionDep, form: dict[str, str]
) -> tuple[TokenRequestState, str | None]:
    app_state = request.app.state
    client_id = claimed_client_id(form, request.headers)
    loaded = await service.load_token_client(session, client_id) if client_id else None
    client_keys = None
    if loaded and loaded.client.auth_method is AuthMethod.private_key_jwt:
        if loaded.client.jwks:
            client_keys = KeySet.import_key_set(loaded.client.jwks)  # type: ignore[arg-type]
        elif loaded.client.jwks_uri:
            client_keys = await app_state.jwks_fetcher.get(loaded.client.jwks_uri)
    signing_key = await app_state.keyring.signing_key(session)
    state = TokenRequestState(app_state.settings, loaded, client_keys, signing_key)
    return state, client_id


def _throttle_keys(request: Request, client_id: str | None) -> list[tuple[Any, str]]:
    app_state = request.app.state
    address = request.client.host if request.client else "unknown"
    keys = [(app_state.address_failures, address)]
    if client_id:
        keys.append((app_state.client_failures, client_id))
    return keys


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
    responses={200: {"description": "The token", "content": {"application/json": {}}}},
)
async def token(request: Request, session: SessionDep) -> JSONResponse:
    app_state = request.app.state
    address = request.client.host if request.client else None
    client_id: str | None = None
    try:
        form = await _parse_form(request)
        client_id = claimed_client_id(form, request.headers)
        for throttle, key in _throttle_keys(request, client_id):
            if wait := throttle.retry_after(key):
                return JSONResponse(
                    {"error": "slow_down", "error_description": "Too many failed authentications; retry later."},
                    status_code=429,
                    headers={"Retry-After": str(wait), **_NO_STORE},
                )
        state, client_id = await _token_request_state(request, session, form)
    except OAuth2Error as error:
        return _oauth_error(error)

    server: AllianceAuthorizationServer = app_state.authorization_server
    status, body, headers = await run_in_threadpool(run_token_request, server, state, form, request.headers)
    actor = Actor(id=client_id or "anonymous", kind="client", request_id=request.state.request_id, ip_address=address)
    if status == 200 and state.assertion_claims is not None:
        claims = state.assertion_claims
        fresh = await service.accept_client_assertion(
            session,
            client_id=str(claims["sub"]),
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
        if not fresh:
            status, body, headers = 400, {"error": "invalid_client", "error_description": "JWT ID is used before."}, {}
            headers.update(_NO_STORE)
    if status == 200:
        await audit.record(
            session, actor, "token.issued", object_type="oauth_client", object_id=client_id, scope=body.get("scope")
        )
    else:
        for throttle, key in _throttle_keys(request, client_id):
            throttle.record(key)
        await audit.record(
            session, actor, "auth.failed", object_type="oauth_client", object_id=client_id, error=body.get("error")
        )
    return JSONResponse(body, status_code=status, headers=headers)


async def _authenticated_caller(request: Request, session: SessionDep, form: dict[str, str]) -> Any:
    state, _ = await _token_request_state(request, session, form)
    server: AllianceAuthorizationServer = request.app.state.authorization_server
    return await run_in_threadpool(authenticate_caller, server, state, form, request.headers)


async def _verified_claims(request: Request, session: SessionDep, token: str, *, check_expiry: bool) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    keys = await request.app.state.keyring.verification_keys(session, unverified_kid(token))
    return verify_access_token(token, keys, settings, check_expiry=check_expiry)


@router.post(
    "/oauth/introspect",
    summary="Introspect an access token (RFC 7662)",
    description="A client may introspect its own tokens; staff clients any token. Others learn only `active: false`.",
    openapi_extra=_form_body("Introspection request", {"token": "The access token", "token_type_hint": "Optional"}),
    responses={200: {"description": "Token state", "content": {"application/json": {}}}},
)
async def introspect(request: Request, session: SessionDep) -> JSONResponse:
    try:
        form = await _parse_form(request)
        caller = await _authenticated_caller(request, session, form)
    except OAuth2Error as error:
        return _oauth_error(error)
    inactive = JSONResponse({"active": False}, headers=_NO_STORE)
    try:
        claims = await _verified_claims(request, session, form.get("token", ""), check_expiry=True)
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
    responses={200: {"description": "Revoked (or nothing to revoke)"}},
)
async def revoke(request: Request, session: SessionDep) -> Response:
    try:
        form = await _parse_form(request)
        caller = await _authenticated_caller(request, session, form)
    except OAuth2Error as error:
        return _oauth_error(error)
    try:
        claims = await _verified_claims(request, session, form.get("token", ""), check_expiry=False)
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
            actor = Actor.from_request(request, caller.row.id, caller.row.kind.value)
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
