"""People and their console sessions.

A password is stored only as its argon2id hash; a TOTP secret only sealed with the master key. A session is found
by the SHA-256 of its cookie token, never by the token itself: a copy of the table opens no session.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.auth.scopes import StaffRole
from app.core.models import created_at_field, enum_type, id_field


class Person(SQLModel, table=True):
    __tablename__ = "persons"

    id: str = id_field("psn")
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=200)
    role: StaffRole = Field(sa_type=enum_type(StaffRole, "person_role"), nullable=False)
    password_hash: str | None = Field(default=None, max_length=200)
    sealed_totp_secret: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    # The last TOTP time step accepted: a code is good once (RFC 6238 §5.2).
    totp_last_step: int | None = Field(default=None, sa_type=sa.BigInteger)
    # "{issuer} {sub}" of a person who signs in with the firm's identity provider.
    sso_subject: str | None = Field(default=None, max_length=400, unique=True)
    created_at: datetime = created_at_field()
    disabled_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_sessions"

    id: str = id_field("css")
    person_id: str = Field(foreign_key="persons.id", max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_seen_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    ip_address: str | None = Field(default=None, max_length=64)
    sign_in_method: str = Field(max_length=20)
