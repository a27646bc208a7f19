"""A single submission's round trips, on a scratch database with the service's own engine (these tests commit):
BEGIN, the one statement, COMMIT; its answer is what the referral reads as, and its replay is the same bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
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
from app.referrals.models import Referral
from app.referrals.router import referral_out
from tests.auth.helpers import token_with_secret
from tests.conftest import eventually, migrated_scratch_database
from tests.factories.referrals import individual, make_program
from tests.round_trips import round_trips

ACTOR = Actor.system("test")
REFERRALS = "/v1/referrals"


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_one_statement") as url:
        yield url


@pytest.fixture
async def served(scratch_url: str, settings: Settings) -> AsyncIterator[tuple[FastAPI, AsyncEngine, httpx.AsyncClient]]:
    scratch = settings.model_copy(update={"database_url": scratch_url, "rate_limit_per_second": 100_000})
    engine = create_engine(scratch_url, scratch)
    app = create_app(scratch, Database(engine))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        await eventually(lambda: _listening(app), "the notice listener")
        yield app, engine, http


async def _listening(app: FastAPI) -> bool:
    return bool(app.state.token_standings.listening)


async def _desk(engine: AsyncEngine, http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    async with Database(engine).sessionmaker() as setup, setup.begin():
        partner = await catalog_service.create_partner(
            setup, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="哈尔滨测试银行")
        )
        program = await make_program(setup, partner)
        created = await auth_service.create_client(
            setup, ACTOR, name="bank", kind=PrincipalKind.partner, partner_id=partner.id
        )
    assert created.secret is not None
    token = (await token_with_secret(http, created.client.id, created.secret)).json()["access_token"]
    return program.id, {"Authorization": f"Bearer {token}"}


async def test_a_submission_is_one_statement_and_its_replay_the_same_bytes(
    served: tuple[FastAPI, AsyncEngine, httpx.AsyncClient],
) -> None:
    _, engine, http = served
    program_id, headers = await _desk(engine, http)
    warm = await http.post(REFERRALS, json=individual(program_id), headers={**headers, "Idempotency-Key": "warm"})
    assert warm.status_code == 201, warm.text

    body = individual(program_id)
    with round_trips(engine) as seen:
        first = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k1"})
    assert first.status_code == 201, first.text
    assert seen.count <= 3, seen.statements  # BEGIN, the statement, COMMIT

    with round_trips(engine) as seen:
        again = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert seen.count <= 3, seen.statements

    # The same person under a new key: the referral already sent, 200, in one statement too.
    with round_trips(engine) as seen:
        known = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k2"})
    assert known.status_code == 200 and known.json() == first.json()
    assert seen.count <= 3, seen.statements

    async with Database(engine).sessionmaker() as session:
        referral = await session.get(Referral, first.json()["id"])
    assert referral is not None
    assert first.json() == referral_out(referral).model_dump(mode="json")
