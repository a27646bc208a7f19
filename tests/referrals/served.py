"""The service served on a scratch database with its own engine (no rolled-back transaction: what it does commits),
and a partner desk on it: a partner, an active program, and a token of the partner's integration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.scopes import PrincipalKind
from app.catalog import service as catalog_service
from app.catalog.models import PartnerKind
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.auth.helpers import token_with_secret
from tests.conftest import eventually
from tests.factories.referrals import make_program

ACTOR = Actor.system("test")


@dataclass(frozen=True)
class Served:
    app: FastAPI
    engine: AsyncEngine
    http: httpx.AsyncClient


@dataclass(frozen=True)
class Desk:
    partner_id: str
    program_id: str
    headers: dict[str, str]


@asynccontextmanager
async def served_app(url: str, settings: Settings) -> AsyncIterator[Served]:
    scratch = settings.model_copy(update={"database_url": url, "rate_limit_per_second": 100_000})
    engine = create_engine(url, scratch)
    app = create_app(scratch, Database(engine))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        await eventually(lambda: _listening(app), "the notice listener")
        yield Served(app, engine, http)


async def _listening(app: FastAPI) -> bool:
    return bool(app.state.token_standings.listening)


async def partner_desk(served: Served, name: str = "哈尔滨测试银行") -> Desk:
    async with Database(served.engine).sessionmaker() as setup, setup.begin():
        partner = await catalog_service.create_partner(
            setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name=name)
        )
        program = await make_program(setup, partner)
        created = await auth_service.create_client(
            setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=partner.id
        )
    assert created.secret is not None
    token = (await token_with_secret(served.http, created.client.id, created.secret)).json()["access_token"]
    return Desk(partner.id, program.id, {"Authorization": f"Bearer {token}"})
