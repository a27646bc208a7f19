"""The worker commits: its tests run on a scratch database of their own, with committed transactions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.keys import Keyring
from app.auth.scopes import PrincipalKind
from app.auth.tokens import mint_access_token
from app.catalog import service as catalog
from app.catalog.models import ProgramChannel
from app.catalog.schemas import PartnerCreate, ProgramCreate
from app.core.business_time import today as business_today
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from tests.conftest import migrated_scratch_database

ACTOR = Actor.system("test")


@dataclass
class Desk:
    partner_id: str
    program_id: str
    headers: dict[str, str]

    def with_key(self, key: str | None = None) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": key or uuid.uuid4().hex}


@dataclass
class Scratch:
    url: str
    settings: Settings
    database: Database
    client: httpx.AsyncClient


@pytest.fixture(scope="module")
def worker_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_worker") as url:
        yield url


@pytest.fixture
async def scratch(worker_database: str, settings: Settings) -> AsyncIterator[Scratch]:
    scratch_settings = settings.model_copy(update={"database_url": worker_database})
    database = Database(create_engine(worker_database, scratch_settings))
    app = create_app(scratch_settings, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield Scratch(worker_database, scratch_settings, database, client)
    await database.dispose()


async def open_desk(
    database: Database, settings: Settings, keyring: Keyring, name: str, rate_limit_per_second: int | None = None
) -> Desk:
    """A partner, its VIP program and a bearer token of its integration, committed in ``database``."""
    async with database.sessionmaker() as session, session.begin():
        partner = await catalog.create_partner(session, ACTOR, PartnerCreate(kind="bank", legal_name=name))
        program = await catalog.create_program(
            session,
            ACTOR,
            ProgramCreate(
                partner_id=partner.id,
                name="VIP",
                channel=ProgramChannel.vip_referral,
                effective_from=business_today() - timedelta(days=1),
            ),
        )
        created = await auth_service.create_client(
            session,
            ACTOR,
            name=name,
            kind=PrincipalKind.partner,
            partner_id=partner.id,
            rate_limit_per_second=rate_limit_per_second,
        )
        key = await keyring.signing_key(session)
    token = mint_access_token(
        key,
        settings,
        client_id=created.client.id,
        scope="referrals:write referrals:read",
        kind="partner",
        partner_id=partner.id,
        role=None,
    )
    return Desk(partner.id, program.id, {"Authorization": f"Bearer {token}"})


async def make_desk(scratch: Scratch, name: str = "工作银行") -> Desk:
    app = scratch.client._transport.app  # type: ignore[attr-defined]
    return await open_desk(scratch.database, scratch.settings, app.state.keyring, name)
