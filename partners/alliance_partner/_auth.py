"""Client authentication at the token endpoint: a shared secret, or a private key (``private_key_jwt``).

Authlib signs the assertions; two of its defaults do not fit a strict server and are replaced here:

* ``PrivateKeyJWT`` stores the ``jti`` it generates in the ``claims`` dict it was given and reuses it on the
  next token request, which the service refuses as a replay. Each assertion here gets a fresh ``jti``.
* Its assertions live an hour; the service accepts at most five minutes. They live ``ASSERTION_LIFETIME_S``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
PrivateKey = ECKey | RSAKey
PrivateKeyInput = PrivateKey | str | bytes | Path | Mapping[str, Any]

ASSERTION_LIFETIME_S = 60
TOKEN_PATH = "/oauth/token"
REVOKE_PATH = "/oauth/revoke"
METADATA_PATH = "/.well-known/oauth-authorization-server"


def load_private_key(source: PrivateKeyInput) -> PrivateKey:
    """A private EC P-256 or RSA key from PEM (text, bytes or a file path), a private JWK, or a joserfc key."""
    if isinstance(source, ECKey | RSAKey):
        key: PrivateKey = source
    elif isinstance(source, Mapping):
        data = dict(source)
        key = ECKey.import_key(data) if data.get("kty") == "EC" else RSAKey.import_key(data)
    else:
        pem = source.read_bytes() if isinstance(source, Path) else source
        pem_bytes = pem.encode() if isinstance(pem, str) else pem
        try:
            key = ECKey.import_key(pem_bytes)
        except (JoseError, ValueError, TypeError):
            key = RSAKey.import_key(pem_bytes)
    if not key.is_private:
        raise ValueError("private_key_jwt needs the private key (the service holds only the public one)")
    return key


def default_alg(key: PrivateKey) -> str:
    """ES256 for EC P-256 keys, PS256 for RSA keys: the algorithms the service accepts (RS256 is refused)."""
    return "ES256" if isinstance(key, ECKey) else "PS256"


def key_id(key: PrivateKey) -> str:
    """The key's ``kid``, else its RFC 7638 thumbprint (what ``alliance-partner jwks`` publishes)."""
    return key.kid or key.thumbprint()


def public_jwks(key: PrivateKey, kid: str | None = None) -> dict[str, Any]:
    """The public JWKS to register with the alliance for this private key."""
    public = dict(key.as_dict(private=False))
    public.update(kid=kid or key_id(key), alg=default_alg(key), use="sig")
    return {"keys": [public]}


class FreshPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """RFC 7523 ``private_key_jwt``: a new short-lived assertion, with a fresh ``jti``, for every request.

    ``audience`` is the service's issuer (or its token endpoint); when left None it is set from the server
    metadata before the first token request.
    """

    name = "private_key_jwt"

    def __init__(self, key: PrivateKey, *, kid: str | None = None, alg: str | None = None) -> None:
        super().__init__(token_endpoint=None, claims=None, headers=None, alg=alg or default_alg(key))
        self.key = key
        self.kid = kid or key_id(key)
        self.audience: str | None = None

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        return str(
            private_key_jwt_sign(
                self.key,
                client_id=auth.client_id,
                token_endpoint=self.audience or token_endpoint,
                alg=self.alg,
                claims={"jti": secrets.token_urlsafe(24)},
                header={"kid": self.kid},
                issued_at=now,
                expires_at=now + ASSERTION_LIFETIME_S,
            )
        )
