"""Authlib's RFC 6749 authorization server, wired to Alliance.

Authlib is synchronous and has no Starlette integration: the router loads everything a token request needs
(the client, its secrets and keys, the signing key) asynchronously, puts it in ``TokenRequestState`` and runs
Authlib's checks in a worker thread. Side effects that need the database (the assertion ``jti``) are collected
in that state and written by the router afterwards.
"""

from __future__ import annotations

import base64
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.auth.models import AuthMethod
from app.auth.scopes import SCOPES
from app.auth.service import TokenClient, verify_secret
from app.auth.tokens import ACCEPTED_ALGS, mint_access_token
from app.core.config import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300


@dataclass
class TokenRequestState:
    settings: Settings
    client: TokenClient | None
    client_keys: KeySet | None
    signing_key: ECKey
    assertion_claims: dict[str, Any] | None = None
    issued: dict[str, Any] = field(default_factory=dict)


_state: ContextVar[TokenRequestState] = ContextVar("token_request_state")


class AllianceClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, loaded: TokenClient) -> None:
        self.loaded = loaded
        self.row = loaded.client

    def get_client_id(self) -> str:
        return self.row.id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        # Every hash is tried so that timing does not tell which secret (old or new) matched.
        return any([verify_secret(secret_hash, client_secret) for secret_hash in self.loaded.secret_hashes])

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.loaded.active and method == self.row.auth_method

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = list(self.row.scopes)
        if not scope:
            return list_to_scope(allowed)  # type: ignore[no-any-return]
        requested = scope_to_list(scope) or []
        if any(item not in allowed for item in requested):
            return None  # Authlib answers invalid_scope
        return list_to_scope(requested)  # type: ignore[no-any-return]


class FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, form: dict[str, str], headers: Any) -> None:
        super().__init__(method="POST", uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class AllianceAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def query_client(self, client_id: str) -> AllianceClient | None:
        loaded = _state.get().client
        return AllianceClient(loaded) if loaded and loaded.client.id == client_id else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        _state.get().issued = token

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        uri, form, headers = request
        return FormRequest(uri, form, headers)

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers)


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication; the token endpoint and the issuer are both accepted as audience."""

    CLIENT_AUTH_METHOD = AuthMethod.private_key_jwt.value

    def __init__(self, settings: Settings) -> None:
        super().__init__(validate_jti=True, leeway=settings.clock_skew_s)
        self._audiences = [settings.token_endpoint, settings.issuer]

    def get_audiences(self) -> list[str]:
        return self._audiences

    def resolve_client_public_key(self, client: AllianceClient) -> KeySet:
        keys = _state.get().client_keys
        if keys is None:
            raise InvalidClientError(description="No public key is registered for this client.")
        return keys

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # Recorded by the router in the database (unique per client), where a replay is refused.
        _state.get().assertion_claims = dict(claims)
        return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ACCEPTED_ALGS)
        except JoseError as exc:
            raise InvalidClientError(description=_safe(exc.description or "Invalid client assertion.")) from exc
        self.verify_claims(token.claims)
        claims = dict(token.claims)
        if int(claims["exp"]) - int(claims.get("iat", time.time())) > MAX_ASSERTION_LIFETIME_S:
            raise InvalidClientError(description="The client assertion lives longer than 5 minutes.")
        return claims


def _safe(text: str) -> str:
    # joserfc echoes attacker-chosen header values; Authlib refuses some characters in descriptions.
    bad = set(invalid_error_characters(text))
    return "".join("?" if char in bad else char for char in text)


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [method.value for method in AuthMethod]


def build_authorization_server(settings: Settings) -> AllianceAuthorizationServer:
    def generate_access_token(client: AllianceClient, grant_type: str, user: Any, scope: str) -> str:
        row = client.row
        return mint_access_token(
            _state.get().signing_key,
            settings,
            client_id=row.id,
            scope=scope,
            kind=row.kind.value,
            partner_id=row.partner_id,
            role=row.role.value if row.role else None,
        )

    server = AllianceAuthorizationServer(scopes_supported=list(SCOPES))
    server.register_grant(ClientCredentials)
    server.register_client_auth_method(AuthMethod.private_key_jwt.value, PrivateKeyJWT(settings))
    server.register_token_generator(
        "default",
        BearerTokenGenerator(generate_access_token, expires_generator=settings.access_token_ttl_s),
    )
    return server


def run_token_request(
    server: AllianceAuthorizationServer, state: TokenRequestState, form: dict[str, str], headers: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Authlib's synchronous part (argon2 included): call it in a worker thread."""
    reset = _state.set(state)
    try:
        return server.create_token_response((state.settings.token_endpoint, form, headers))  # type: ignore[no-any-return]
    finally:
        _state.reset(reset)


def authenticate_caller(
    server: AllianceAuthorizationServer, state: TokenRequestState, form: dict[str, str], headers: Any
) -> AllianceClient:
    """Client authentication alone, for the introspection and revocation endpoints."""
    reset = _state.set(state)
    try:
        request = FormRequest(state.settings.token_endpoint, form, headers)
        methods = [method.value for method in AuthMethod]
        return server.authenticate_client(request, methods, "token")  # type: ignore[no-any-return]
    finally:
        _state.reset(reset)


def claimed_client_id(form: dict[str, str], headers: Any) -> str | None:
    """The client id the request claims (unverified), to load before authenticating.

    More than one authentication mechanism in one request is refused (RFC 6749 section 2.3).
    """
    claimed: list[str] = []
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            claimed.append(unquote(base64.b64decode(authorization[6:]).decode().split(":", 1)[0]))
        except (ValueError, UnicodeError):
            raise InvalidClientError(description="Malformed Basic credentials.", status_code=401) from None
    if form.get("client_secret"):
        claimed.append(form.get("client_id", ""))
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequestError("Unsupported client_assertion_type.")
        try:
            subject = json.loads(jws.extract_compact(form["client_assertion"].encode()).payload).get("sub")
        except (JoseError, ValueError, UnicodeError, AttributeError):
            raise InvalidClientError(description="Malformed client assertion.") from None
        claimed.append(subject if isinstance(subject, str) else "")
    if len(claimed) > 1:
        raise InvalidRequestError("Use exactly one client authentication method.")
    return claimed[0] if claimed else form.get("client_id")


class JwksFetcher:
    """Partners' ``jwks_uri`` documents, fetched with httpx and cached for ``settings.jwks_uri_cache_s``."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._ttl = settings.jwks_uri_cache_s
        self._transport = transport
        self._cache: dict[str, tuple[float, KeySet]] = {}

    async def get(self, uri: str) -> KeySet | None:
        cached = self._cache.get(uri)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=5.0) as client:
                response = await client.get(uri, headers={"accept": "application/json"})
                response.raise_for_status()
                keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, JoseError, ValueError, TypeError, KeyError):
            return cached[1] if cached else None
        self._cache[uri] = (time.monotonic(), keys)
        return keys
