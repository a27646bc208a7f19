"""Data keys: created, rotated (old ciphertexts stay readable), loaded into a ``DataCipher``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.config import Settings
from app.core.crypto import SealedBox, decode_master_key
from app.privacy.crypto import BlindIndex, DataCipher
from app.privacy.models import DataKey

CACHE_TTL_S = 30.0
_ROTATION_LOCK = 0x5DA7A  # advisory lock id serialising data-key rotation


def _box(settings: Settings) -> SealedBox:
    return SealedBox(decode_master_key(settings.master_key_value), "data-keys")


def blind_index(settings: Settings) -> BlindIndex:
    return BlindIndex(decode_master_key(settings.master_key_value))


async def ensure_data_key(session: AsyncSession, settings: Settings) -> None:
    await session.execute(
        insert(DataKey)
        .values(sealed_key=_box(settings).seal(os.urandom(32)), active=True, created_at=clock.real_now())
        .on_conflict_do_nothing(index_elements=["active"], index_where=text("active"))
    )


async def rotate_data_key(session: AsyncSession, settings: Settings) -> int:
    """Make a new key active; returns its id. Existing ciphertexts stay readable until re-encrypted."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _ROTATION_LOCK})
    await session.execute(update(DataKey).where(col(DataKey.active)).values(active=False, retired_at=clock.real_now()))
    key = DataKey(sealed_key=_box(settings).seal(os.urandom(32)))
    session.add(key)
    await session.flush()
    assert key.id is not None
    return key.id


async def load_cipher(session: AsyncSession, settings: Settings) -> DataCipher:
    rows = list((await session.scalars(select(DataKey))).all())
    if not any(row.active for row in rows):
        await ensure_data_key(session, settings)
        rows = list((await session.scalars(select(DataKey))).all())
    box = _box(settings)
    keys = {row.id: AESGCM(box.open(row.sealed_key)) for row in rows if row.id is not None}
    active = next(row.id for row in rows if row.active and row.id is not None)
    return DataCipher(keys, active)


@dataclass
class DataKeyring:
    """Per-process cache of the data cipher, reloaded every ``CACHE_TTL_S`` or when a ciphertext names an
    unknown key (rotated in by another process)."""

    settings: Settings
    _cipher: DataCipher | None = None
    _loaded_at: float = 0.0
    index: BlindIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = blind_index(self.settings)

    async def cipher(self, session: AsyncSession, *, refresh: bool = False) -> DataCipher:
        if refresh or self._cipher is None or time.monotonic() - self._loaded_at > CACHE_TTL_S:
            self._cipher = await load_cipher(session, self.settings)
            self._loaded_at = time.monotonic()
        return self._cipher

    def invalidate(self) -> None:
        self._cipher = None


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding ``DataCipher`` ciphertexts, bound to ``purpose`` (its associated data)."""

    table: str
    column: str
    purpose: str
    key: str = "id"


async def reencrypt_batch(session: AsyncSession, cipher: DataCipher, target: EncryptedColumn, batch_size: int) -> int:
    """Re-encrypt up to ``batch_size`` values of ``target`` still under an older key; returns how many."""
    active = cipher.active_key_id.to_bytes(4, "big")
    # Bytes 2-5 of a ciphertext are its key id (see DataCipher).
    rows = (
        await session.execute(
            text(
                f"SELECT {target.key}, {target.column} FROM {target.table} "
                f"WHERE {target.column} IS NOT NULL AND substring({target.column} FROM 2 FOR 4) <> :active "
                f"ORDER BY {target.key} LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"active": active, "limit": batch_size},
        )
    ).all()
    if not rows:
        return 0
    keys = [row[0] for row in rows]
    values = [cipher.encrypt(cipher.decrypt(row[1], target.purpose), target.purpose) for row in rows]
    await session.execute(
        text(
            f"UPDATE {target.table} SET {target.column} = batch.value FROM "
            f"unnest(CAST(:keys AS text[]), CAST(:values AS bytea[])) AS batch(key, value) "
            f"WHERE {target.table}.{target.key} = batch.key"
        ),
        {"keys": keys, "values": values},
    )
    return len(rows)
