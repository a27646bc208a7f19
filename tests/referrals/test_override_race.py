"""Overrides racing each other and the back office's feed on one client, on committed transactions: every call
answers (200, or 409 to retry), never a 5xx or a deadlock; the same award twice at once moves once; the ledger
ends as if the calls had run one by one: the final holder earns its own schedule's fees once, the other nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import OAuthClient
from app.auth.scopes import PrincipalKind, StaffRole
from app.auth.tokens import mint_access_token
from app.catalog import service as catalog
from app.catalog.models import PartnerKind, ProgramChannel
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, PartnerCreate, ProductCreate, ProgramCreate
from app.core.business_time import today as business_today
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.fees.models import AccrualStatus, FeeAccrual
from app.main import create_app
from app.referrals.models import Referral
from tests.conftest import migrated_scratch_database
from tests.referrals.alliance import PRODUCT, RULES_A, RULES_B
from tests.referrals.conftest import individual, national_id

ACTOR = Actor.system("test")
FEES = {"A": 20_000 + 40_000, "B": 35_000 + 45_000}  # bounty and bundle fee under each bank's schedule


@pytest.fixture(scope="module")
def race_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_override_race") as url:
        yield url


@pytest.fixture
async def race_app(race_database: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    scratch = settings.model_copy(update={"database_url": race_database})
    database = Database(create_engine(race_database, scratch))
    app = create_app(scratch, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, database
    await database.dispose()


async def _headers(client: httpx.AsyncClient, session: Any, created: OAuthClient, scope: str) -> dict[str, str]:
    app = client._transport.app  # type: ignore[attr-defined]
    key = await app.state.keyring.signing_key(session)
    token = mint_access_token(
        key,
        app.state.settings,
        client_id=created.id,
        scope=scope,
        kind=created.kind.value,
        partner_id=created.partner_id,
        role=created.role.value if created.role else None,
    )
    return {"Authorization": f"Bearer {token}"}


async def _alliance(client: httpx.AsyncClient, database: Database) -> dict[str, Any]:
    parties: dict[str, Any] = {}
    async with database.sessionmaker() as session, session.begin():
        await catalog.create_product(
            session,
            ACTOR,
            ProductCreate(
                code=PRODUCT,
                name="银行理财+权益",
                components=[Component(kind="bank_wm", name="理财")],
                allowed_partner_kinds=[PartnerKind.bank],
            ),
        )
        for name, rules in (("A", RULES_A), ("B", RULES_B)):
            partner = await catalog.create_partner(session, ACTOR, PartnerCreate(kind="bank", legal_name=f"{name}银行"))
            program = await catalog.create_program(
                session,
                ACTOR,
                ProgramCreate(
                    partner_id=partner.id,
                    name="VIP",
                    channel=ProgramChannel.vip_referral,
                    effective_from=business_today() - timedelta(days=1),
                    product_codes=[PRODUCT],
                ),
            )
            schedule = await catalog.create_fee_schedule(
                session,
                ACTOR,
                FeeScheduleCreate(
                    program_id=program.id, effective_from=date(2025, 1, 1), rules=FeeRules.model_validate(rules)
                ),
            )
            await catalog.activate_fee_schedule(session, ACTOR, schedule.id)
            created = await auth_service.create_client(
                session, ACTOR, name=name, kind=PrincipalKind.partner, partner_id=partner.id
            )
            parties[name] = (program.id, await _headers(client, session, created.client, "referrals:write"))
        for name, kind, role, scope in (
            ("back_office", PrincipalKind.back_office, None, "conversions:write"),
            ("manager", PrincipalKind.staff, StaffRole.alliance_manager, "attribution:manage"),
        ):
            created = await auth_service.create_client(session, ACTOR, name=name, kind=kind, role=role)
            parties[name] = await _headers(client, session, created.client, scope)
    return parties


async def test_overrides_racing_each_other_and_the_feed_end_consistent(
    race_app: tuple[httpx.AsyncClient, Database],
) -> None:
    client, database = race_app
    parties = await _alliance(client, database)

    async def refer(name: str, person: str) -> str:
        program_id, headers = parties[name]
        response = await client.post(
            "/v1/referrals",
            json=individual(program_id, national_id=person),
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def feed(*events: dict[str, Any]) -> httpx.Response:
        return await client.post("/v1/conversion-events", json={"events": list(events)}, headers=parties["back_office"])

    async def award(referral_id: str) -> httpx.Response:
        return await client.post(
            f"/v1/admin/referrals/{referral_id}/award", json={"reason": "race"}, headers=parties["manager"]
        )

    for round_number in range(4):
        person, client_ref = national_id(), f"C-RACE-{round_number}-{uuid.uuid4().hex[:6]}"
        ids = {"A": await refer("A", person), "B": await refer("B", person)}
        now = datetime.now(UTC)

        def event(kind: str, now: datetime = now, client_ref: str = client_ref, **fields: Any) -> dict[str, Any]:
            return {
                "source_event_id": f"race-{uuid.uuid4().hex}",
                "type": kind,
                "occurred_at": now.isoformat(),
                "client_ref": client_ref,
                **fields,
            }

        opened = await feed(
            event("account_opened", national_id=person), event("account_funded", amount=2_000_000, currency="CNY")
        )
        assert opened.status_code == 200, opened.text
        bundle = event("bundle_purchased", product_code=PRODUCT, amount=10_000_000, currency="CNY")
        responses = await asyncio.gather(award(ids["B"]), award(ids["B"]), feed(bundle), award(ids["A"]))
        assert {response.status_code for response in responses} <= {200, 409}, [r.text for r in responses]
        # The same award twice at once: one moves, the other finds it done.
        assert sorted(response.json()["moved"] for response in responses[:2]) == [False, True]
        assert responses[2].status_code == 200 and responses[2].json()["results"][0]["result"] == "applied"

        async with database.sessionmaker() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(Referral.id, Referral.status).where(Referral.id.in_(list(ids.values())))  # type: ignore[attr-defined]
                    )
                ).all()
            )
            standing = dict(
                (
                    await session.execute(
                        select(FeeAccrual.referral_id, func.sum(FeeAccrual.amount_fen))
                        .where(
                            FeeAccrual.referral_id.in_(list(ids.values())),  # type: ignore[union-attr]
                            FeeAccrual.status != AccrualStatus.reversed,
                        )
                        .group_by(FeeAccrual.referral_id)
                    )
                ).all()
            )
        holders = [name for name, referral_id in ids.items() if statuses[referral_id] == "converted"]
        assert len(holders) == 1, statuses
        [holder] = holders
        [other] = [name for name in ids if name != holder]
        assert statuses[ids[other]] == "duplicate"
        assert standing.get(ids[holder], 0) == FEES[holder], (holder, standing)
        assert standing.get(ids[other], 0) == 0, (holder, standing)
