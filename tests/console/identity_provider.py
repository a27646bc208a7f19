"""A small OpenID Connect provider for the tests, run in process (ASGI): discovery, authorize, token and JWKS.

It does what a real provider does on the wire: the authorization endpoint issues a one-time code bound to the
client, the redirect URI, the PKCE challenge and the nonce; the token endpoint authenticates the client
(client_secret_basic), checks the code, the redirect URI and the PKCE verifier, and answers an RS256 ID token
signed with the key its JWKS publishes. ``person`` is who "signs in" at the next authorization; ``tamper`` makes
the next ID token wrong in one way (a test of the relying party's checks).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

ISSUER = "https://idp.test"
CLIENT_ID = "alliance-console"
CLIENT_SECRET = "idp-test-client-secret"


@dataclass
class SmallIdentityProvider:
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"}))
    person: dict[str, Any] = field(default_factory=dict)
    tamper: str | None = None
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": grant["person"]["sub"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **{name: value for name, value in grant["person"].items() if name != "sub"},
        }
        if self.tamper == "nonce":
            claims["nonce"] = "another-nonce"
        if self.tamper == "audience":
            claims["aud"] = "another-client"
        if self.tamper == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        token = jwt.encode({"alg": "RS256", "kid": "idp-key-1"}, claims, self.key)
        if self.tamper == "signature":  # the payload changed after signing: a role raised to admin
            header, payload, signature = token.split(".")
            body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b'"auditors"', b'"admins"')
            token = ".".join([header, base64.urlsafe_b64encode(body).rstrip(b"=").decode(), signature])
        if self.tamper == "foreign_key":  # signed by a key the provider never published
            stranger = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"})
            token = jwt.encode({"alg": "RS256", "kid": "idp-key-1"}, claims, stranger)
        return token

    def app(self) -> FastAPI:
        idp = FastAPI()

        @idp.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/authorize",
                "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @idp.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @idp.get("/authorize", response_model=None)
        async def authorize(request: Request) -> RedirectResponse | JSONResponse:
            query = request.query_params
            if (
                query.get("client_id") != CLIENT_ID
                or query.get("response_type") != "code"
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge")
                or "openid" not in (query.get("scope") or "").split()
            ):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "person": dict(self.person),
                "nonce": query.get("nonce"),
                "challenge": query["code_challenge"],
                "redirect_uri": query.get("redirect_uri"),
            }
            target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
            return RedirectResponse(target, status_code=302)

        @idp.post("/token")
        async def token(
            request: Request,
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(),
        ) -> JSONResponse:
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            self.token_requests.append({"grant_type": grant_type, "code_verifier": code_verifier})
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(code, None)  # a code is good once
            if grant_type != "authorization_code" or grant is None or grant["redirect_uri"] != redirect_uri:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=")
            if challenge.decode() != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self.id_token(grant),
                }
            )

        return idp
