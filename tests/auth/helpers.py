"""Building token requests the way partners do."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from app.core.config import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def partner_key(kind: str = "EC") -> ECKey | RSAKey:
    if kind == "RSA":
        return RSAKey.generate_key(2048, parameters={"alg": "PS256", "use": "sig"}, private=True, auto_kid=True)
    return ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True, auto_kid=True)


def client_assertion(
    key: ECKey | RSAKey,
    client_id: str,
    audience: str,
    *,
    jti: str | None = None,
    lifetime_s: int = 60,
    issued_at: int | None = None,
    alg: str | None = None,
) -> str:
    now = issued_at if issued_at is not None else int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": jti or secrets.token_urlsafe(16),
    }
    header = {"alg": alg or key.alg, "kid": key.kid}
    return jwt.encode(header, claims, key, algorithms=["ES256", "PS256"])


async def token_with_secret(
    client: httpx.AsyncClient, client_id: str, secret: str, *, scope: str | None = None, post: bool = False
) -> httpx.Response:
    form: dict[str, Any] = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    if post:
        return await client.post("/oauth/token", data={**form, "client_id": client_id, "client_secret": secret})
    return await client.post("/oauth/token", data=form, auth=(client_id, secret))


async def token_with_assertion(client: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


def settings_of(client: httpx.AsyncClient) -> Settings:
    transport = client._transport
    return transport.app.state.settings  # type: ignore[attr-defined]
