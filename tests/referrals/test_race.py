"""Two partners racing for one person at the same instant: the database lets exactly one win."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.scopes import PrincipalKind
from app.auth.tokens import mint_access_token
from app.catalog import service as catalog
from app.catalog.models import ProgramChannel
from app.catalog.schemas import PartnerCreate, ProgramCreate
from app.core.business_time import today as business_today
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from app.referrals.models import AttributionConflict
from tests.conftest import migrated_scratch_database
from tests.referrals.conftest import individual, national_id

ACTOR = Actor.system("test")


@pytest.fixture(scope="module")
def race_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_race") as url:
        yield url


@pytest.fixture
async def race_app(race_database: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    scratch = settings.model_copy(update={"database_url": race_database})
    database = Database(create_engine(race_database, scratch))
    app = create_app(scratch, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, database
    await database.dispose()


async def _desk(database: Database, app_client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    app = app_client._transport.app  # type: ignore[attr-defined]
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
            session, ACTOR, name=name, kind=PrincipalKind.partner, partner_id=partner.id
        )
        key = await app.state.keyring.signing_key(session)
        token = mint_access_token(
            key,
            app.state.settings,
            client_id=created.client.id,
            scope="referrals:write referrals:read",
            kind="partner",
            partner_id=partner.id,
            role=None,
        )
    return program.id, {"Authorization": f"Bearer {token}"}


async def test_concurrent_submissions_for_one_person_have_exactly_one_winner(
    race_app: tuple[httpx.AsyncClient, Database],
) -> None:
    client, database = race_app
    desks = [await _desk(database, client, f"银行{index}") for index in range(4)]
    for round_number in range(5):
        person = national_id()

        async def submit(
            desk: tuple[str, dict[str, str]], index: int, person: str, round_number: int
        ) -> httpx.Response:
            program_id, headers = desk
            body = individual(program_id, f"RACE-{round_number}-{index}", national_id=person)
            return await client.post(
                "/v1/referrals", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
            )

        responses = await asyncio.gather(
            *(submit(desk, index, person, round_number) for index, desk in enumerate(desks))
        )
        statuses = sorted(response.json()["status"] for response in responses)
        assert statuses == ["duplicate", "duplicate", "duplicate", "eligible"], [r.text for r in responses]
        winner = next(response.json()["id"] for response in responses if response.json()["status"] == "eligible")
        async with database.sessionmaker() as session:
            holders = await session.scalar(
                text(
                    "SELECT count(*) FROM referrals WHERE identity_hash = (SELECT identity_hash FROM referrals "
                    "WHERE id = :id) AND status = 'eligible'"
                ),
                {"id": winner},
            )
            conflicts = (
                await session.scalars(
                    select(AttributionConflict.holding_referral_id).where(
                        AttributionConflict.holding_referral_id == winner
                    )
                )
            ).all()
        assert holders == 1
        assert len(conflicts) == 3


async def test_same_partner_racing_itself_gets_one_referral(race_app: tuple[httpx.AsyncClient, Database]) -> None:
    client, database = race_app
    program_id, headers = await _desk(database, client, "自我竞争银行")
    person = national_id()
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/referrals",
                json=individual(program_id, f"SELF-{index}", national_id=person),
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            for index in range(4)
        )
    )
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 1
    assert sorted(response.status_code for response in responses) == [200, 200, 200, 201]
