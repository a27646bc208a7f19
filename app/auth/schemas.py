"""API shapes of credential management."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import AuthMethod, ClientStatus, OAuthClient
from app.auth.scopes import PrincipalKind, StaffRole
from app.core.outbound_urls import TargetUrl


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: PrincipalKind
    partner_id: str | None = Field(default=None, max_length=40, description="Required for partner clients.")
    role: StaffRole | None = Field(default=None, description="Required for staff clients.")
    scopes: list[str] | None = Field(
        default=None, max_length=20, description="A subset of the kind's allowance; all of it when omitted."
    )
    auth_method: AuthMethod = AuthMethod.client_secret_basic
    jwks: dict[str, Any] | None = Field(default=None, description="Public JWKS, for private_key_jwt.")
    jwks_uri: TargetUrl | None = Field(default=None, description="Where to fetch the JWKS, for private_key_jwt.")
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=10_000)


class ClientOut(BaseModel):
    id: str
    name: str
    kind: PrincipalKind
    partner_id: str | None
    role: StaffRole | None
    scopes: list[str]
    auth_method: AuthMethod
    jwks_uri: str | None
    has_jwks: bool
    rate_limit_per_second: int | None
    status: ClientStatus
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, client: OAuthClient) -> ClientOut:
        return cls(
            id=client.id,
            name=client.name,
            kind=client.kind,
            partner_id=client.partner_id,
            role=client.role,
            scopes=list(client.scopes),
            auth_method=client.auth_method,
            jwks_uri=client.jwks_uri,
            has_jwks=client.jwks is not None,
            rate_limit_per_second=client.rate_limit_per_second,
            status=client.status,
            created_at=client.created_at,
            revoked_at=client.revoked_at,
        )


class ClientCreated(ClientOut):
    client_secret: str | None = Field(description="Shown once; store it in your secret manager.")


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_s: int | None = Field(
        default=None, ge=0, le=30 * 86_400, description="How long the old secret keeps working; default 24 h."
    )


class SecretRotated(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once.")
    previous_secret_expires_at: datetime


class KeyRotated(BaseModel):
    retired_kid: str | None
    active_kid: str
