"""Clients to authenticate as, shared by the OAuth endpoint tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service
from app.auth.models import AuthMethod
from app.auth.scopes import PrincipalKind
from tests.auth.helpers import partner_key


@pytest.fixture
async def partner_client(session: AsyncSession, make_partner) -> service.NewClient:  # type: ignore[no-untyped-def]
    partner = await make_partner()
    return await service.create_client(
        session, Actor.system("test"), name="bank", kind=PrincipalKind.partner, partner_id=partner.id
    )


@pytest.fixture
async def post_client(session: AsyncSession, make_partner) -> service.NewClient:  # type: ignore[no-untyped-def]
    partner = await make_partner()
    return await service.create_client(
        session,
        Actor.system("test"),
        name="bank",
        kind=PrincipalKind.partner,
        partner_id=partner.id,
        auth_method=AuthMethod.client_secret_post,
    )


@pytest.fixture
def key() -> ECKey | RSAKey:
    return partner_key("EC")


@pytest.fixture
async def jwt_client(session: AsyncSession, make_partner, key) -> service.NewClient:  # type: ignore[no-untyped-def]
    partner = await make_partner()
    return await service.create_client(
        session,
        Actor.system("test"),
        name="insurer",
        kind=PrincipalKind.partner,
        partner_id=partner.id,
        auth_method=AuthMethod.private_key_jwt,
        jwks={"keys": [key.as_dict(private=False)]},
    )


@pytest.fixture
def client_at(app: FastAPI) -> Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """An HTTP client calling from the given IP address: ``async with client_at("10.0.0.1") as c: ...``."""

    @asynccontextmanager
    async def make(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client

    return make
