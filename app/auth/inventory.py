"""The credentials as an admin reviews them: a page of OAuth clients with their partner and last rotation, and
the access-token signing keys with how long each one is still accepted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth.models import ClientSecret, ClientStatus, OAuthClient, SigningKey, SigningKeyStatus
from app.auth.scopes import PrincipalKind
from app.catalog.models import Partner
from app.core import clock


@dataclass(frozen=True, slots=True)
class ClientEntry:
    client: OAuthClient
    partner_name: str | None
    last_rotated_at: datetime | None


async def client_entries(
    session: AsyncSession,
    *,
    kind: PrincipalKind | None = None,
    status: ClientStatus | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[ClientEntry], int]:
    """One page of clients, newest first, and how many match in all.

    A client's last rotation is its newest secret when it has had more than one (the first came with it).
    """
    conditions = []
    if kind:
        conditions.append(col(OAuthClient.kind) == kind)
    if status:
        conditions.append(col(OAuthClient.status) == status)
    total = await session.scalar(select(func.count()).select_from(OAuthClient).where(*conditions))
    secrets = (
        select(
            col(ClientSecret.client_id).label("client_id"),
            func.count().label("issued"),
            func.max(col(ClientSecret.created_at)).label("newest"),
        )
        .group_by(col(ClientSecret.client_id))
        .subquery()
    )
    rows: Any = await session.execute(  # (the subquery's columns are untyped)
        select(OAuthClient, col(Partner.legal_name), secrets.c.issued, secrets.c.newest)
        .outerjoin(Partner, col(Partner.id) == col(OAuthClient.partner_id))
        .outerjoin(secrets, secrets.c.client_id == col(OAuthClient.id))
        .where(*conditions)
        .order_by(col(OAuthClient.created_at).desc(), col(OAuthClient.id).desc())
        .offset(offset)
        .limit(limit)
    )
    entries = [
        ClientEntry(client, partner_name, newest if issued and issued > 1 else None)
        for client, partner_name, issued, newest in rows.all()
    ]
    return entries, int(total or 0)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str
    alg: str
    created_at: datetime
    signing: bool
    retired_at: datetime | None
    accepted_until: datetime | None  # a retired key still verifies the tokens it signed until then

    @property
    def still_accepted(self) -> bool:
        return self.signing or (self.accepted_until is not None and self.accepted_until > clock.real_now())


async def signing_key_entries(session: AsyncSession, *, retired_key_publish_s: int, limit: int = 10) -> list[KeyEntry]:
    """The signing key in use and the ones before it, newest first."""
    rows = await session.execute(
        select(
            col(SigningKey.kid),
            col(SigningKey.alg),
            col(SigningKey.created_at),
            col(SigningKey.status),
            col(SigningKey.retired_at),
        )
        .order_by(col(SigningKey.created_at).desc(), col(SigningKey.kid))
        .limit(limit)
    )
    grace = timedelta(seconds=retired_key_publish_s)
    return [
        KeyEntry(
            kid=kid,
            alg=alg,
            created_at=created_at,
            signing=status == SigningKeyStatus.active,
            retired_at=retired_at,
            accepted_until=retired_at + grace if status != SigningKeyStatus.active and retired_at else None,
        )
        for kid, alg, created_at, status, retired_at in rows.all()
    ]
