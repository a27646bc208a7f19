"""RFC 9068 access tokens: minted as ES256-signed JWTs, verified with an algorithm allow-list."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.core.config import Settings

ACCEPTED_ALGS = ["ES256", "PS256"]
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


class InvalidToken(Exception):
    """The token is malformed, forged, expired or not meant for this API. The message is safe to show."""


def mint_access_token(
    key: ECKey,
    settings: Settings,
    *,
    client_id: str,
    scope: str,
    kind: str,
    partner_id: str | None,
    role: str | None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": client_id,
        "aud": settings.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_ttl_s,
        "jti": secrets.token_urlsafe(24),
        "client_id": client_id,
        "scope": scope,
        "kind": kind,
    }
    if partner_id:
        claims["partner_id"] = partner_id
    if role:
        claims["role"] = role
    header = {"alg": key.alg or "ES256", "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims, key, algorithms=ACCEPTED_ALGS)


def unverified_kid(token: str) -> str | None:
    """The ``kid`` the token's header names (unverified), to pick the verification key."""
    try:
        kid = jws.extract_compact(token.encode()).protected.get("kid")
    except (JoseError, ValueError, UnicodeError, TypeError, AttributeError, RecursionError):
        raise InvalidToken("The access token is malformed.") from None
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("The access token is malformed.")
    return kid


def verify_access_token(token: str, keys: KeySet, settings: Settings, *, check_expiry: bool = True) -> dict[str, Any]:
    """The claims of a valid token; raises ``InvalidToken`` otherwise."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ACCEPTED_ALGS)
    except (JoseError, ValueError, UnicodeError):
        raise InvalidToken("The access token signature is invalid.") from None
    if str(decoded.header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("The token is not an access token.")
    registry = jwt.JWTClaimsRegistry(
        leeway=settings.clock_skew_s,
        iss={"essential": True, "value": settings.issuer},
        aud={"essential": True, "value": settings.issuer},
        exp={"essential": check_expiry},
        iat={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
        jti={"essential": True},
        scope={"essential": True},
    )
    claims = dict(decoded.claims)
    if not check_expiry:
        claims.pop("exp", None)
        claims.pop("nbf", None)
    try:
        registry.validate(claims)
    except JoseError:
        raise InvalidToken("The access token is expired or not meant for this API.") from None
    return dict(decoded.claims)
