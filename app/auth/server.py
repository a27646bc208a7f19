"""Authlib's RFC 6749 authorization server, wired to Alliance.

Authlib is synchronous and has no Starlette integration: the router loads everything a token request needs
(the client, its secrets and keys, the signing key) asynchronously, puts it in ``TokenRequestState`` and runs
Authlib's checks in a worker thread. Side effects that need the database (the assertion ``jti``) are collected
in that state and written by the router afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidRequestError, OAuth2Error
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
from app.auth.service import InvalidClientConfiguration, TokenClient, partner_key_set, verify_any_secret
from app.auth.tokens import ACCEPTED_ALGS, mint_access_token
from app.core.config import Settings
from app.core.outbound_urls import CheckedTransport, UnsafeTarget, normalise_target

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300
MAX_JTI_CHARS = 200  # the column's width
# Client ids are ours (``cli_...``, at most 40 characters): anything else cannot name a client and is refused
# before it reaches the database, the audit log or the throttle.
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,40}")


def is_plausible_client_id(value: str) -> bool:
    return _CLIENT_ID.fullmatch(value) is not None


@dataclass
class TokenRequestState:
    settings: Settings
    client: TokenClient | None
    client_keys: KeySet | None
    signing_key: ECKey
    assertion_claims: dict[str, Any] | None = None
    issued: dict[str, Any] = field(default_factory=dict)
    # The client whose authentication succeeded (even when the request then fails, e.g. on its scope).
    authenticated: AllianceClient | None = None


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
        return verify_any_secret(self.loaded.secret_hashes, client_secret)

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


class UnknownClient(ClientMixin):  # type: ignore[misc]
    """Stands for a client id that names no client: it never authenticates, but checking a secret against it
    costs the same argon2 work as a wrong secret, so that timing does not tell which client ids exist."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_any_secret((), client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return False

    def get_allowed_scope(self, scope: str | None) -> None:
        return None


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
    def query_client(self, client_id: str) -> AllianceClient | UnknownClient:
        loaded = _state.get().client
        return AllianceClient(loaded) if loaded and loaded.client.id == client_id else UnknownClient(client_id)

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> AllianceClient:
        client = super().authenticate_client(request, methods, endpoint)
        if not isinstance(client, AllianceClient):  # pragma: no cover (an UnknownClient never authenticates)
            raise InvalidClientError()
        _state.get().authenticated = client
        return client

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
    """RFC 7523 client authentication.

    The audience must be one string: the issuer or the token endpoint (an array is refused, even one that holds
    either). The ``jti`` must be a printable string of at most 200 characters; whether it was used before is
    decided by the router, in the database.
    """

    CLIENT_AUTH_METHOD = AuthMethod.private_key_jwt.value

    def __init__(self, settings: Settings) -> None:
        super().__init__(validate_jti=True, leeway=settings.clock_skew_s)
        self._audiences = [settings.token_endpoint, settings.issuer]

    def get_audiences(self) -> list[str]:
        return self._audiences

    def resolve_client_public_key(self, client: AllianceClient | UnknownClient) -> KeySet:
        keys = _state.get().client_keys
        if keys is None or not isinstance(client, AllianceClient):
            raise InvalidClientError(description="No usable public key is registered for this client.")
        return keys

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS or not jti.isprintable():
            raise InvalidClientError(
                description=f"The JWT ID must be a printable string of at most {MAX_JTI_CHARS} characters."
            )
        # Recorded by the router in the database (unique per client), where a replay is refused.
        _state.get().assertion_claims = dict(claims)
        return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ACCEPTED_ALGS)
        except JoseError as exc:
            raise InvalidClientError(description=_safe(exc.description or "Invalid client assertion.")) from exc
        audience = token.claims.get("aud")
        if not isinstance(audience, str) or audience not in self._audiences:
            raise InvalidClientError(description="The audience must be the issuer or the token endpoint, alone.")
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


