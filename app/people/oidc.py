"""Single sign-on for people with the firm's identity provider: OpenID Connect, authorization code with PKCE
(Authlib's httpx client), the ID token verified here (signature against the provider's JWKS, issuer, audience,
expiry, nonce) and the person's role read from one claim through a configured map.

Nothing here knows HTTP frameworks: the console's ``sso`` module carries state between the two legs (a sealed
cookie) and answers the browser.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from app.auth.scopes import StaffRole
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key

ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256")
METADATA_CACHE_S = 3600.0
LOGIN_STATE_S = 600


class SsoRefused(Exception):
    """The sign-in with the identity provider does not hold; ``reason`` is for the audit log, not the page."""

    def __init__(self, reason: str, username: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.username = username


@dataclass(frozen=True, slots=True)
class LoginState:
    """What the first leg remembers for the second (sealed in a cookie): state, nonce, PKCE verifier, next page."""

    state: str
    nonce: str
    code_verifier: str
    next_url: str
    expires_at: float

    def seal(self, settings: Settings) -> str:
        payload = json.dumps([self.state, self.nonce, self.code_verifier, self.next_url, self.expires_at]).encode()
        return _box(settings).seal(payload).hex()

    @classmethod
    def open(cls, settings: Settings, sealed: str | None) -> LoginState:
        if not sealed:
            raise SsoRefused("no_login_state")
        try:
            state, nonce, verifier, next_url, expires_at = json.loads(_box(settings).open(bytes.fromhex(sealed)))
        except Exception as error:  # a cookie not sealed by us, or altered: all alike
            raise SsoRefused("bad_login_state") from error
        if float(expires_at) < time.time():
            raise SsoRefused("login_state_expired")
        return cls(str(state), str(nonce), str(verifier), str(next_url), float(expires_at))


def _box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "oidc-login-state")


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    subject: str  # "{issuer} {sub}"
    username: str
    display_name: str
    role: StaffRole


def role_from_claims(settings: Settings, claims: dict[str, Any]) -> StaffRole | None:
    """The one role the configured claim maps to; none, or several different ones, is no role."""
    value = claims.get(settings.oidc_role_claim)
    values = value if isinstance(value, list) else [value]
    mapped = set()
    for item in values:
        role = settings.oidc_role_map.get(str(item)) if isinstance(item, str | int) else None
        if role is not None and role in StaffRole.__members__:
            mapped.add(StaffRole(role))
    return mapped.pop() if len(mapped) == 1 else None


@dataclass
class IdentityProvider:
    """The configured identity provider: its discovery document and keys, fetched when first needed and cached.
    ``transport`` lets tests run the provider in process."""

    settings: Settings
    transport: httpx.AsyncBaseTransport | None = None
    _metadata: dict[str, Any] | None = None
    _fetched_at: float = 0.0
    _keys: KeySet | None = field(default=None, repr=False)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, timeout=self.settings.oidc_timeout_s)

    def _oauth_client(self, redirect_uri: str) -> AsyncOAuth2Client:
        secret = self.settings.oidc_client_secret
        return AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=self.settings.oidc_scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            transport=self.transport,
            timeout=self.settings.oidc_timeout_s,
        )

    @property
    def issuer(self) -> str:
        return (self.settings.oidc_issuer or "").rstrip("/")

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._fetched_at > METADATA_CACHE_S:
            url = self.settings.oidc_discovery_url or self.issuer + "/.well-known/openid-configuration"
            try:
                async with self._http() as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    metadata = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise SsoRefused("discovery_failed") from error
            if not isinstance(metadata, dict) or metadata.get("issuer", "").rstrip("/") != self.issuer:
                raise SsoRefused("discovery_issuer_mismatch")
            self._metadata, self._fetched_at, self._keys = metadata, time.monotonic(), None
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            metadata = await self.metadata()
            try:
                async with self._http() as http:
                    response = await http.get(str(metadata["jwks_uri"]))
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, KeyError, JoseError) as error:
                raise SsoRefused("jwks_failed") from error
        return self._keys

    async def start(self, redirect_uri: str, next_url: str) -> tuple[str, LoginState]:
        """The provider's authorization URL for this sign-in, and what the callback must find again."""
        metadata = await self.metadata()
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
        async with self._oauth_client(redirect_uri) as client:
            url, state = client.create_authorization_url(
                str(metadata["authorization_endpoint"]), code_verifier=verifier, nonce=nonce
            )
        return url, LoginState(state, nonce, verifier, next_url, time.time() + LOGIN_STATE_S)

    async def finish(self, redirect_uri: str, login: LoginState, *, code: str, state: str) -> SsoIdentity:
        """Exchange the code (with the PKCE verifier) and verify the ID token; answers who signed in."""
        if not secrets.compare_digest(state.encode(), login.state.encode()):
            raise SsoRefused("state_mismatch")
        metadata = await self.metadata()
        try:
            async with self._oauth_client(redirect_uri) as client:
                token = await client.fetch_token(
                    str(metadata["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=login.code_verifier,
                )
        except Exception as error:  # the provider refused the code, or answered something else than a token
            raise SsoRefused("code_exchange_failed") from error
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoRefused("no_id_token")
        claims = await self._verified_claims(id_token, login.nonce)
        username = str(claims.get(self.settings.oidc_username_claim) or claims.get("email") or claims["sub"])
        role = role_from_claims(self.settings, claims)
        if role is None:
            raise SsoRefused("no_mapped_role", username=username)
        display_name = str(claims.get("name") or username)
        return SsoIdentity(f"{self.issuer} {claims['sub']}", username, display_name, role)

    async def _verified_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            try:
                decoded = jwt.decode(id_token, await self.keys(), algorithms=list(ID_TOKEN_ALGORITHMS))
            except JoseError:  # perhaps a key the provider rotated in since we fetched its set
                decoded = jwt.decode(id_token, await self.keys(refresh=True), algorithms=list(ID_TOKEN_ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.settings.clock_skew_s,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.settings.oidc_client_id or ""},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(decoded.claims)
        except JoseError as error:
            raise SsoRefused(f"id_token_invalid:{type(error).__name__}") from error
        claims = decoded.claims
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.settings.oidc_client_id:
            raise SsoRefused("id_token_invalid:azp")
        return claims
