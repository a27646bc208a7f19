"""Access-token signing keys: created, rotated and published; the private halves sealed with the master key.

Rotation never breaks a token already issued: the retired key stays published (and accepted) for
``settings.retired_key_publish_s`` after it stops signing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth.models import SigningKey, SigningKeyStatus
from app.core import clock
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key

SIGNING_ALG = "ES256"
CACHE_TTL_S = 30.0
# A transaction-scoped PostgreSQL advisory lock: changes to the signing keys are made one at a time.
SIGNING_KEYS_LOCK = 7_261_746_401_537  # arbitrary, unique to signing keys


async def _lock_signing_keys(session: AsyncSession) -> None:
    """Wait for (then hold, until the transaction ends) the right to change the signing keys."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({SIGNING_KEYS_LOCK})"))


def _sealed_box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "signing-keys")


def _new_key_row(settings: Settings, status: SigningKeyStatus) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", parameters={"use": "sig", "alg": SIGNING_ALG}, private=True, auto_kid=True)
    return {
        "kid": key.kid,
        "alg": SIGNING_ALG,
        "sealed_private_key": _sealed_box(settings).seal(key.as_pem(private=True)),
        "public_jwk": key.as_dict(private=False),
        "status": status,
        "created_at": clock.real_now(),
    }


async def ensure_active_key(session: AsyncSession, settings: Settings) -> None:
    """Create the first signing key if there is none; concurrent callers create exactly one."""
    await _lock_signing_keys(session)
    statement = (
        insert(SigningKey)
        .values(**_new_key_row(settings, SigningKeyStatus.active))
        .on_conflict_do_nothing(index_elements=["status"], index_where=text("status = 'active'"))
    )
    await session.execute(statement)


async def rotate_signing_key(session: AsyncSession, settings: Settings) -> tuple[str | None, str]:
    """Retire the active key and make a new one active; returns (retired kid, new kid).

    Concurrent rotations run one after the other (each retires the key the previous one created) instead of
    colliding on the one-active-key index.
    """
    await _lock_signing_keys(session)
    retired = await session.scalar(
        update(SigningKey)
        .where(col(SigningKey.status) == SigningKeyStatus.active)
        .values(status=SigningKeyStatus.retired, retired_at=clock.real_now())
        .returning(col(SigningKey.kid))
    )
    row = _new_key_row(settings, SigningKeyStatus.active)
    await session.execute(insert(SigningKey).values(**row))
    return retired, row["kid"]


async def published_keys(session: AsyncSession, settings: Settings) -> list[SigningKey]:
    """The active key and the keys retired recently enough that tokens they signed may still be live."""
    horizon = clock.real_now() - timedelta(seconds=settings.retired_key_publish_s)
    statement = (
        select(SigningKey)
        .where(or_(col(SigningKey.status) == SigningKeyStatus.active, col(SigningKey.retired_at) > horizon))
        .order_by(col(SigningKey.created_at).desc())
    )
    return list((await session.scalars(statement)).all())


@dataclass
class Keyring:
    """Per-process cache of the signing key and the published keys, refreshed every ``CACHE_TTL_S``.

    An unknown ``kid`` (a key rotated in by another process) forces one refresh.
    """

    settings: Settings
    _signing: ECKey | None = None
    _verifying: KeySet | None = None
    _loaded_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def signing_key(self, session: AsyncSession) -> ECKey:
        await self._refresh_if_stale(session)
        if self._signing is None:
            await ensure_active_key(session, self.settings)
            await self._refresh(session)
        assert self._signing is not None
        return self._signing

    async def verification_keys(self, session: AsyncSession, kid: str | None) -> KeySet:
        await self._refresh_if_stale(session)
        assert self._verifying is not None
        known = {key.kid for key in self._verifying.keys}
        if kid not in known and time.monotonic() - self._loaded_at > 1.0:
            await self._refresh(session)
        return self._verifying

    async def publishes(self, session: AsyncSession, kid: str | None) -> bool:
        """Whether the key ``kid`` is still published (a token it signed, verified before, is still accepted)."""
        keys = await self.verification_keys(session, kid)
        return any(key.kid == kid for key in keys.keys)

    def published(self, kid: str | None) -> bool | None:
        """``publishes`` from memory; None when it must read the keys first (stale, or ``kid`` unknown)."""
        if self._verifying is None or time.monotonic() - self._loaded_at > CACHE_TTL_S:
            return None
        if any(key.kid == kid for key in self._verifying.keys):
            return True
        return None if time.monotonic() - self._loaded_at > 1.0 else False

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    async def _refresh_if_stale(self, session: AsyncSession) -> None:
        if self._verifying is None or time.monotonic() - self._loaded_at > CACHE_TTL_S:
            await self._refresh(session)

    async def _refresh(self, session: AsyncSession) -> None:
        async with self._lock:
            rows = await published_keys(session, self.settings)
            box = _sealed_box(self.settings)
            self._verifying = KeySet([ECKey.import_key(row.public_jwk) for row in rows])
            active = next((row for row in rows if row.status == SigningKeyStatus.active), None)
            self._signing = (
                ECKey.import_key(box.open(active.sealed_private_key), parameters={"kid": active.kid, "alg": active.alg})
                if active
                else None
            )
            self._loaded_at = time.monotonic()
