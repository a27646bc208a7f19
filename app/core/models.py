"""Shared pieces of table models: the metadata naming convention, ids and timestamps."""

from __future__ import annotations

import base64
import secrets
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


_ID_BYTES = 12


def new_id(prefix: str) -> str:
    """An opaque, unguessable id with a readable prefix, e.g. ``ptn_5Zk2...``."""
    return f"{prefix}_{secrets.token_urlsafe(_ID_BYTES)}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them, from one call to the system's random source."""
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(_ID_BYTES * count)).decode()
    width = _ID_BYTES * 4 // 3
    return [f"{prefix}_{encoded[start : start + width]}" for start in range(0, width * count, width)]


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
