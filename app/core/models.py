"""Shared pieces of table models: the metadata naming convention, ids and timestamps."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core import clock

# Constraint names Alembic can diff and downgrade deterministically.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata


# Ids are time-ordered, as UUIDv7 is, so that an index on them takes new rows on its last pages rather than on
# random ones all over it: 60 bits of order, then 76 random bits (unguessable), in 34 lower-case hex digits, whose
# text order is their numeric order under any collation ("C", en_US, ...), so that text order is the order of
# making. The order is the wall clock's milliseconds (48 bits) and a 12-bit counter within the millisecond, one
# 60-bit number that never goes back in this process: a clock that stands still or steps back, or more than 4,096
# ids in a millisecond, take the next numbers (running ahead of the clock for a while). Never the business clock:
# a test's clock stands still or moves back, and ids stay unique and ordered whatever it says.
_COUNTER_BITS = 12
_RANDOM_BITS = 76
_ID_DIGITS = (48 + _COUNTER_BITS + _RANDOM_BITS) // 4  # 34: with a 3-letter prefix, 38 characters
_order_lock = threading.Lock()
_last_order = 0


def _reserve_order(count: int) -> int:
    """The first of ``count`` consecutive order numbers, each greater than any this process made before."""
    global _last_order
    now_ms = int(clock.real_now().timestamp() * 1000)
    with _order_lock:
        first = max(now_ms << _COUNTER_BITS, _last_order + 1)
        _last_order = first + count - 1
    return first


def new_id(prefix: str) -> str:
    """An opaque, unguessable id with a readable prefix, e.g. ``ptn_019ae6c3...``, ordered by when it was made."""
    return f"{prefix}_{(_reserve_order(1) << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS):0{_ID_DIGITS}x}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them, in ascending order."""
    if count <= 0:
        return []
    first = _reserve_order(count)
    randomness = secrets.token_bytes(10 * count)  # one call to the system's random source; 76 bits of each 80
    mask = (1 << _RANDOM_BITS) - 1
    values = (
        ((first + n) << _RANDOM_BITS) | (int.from_bytes(randomness[n * 10 : n * 10 + 10]) & mask) for n in range(count)
    )
    return [f"{prefix}_{value:0{_ID_DIGITS}x}" for value in values]


def id_field(prefix: str) -> str:
    return Field(default_factory=lambda: new_id(prefix), primary_key=True, max_length=40)


def created_at_field() -> datetime:
    return Field(
        default_factory=clock.now,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now()},
        nullable=False,
    )


def enum_type(enum: type[StrEnum], name: str) -> sa.Enum:
    """A string column holding one of ``enum``'s values, checked by the database, loaded as the enum member."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


def updated_at_field() -> datetime:
    return Field(
        default_factory=clock.now,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": clock.now},
        nullable=False,
    )