def run_client_authentication(
    server: AllianceAuthorizationServer, state: TokenRequestState, form: dict[str, str], headers: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Client authentication alone, for the introspection and revocation endpoints; in a worker thread too.

    Answers like ``run_token_request``: ``200`` (the client is then ``state.authenticated``) or an error.
    """
    reset = _state.set(state)
    try:
        request = FormRequest(state.settings.token_endpoint, form, headers)
        methods = [method.value for method in AuthMethod]
        server.authenticate_client(request, methods, "token")
    except OAuth2Error as error:
        status, body, error_headers = error(None)
        return status, dict(body), dict(error_headers)
    finally:
        _state.reset(reset)
    return 200, {}, {}


def uses_basic_auth(headers: Any) -> bool:
    return str(headers.get("authorization", "")).lower().startswith("basic ")


def claimed_client_id(form: dict[str, str], headers: Any) -> str | None:
    """The client id the request claims (unverified), to load before authenticating.

    More than one authentication mechanism in one request is refused (RFC 6749 section 2.3). A claimed id
    that cannot be a client id (too long, control characters...) is ``invalid_client`` at once: it never
    reaches the database.
    """
    basic = uses_basic_auth(headers)
    claimed: list[str] = []
    if basic:
        try:
            decoded = base64.b64decode(headers["authorization"][6:].strip(), validate=True).decode()
            claimed.append(unquote(decoded.split(":", 1)[0], errors="strict"))
        except (ValueError, UnicodeError, binascii.Error):
            raise InvalidClientError(description="Malformed Basic credentials.", status_code=401) from None
    if form.get("client_secret"):
        claimed.append(form.get("client_id", ""))
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequestError("Unsupported client_assertion_type.")
        try:
            payload = json.loads(jws.extract_compact(form["client_assertion"].encode()).payload)
            subject = payload.get("sub")
        except (JoseError, ValueError, UnicodeError, AttributeError, TypeError, RecursionError):
            raise InvalidClientError(description="Malformed client assertion.") from None
        claimed.append(subject if isinstance(subject, str) else "")
    if len(claimed) > 1:
        raise InvalidRequestError("Use exactly one client authentication method.")
    client_id = claimed[0] if claimed else form.get("client_id")
    if client_id is not None and not is_plausible_client_id(client_id):
        raise InvalidClientError(description="Unknown client.", status_code=401 if basic else 400)
    return client_id


def _partner_keys(document: Any) -> KeySet | None:
    try:
        return partner_key_set(document, source="The fetched JWKS")
    except InvalidClientConfiguration:
        return None


def registered_partner_keys(jwks: dict[str, Any]) -> KeySet | None:
    """A client's registered keys, checked again at use (rows registered before the rules were tightened)."""
    return _partner_keys(jwks)


@dataclass
class _FetchedKeys:
    keys: KeySet
    fetched_at: float


class JwksFetcher:
    """Partners' ``jwks_uri`` documents, fetched with httpx and cached for ``settings.jwks_uri_cache_s``.

    * One fetch at a time per URI: concurrent requests wait for it rather than fetching too.
    * A failed fetch is not retried for ``FAILURE_BACKOFF_S``; meanwhile the keys last fetched are served, but
      never once they are older than ``MAX_STALE_S``.
    * A response is read up to ``MAX_BYTES`` within ``TIMEOUT_S`` in all; its keys obey the rules of
      registered keys (``partner_key_set``), else the fetch counts as failed.
    * The URI obeys the rules of every outbound target (``app.core.outbound_urls``), checked again at each
      connection; a refused one counts as a failed fetch.
    """

    MAX_BYTES = 64 * 1024
    TIMEOUT_S = 5.0
    FAILURE_BACKOFF_S = 60.0
    MAX_STALE_S = 3600.0

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = settings.jwks_uri_cache_s
        self._allow_private = settings.private_targets_allowed
        self._transport = transport
        self._clock = clock
        self._cache: dict[str, _FetchedKeys] = {}
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, uri: str) -> KeySet | None:
        if (fresh := self._fresh(uri)) is not None:
            return fresh
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            if (fresh := self._fresh(uri)) is not None:  # fetched while this request waited
                return fresh
            failed_at = self._failed_at.get(uri)
            if failed_at is not None and self._clock() - failed_at < self.FAILURE_BACKOFF_S:
                return self._stale(uri)
            keys = await self._fetch(uri)
            if keys is None:
                self._failed_at[uri] = self._clock()
                return self._stale(uri)
            self._failed_at.pop(uri, None)
            self._cache[uri] = _FetchedKeys(keys, self._clock())
            return keys

    def _fresh(self, uri: str) -> KeySet | None:
        cached = self._cache.get(uri)
        if cached and self._clock() - cached.fetched_at < self._ttl:
            return cached.keys
        return None

    def _stale(self, uri: str) -> KeySet | None:
        cached = self._cache.get(uri)
        if cached is None:
            return None
        if self._clock() - cached.fetched_at > self.MAX_STALE_S:
            del self._cache[uri]
            return None
        return cached.keys

    async def _fetch(self, uri: str) -> KeySet | None:
        try:
            target = normalise_target(uri, allow_private=self._allow_private)
            async with asyncio.timeout(self.TIMEOUT_S):
                body = await self._download(target)
            if body is None:
                return None
            document = json.loads(body)
        except (httpx.HTTPError, TimeoutError, UnsafeTarget, ValueError, UnicodeError, RecursionError):
            return None
        return _partner_keys(document)

    async def _download(self, uri: str) -> bytes | None:
        async with (
            httpx.AsyncClient(
                transport=self._transport or CheckedTransport(allow_private=self._allow_private),
                timeout=self.TIMEOUT_S,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream("GET", uri, headers={"accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                return None
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.MAX_BYTES:
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.MAX_BYTES:
                    return None
            return bytes(body)
