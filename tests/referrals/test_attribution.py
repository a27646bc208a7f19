from __future__ import annotations

from datetime import date, timedelta

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import today as business_today
from app.core.clock import ManualClock
from app.referrals.models import AttributionConflict, Referral, ReferralEvent, ReferralStatus
from tests.conftest import CallerFactory
from tests.core.test_identifiers import full_width
from tests.referrals.conftest import PartnerDesk, individual, national_id

REFERRALS = "/v1/referrals"


async def _submit(client: httpx.AsyncClient, desk: PartnerDesk, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return await client.post(REFERRALS, json=body, headers=desk.headers())


async def _registry(client: httpx.AsyncClient, caller: CallerFactory, clients: list[dict]) -> httpx.Response:  # type: ignore[type-arg]
    feed = await caller("back_office")
    return await client.post("/v1/client-registry", json={"clients": clients}, headers=feed.headers)


async def test_existing_client_before_the_referral(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory
) -> None:
    person = national_id()
    registered = await _registry(client, caller, [{"national_id": person, "opened_on": "2020-03-01"}])
    assert registered.json() == {"received": 1, "distinct": 1, "upserted": 1}
    response = await _submit(client, bank, individual(bank.program.id, national_id=person))
    assert response.status_code == 201
    assert response.json()["status"] == "existing_client"
    assert response.json()["outcome_at"] is not None


async def test_client_opened_today_is_not_existing_before_the_referral(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory
) -> None:
    person = national_id()
    await _registry(client, caller, [{"national_id": person, "opened_on": business_today().isoformat()}])
    assert (await _submit(client, bank, individual(bank.program.id, national_id=person))).json()["status"] == "eligible"


async def test_registry_keeps_the_earliest_date_and_stores_no_identifier(
    client: httpx.AsyncClient, caller: CallerFactory, session: AsyncSession
) -> None:
    person = national_id()
    result = await _registry(
        client,
        caller,
        [{"national_id": person, "opened_on": "2021-01-01"}, {"national_id": person, "opened_on": "2019-06-30"}],
    )
    assert result.json() == {"received": 2, "distinct": 1, "upserted": 1}
    rows = (await session.execute(text("SELECT identity_hash, opened_on FROM existing_clients"))).all()
    mine = [row for row in rows if row.opened_on == date(2019, 6, 30)]
    assert len(mine) == 1
    assert len(mine[0].identity_hash) == 32 and person.encode() not in mine[0].identity_hash


async def test_registry_refuses_invalid_rows_whole(client: httpx.AsyncClient, caller: CallerFactory) -> None:
    response = await _registry(
        client, caller, [{"national_id": national_id(), "opened_on": "2020-01-01"}, {"opened_on": "2020-01-01"}]
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][:3] == ["body", "clients", 1]


async def test_duplicate_across_partners_records_a_conflict_without_naming_the_holder(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, session: AsyncSession
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, national_id=person))
    second = await _submit(client, other_bank, individual(other_bank.program.id, national_id=person))
    assert first.json()["status"] == "eligible"
    assert second.status_code == 201 and second.json()["status"] == "duplicate"
    assert bank.partner.id not in second.text and first.json()["id"] not in second.text
    conflict = (
        await session.scalars(
            select(AttributionConflict).where(AttributionConflict.duplicate_referral_id == second.json()["id"])
        )
    ).one()
    assert conflict.holding_referral_id == first.json()["id"]


async def test_a_number_typed_in_full_width_is_the_same_person(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, national_id=person))
    second = await _submit(client, other_bank, individual(other_bank.program.id, national_id=full_width(person)))
    assert first.json()["status"] == "eligible"
    assert second.status_code == 201 and second.json()["status"] == "duplicate"
    assert second.json()["subject"]["identifier"] == person[:4] + "*" * 10 + person[-4:]


async def test_same_partner_same_person_gets_its_referral_back(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, "A-1", national_id=person))
    again = await _submit(client, bank, individual(bank.program.id, "A-2", national_id=person))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert (await session.scalar(select(Referral.id).where(Referral.external_ref == "A-2"))) is None


async def test_external_ref_reused_for_another_person_is_409(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    await _submit(client, bank, individual(bank.program.id, "SAME-REF"))
    response = await _submit(client, bank, individual(bank.program.id, "SAME-REF"))
    assert response.status_code == 409
    assert response.json()["type"].endswith("/external-ref-taken")


async def test_expired_holder_frees_the_identity(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    manual_clock: ManualClock,
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, national_id=person))
    manual_clock.advance(timedelta(days=90, seconds=1))  # past the program's 90-day attribution window
    second = await _submit(client, other_bank, individual(other_bank.program.id, national_id=person))
    assert second.json()["status"] == "eligible"
    expired = await session.get(Referral, first.json()["id"], populate_existing=True)
    assert expired is not None and expired.status is ReferralStatus.expired
    causes = (
        await session.scalars(select(ReferralEvent.cause).where(ReferralEvent.referral_id == first.json()["id"]))
    ).all()
    assert "window_passed" in causes


async def test_holder_further_down_the_funnel_still_holds(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    manual_clock: ManualClock,
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, national_id=person))
    await session.execute(
        update(Referral).where(Referral.id == first.json()["id"]).values(status=ReferralStatus.funded)
    )
    manual_clock.advance(timedelta(days=91))  # its window has passed, but a funded client stays its
    second = await _submit(client, other_bank, individual(other_bank.program.id, national_id=person))
    assert second.json()["status"] == "duplicate"


async def test_withdrawn_referral_frees_the_identity(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    person = national_id()
    first = await _submit(client, bank, individual(bank.program.id, national_id=person))
    await client.post(
        f"{REFERRALS}/{first.json()['id']}/withdraw", json={"reason": "consent_revoked"}, headers=bank.caller.headers
    )
    second = await _submit(client, other_bank, individual(other_bank.program.id, national_id=person))
    assert second.json()["status"] == "eligible"
