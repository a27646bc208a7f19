"""Closing a period from several real transactions at once, and from the CLI: one set of statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select, text

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.scopes import PrincipalKind, StaffRole
from app.auth.tokens import mint_access_token
from app.catalog import service as catalog
from app.catalog.schemas import PartnerCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.fees.models import FeeAccrual, Statement
from app.main import create_app
from tests.conftest import migrated_scratch_database
from tests.core.test_cli import alliance
from tests.reconciliation.books import book

ACTOR = Actor.system("test")
PARTNERS, LINES_EACH, RACERS = 3, 40, 6


@pytest.fixture(scope="module")
def race_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_close") as url:
        yield url


@pytest.fixture
async def race_app(race_database: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    scratch = settings.model_copy(update={"database_url": race_database})
    database = Database(create_engine(race_database, scratch))
    app = create_app(scratch, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, database
    await database.dispose()


async def _finance_headers(client: httpx.AsyncClient, database: Database) -> dict[str, str]:
    app = client._transport.app  # type: ignore[attr-defined]
    async with database.sessionmaker() as session, session.begin():
        created = await auth_service.create_client(
            session, ACTOR, name="finance", kind=PrincipalKind.staff, role=StaffRole.finance
        )
        key = await app.state.keyring.signing_key(session)
    token = mint_access_token(
        key,
        app.state.settings,
        client_id=created.client.id,
        scope="finance:read finance:write",
        kind="staff",
        partner_id=None,
        role="finance",
    )
    return {"Authorization": f"Bearer {token}"}


async def test_racing_closes_produce_one_set_of_statements(
    race_app: tuple[httpx.AsyncClient, Database], race_database: str
) -> None:
    client, database = race_app
    headers = await _finance_headers(client, database)
    async with database.sessionmaker() as session, session.begin():
        partner_ids = []
        for index in range(PARTNERS):
            partner = await catalog.create_partner(
                session, ACTOR, PartnerCreate(kind="bank", legal_name=f"竞速银行{index}")
            )
            partner_ids.append(partner.id)
            for line in range(LINES_EACH):
                await book(session, partner.id, 1_000 + line, ref=f"R-{index}-{line}")

    responses = await asyncio.gather(
        *(client.post("/v1/finance/periods/2026-03/close", headers=headers) for _ in range(RACERS))
    )

    assert [response.status_code for response in responses] == [200] * RACERS, [r.text for r in responses]
    bodies = [response.json() for response in responses]
    assert sorted(body["created_statements"] for body in bodies) == [0] * (RACERS - 1) + [PARTNERS]
    assert sum(body["statemented_lines"] for body in bodies) == PARTNERS * LINES_EACH
    ids = {tuple(sorted(item["id"] for item in body["statements"])) for body in bodies}
    assert len(ids) == 1
    expected_total = sum(1_000 + line for line in range(LINES_EACH))
    async with database.sessionmaker() as session:
        rows = (await session.scalars(select(Statement).where(Statement.period == "2026-03"))).all()
        assert sorted(row.partner_id for row in rows) == sorted(partner_ids)
        assert {(row.line_count, row.lines_total_fen) for row in rows} == {(LINES_EACH, expected_total)}
        unattached = await session.scalar(select(func.count()).where(FeeAccrual.statement_id.is_(None)))  # type: ignore[union-attr]
        assert unattached == 0

    # The CLI closes the same way: again, nothing new.
    result = await asyncio.to_thread(alliance, "finance", "close-period", "2026-03", database_url=race_database)
    assert result.returncode == 0, result.stderr
    assert "0 statement(s) created" in result.stdout and f"{PARTNERS} in the period" in result.stdout
    refused = await asyncio.to_thread(alliance, "finance", "close-period", "2099-01", database_url=race_database)
    assert refused.returncode == 1 and "2099-01 ends at" in refused.stderr
    async with database.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM statements WHERE period = '2026-03'")) == PARTNERS
