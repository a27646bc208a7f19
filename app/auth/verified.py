"""The claims of access tokens this process has verified, kept so that a token's signature is checked once per
process instead of on every call (ES256 verification is the largest cost of a protected call that reads nothing
else from the database).

Keyed by the SHA-256 of the whole token: a token that differs in one byte is another key and is verified in full.
An entry is used only while the token is unexpired (``exp`` plus the clock-skew leeway verification allows) and
while the key that signed it is still published; bounded, the oldest entry going first. It caches the token's
verification only: whether the token may still be used (revoked, client or partner inactive) is its standing,
read on every call through ``app.auth.standing`` (forgotten on the database's notice).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: dict[str, Any]
    kid: str | None
    usable_until: float


@dataclass
class VerifiedTokens:
    leeway_s: int
    max_entries: int = MAX_ENTRIES
    _entries: OrderedDict[bytes, _Verified] = field(default_factory=OrderedDict)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> tuple[dict[str, Any], str | None] | None:
        """The claims and signing key id of a token verified before and not expired since; None otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.time() > entry.usable_until:
            del self._entries[key]
            return None
        return entry.claims, entry.kid

    def put(self, key: bytes, claims: dict[str, Any], kid: str | None) -> None:
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            return
        self._entries[key] = _Verified(claims, kid, float(expires) + self.leeway_s)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
