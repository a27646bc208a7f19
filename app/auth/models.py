"""OAuth tables: clients and their secrets, the token-signing keys, revoked tokens and used client assertions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from app.auth.scopes import PrincipalKind, StaffRole
from app.core.models import created_at_field, enum_type, id_field


class AuthMethod(StrEnum):
    client_secret_basic = "client_secret_basic"
    client_secret_post = "client_secret_post"
    private_key_jwt = "private_key_jwt"


class ClientStatus(StrEnum):
    active = "active"
    revoked = "revoked"


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_clients"
    __table_args__ = (
        sa.CheckConstraint("kind <> 'partner' OR partner_id IS NOT NULL", name="partner_client_has_partner"),
        sa.CheckConstraint("kind <> 'staff' OR role IS NOT NULL", name="staff_client_has_role"),
        sa.Index("ix_oauth_clients_created_at_id", "created_at", "id"),
    )

    id: str = id_field("cli")
    name: str = Field(max_length=200)
    kind: PrincipalKind = Field(sa_type=enum_type(PrincipalKind, "principal_kind"), nullable=False)
    role: StaffRole | None = Field(default=None, sa_type=enum_type(StaffRole, "staff_role"), nullable=True)
    partner_id: str | None = Field(default=None, foreign_key="partners.id", max_length=40, index=True)
    scopes: list[str] = Field(sa_type=ARRAY(sa.String(40)), nullable=False)
    auth_method: AuthMethod = Field(sa_type=enum_type(AuthMethod, "auth_method"), nullable=False)
    jwks: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    jwks_uri: str | None = Field(default=None, max_length=500)
    rate_limit_per_second: int | None = Field(default=None, ge=1)
    status: ClientStatus = Field(
        default=ClientStatus.active, sa_type=enum_type(ClientStatus, "client_status"), nullable=False
    )
    created_at: datetime = created_at_field()
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ClientSecret(SQLModel, table=True):
    """A client may hold two secrets during a rotation's grace period; ``expires_at`` ends the old one."""

    __tablename__ = "oauth_client_secrets"

    id: str = id_field("sec")
    client_id: str = Field(foreign_key="oauth_clients.id", max_length=40, index=True)
    secret_hash: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class SigningKeyStatus(StrEnum):
    active = "active"
    retired = "retired"


class SigningKey(SQLModel, table=True):
    """An access-token signing key; the private half is sealed with the master key."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        sa.Index("uq_signing_keys_one_active", "status", unique=True, postgresql_where=sa.text("status = 'active'")),
    )

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=10)
    sealed_private_key: bytes = Field(sa_type=sa.LargeBinary, nullable=False)
    public_jwk: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    status: SigningKeyStatus = Field(
        default=SigningKeyStatus.active, sa_type=enum_type(SigningKeyStatus, "signing_key_status"), nullable=False
    )
    created_at: datetime = created_at_field()
    retired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=100)
    client_id: str = Field(max_length=40)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    created_at: datetime = created_at_field()


class UsedClientAssertion(SQLModel, table=True):
    """``jti`` of every accepted private_key_jwt assertion, so that a replay is refused."""

    __tablename__ = "used_client_assertions"

    client_id: str = Field(primary_key=True, max_length=40)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class ApiRateBucket(SQLModel, table=True):
    """The API rate bucket of one client, shared by every API process (``app.auth.rate_leases``). UNLOGGED: it is
    not worth a write-ahead log record per lease, and after a crash every bucket simply starts full again."""

    __tablename__ = "api_rate_buckets"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    client_id: str = Field(primary_key=True, max_length=40)
    tokens: float = Field(sa_type=sa.Double, nullable=False)
    granted: float = Field(sa_type=sa.Double, nullable=False, description="What the last lease took.")
    refilled_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
