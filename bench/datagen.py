"""Deterministic referral-shaped rows for the benches: the same seed gives the same rows, on every machine.

The shape follows a referral as the service stores it: text identifiers, a 32-byte identity hash, and personal data
only as ciphertext (nonce + encrypted plaintext + tag, so as long as an AES-GCM ciphertext of realistic plaintext).
The bytes are random, not encrypted: the benches measure storage, not cryptography.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

DEFAULT_SEED = 20_251_125

# An AES-GCM ciphertext as stored: a 12-byte nonce, the encrypted plaintext (same length), a 16-byte tag.
_GCM_OVERHEAD = 12 + 16

KINDS = ("referral", "lead", "application")
STATUSES = ("received", "qualified", "converted", "rejected")
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

# The columns, in the order of every row, with their PostgreSQL types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("partner_id", "text"),
    ("program_id", "text"),
    ("external_ref", "text"),
    ("kind", "text"),
    ("status", "text"),
    ("identity_hash", "bytea"),
    ("name_ciphertext", "bytea"),
    ("mobile_ciphertext", "bytea"),
    ("national_id_ciphertext", "bytea"),
    ("birth_year", "integer"),
    ("created_at", "timestamptz"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)

Row = tuple[str, str, str, str, str, str, bytes, bytes, bytes, bytes, int, datetime]


def create_table_sql(table: str, *, primary_key: bool = True) -> str:
    """``CREATE TABLE`` for referral-shaped rows (a plain, logged table)."""
    columns = [f"{name} {pg_type} NOT NULL" for name, pg_type in COLUMNS]
    if primary_key:
        columns[0] += " PRIMARY KEY"
    return f"CREATE TABLE {table} ({', '.join(columns)})"


def _ciphertext(rng: random.Random, plaintext_length: int) -> bytes:
    return rng.randbytes(plaintext_length + _GCM_OVERHEAD)


def _row(rng: random.Random, index: int, partners: int, programs: int) -> Row:
    partner = rng.randrange(partners)
    national_id = f"{rng.randrange(10**10):010d}"
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        f"partner-{partner:04d}",
        f"program-{partner:04d}-{rng.randrange(programs):02d}",
        f"EXT-{partner:04d}-{index:09d}",
        rng.choice(KINDS),
        rng.choice(STATUSES),
        hashlib.sha256(national_id.encode()).digest(),
        _ciphertext(rng, rng.randint(24, 40)),  # a full name: 52-68 bytes stored, ~60 on average
        _ciphertext(rng, 13),  # +44 7xxx xxxxxx
        _ciphertext(rng, len(national_id)),
        rng.randint(1940, 2007),
        _EPOCH + timedelta(seconds=index * 7 + rng.randrange(7)),
    )


def iter_referrals(count: int, *, seed: int = DEFAULT_SEED, partners: int = 200, programs: int = 5) -> Iterator[Row]:
    """``count`` referral-shaped rows; unique ``id`` and ``external_ref``, ``created_at`` increasing."""
    rng = random.Random(seed)
    for index in range(count):
        yield _row(rng, index, partners, programs)


def referrals(count: int, *, seed: int = DEFAULT_SEED) -> list[Row]:
    return list(iter_referrals(count, seed=seed))
