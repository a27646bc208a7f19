from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.schemas import Component, ProductCreate
from app.conversions.models import ClientAccount, ConversionEvent
from app.referrals.models import Referral, ReferralEvent
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, credit_code, enterprise, individual, national_id

EVENTS = "/v1/conversion-events"
_ids = itertools.count()


def event(kind: str, client_ref: str, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "source_event_id": f"bo-{next(_ids)}-{kind}",
        "type": kind,
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
        "client_ref": client_ref,
        **fields,
    }


def cny(amount_yuan: int) -> dict[str, Any]:
    return {"amount": amount_yuan * 100, "currency": "CNY"}


@pytest.fixture
async def feed(caller: CallerFactory) -> Caller:
    return await caller("back_office")


async def _send(client: httpx.AsyncClient, feed: Caller, *events: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(EVENTS, json={"events": list(events)}, headers=feed.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def _referral(client: httpx.AsyncClient, desk: PartnerDesk, person: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/referrals", json=individual(desk.program.id, national_id=person), headers=desk.headers()
    )
    assert response.json()["status"] == "eligible"
    return dict(response.json())


async def _status(session: AsyncSession, referral_id: str) -> str:
    referral = await session.get(Referral, referral_id, populate_existing=True)
    assert referral is not None
    return str(referral.status)


async def test_full_funnel_and_timeline(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    await catalog.create_product(
        session,
        Actor.system("test"),
        ProductCreate(
            code="BANK_WM_PLUS_EQUITY",
            name="x",
            components=[Component(kind="k", name="n")],
            allowed_partner_kinds=["bank"],
        ),
    )
    from app.catalog.schemas import ProgramUpdate

    await catalog.update_program(
        session, Actor.system("test"), bank.program.id, ProgramUpdate(product_codes=["BANK_WM_PLUS_EQUITY"])
    )
    person = national_id()
    referral = await _referral(client, bank, person)
    opened = await _send(client, feed, event("account_opened", "C-1", national_id=person))
    assert opened[0]["result"] == "applied" and opened[0]["referral_id"] == referral["id"]
    assert await _status(session, referral["id"]) == "account_opened"

    await _send(client, feed, event("account_funded", "C-1", **cny(300_000)))
    assert await _status(session, referral["id"]) == "funded"
    account = await session.get(ClientAccount, "C-1", populate_existing=True)
    assert account is not None and account.tier == "retail" and account.assets_fen == 30_000_000

    await _send(client, feed, event("bundle_purchased", "C-1", product_code="OTHER", **cny(1000)))
    assert await _status(session, referral["id"]) == "funded"
    await _send(client, feed, event("bundle_purchased", "C-1", product_code="BANK_WM_PLUS_EQUITY", **cny(50_000)))
    assert await _status(session, referral["id"]) == "converted"

    timeline = (await client.get(f"/v1/referrals/{referral['id']}/events", headers=bank.caller.headers)).json()
    assert [(item["to_status"], item["cause"]) for item in timeline] == [
        ("received", "submitted"),
        ("eligible", "attribution"),
        ("account_opened", "account_opened"),
        ("funded", "account_funded"),
        ("converted", "bundle_purchased"),
    ]


async def test_events_are_idempotent_by_source_id(
    client: httpx.AsyncClient, feed: Caller, session: AsyncSession
) -> None:
    opened = event("account_opened", "C-2", national_id=national_id())
    funded = event("account_funded", "C-2", **cny(10_000))
    first = await _send(client, feed, opened, funded)
    again = await _send(client, feed, opened, funded, funded)
    assert [item["result"] for item in first] == ["applied", "applied"]
    assert [item["result"] for item in again] == ["duplicate", "duplicate", "duplicate"]
    account = await session.get(ClientAccount, "C-2", populate_existing=True)
    assert account is not None and account.assets_fen == 1_000_000  # funded once, not twice


async def test_bad_events_are_rejected_one_by_one(client: httpx.AsyncClient, feed: Caller) -> None:
    results = await _send(
        client,
        feed,
        event("account_opened", "C-3", national_id="110105194912310021"),
        event("account_funded", "C-3", amount=100, currency="CNY"),
        event("account_funded", "C-3", amount=1.5, currency="CNY"),
        event("account_funded", "C-3"),
        event("bundle_purchased", "C-3", **cny(1)),
        event("teleported", "C-3"),
        {"source_event_id": "no-type"},
        event("account_closed", "C-3", national_id=national_id()),
    )
    assert [item["result"] for item in results] == [
        "rejected",
        "deferred",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert "national_id" in results[0]["reason"] and "110105194912310021" not in results[0]["reason"]
    assert results[6]["source_event_id"] == "no-type"


async def test_out_of_order_events_wait_for_the_opening(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    person = national_id()
    referral = await _referral(client, bank, person)
    early = datetime.now(UTC)
    funded = await _send(client, feed, event("account_funded", "C-4", early + timedelta(minutes=5), **cny(2_000_000)))
    assert funded[0]["result"] == "deferred"
    assert await _status(session, referral["id"]) == "eligible"
    opened = await _send(client, feed, event("account_opened", "C-4", early, national_id=person))
    assert opened[0]["result"] == "applied"
    assert await _status(session, referral["id"]) == "funded"
    account = await session.get(ClientAccount, "C-4", populate_existing=True)
    assert account is not None and account.tier == "hnw"
    statuses = (await session.scalars(select(ConversionEvent.status).where(ConversionEvent.client_ref == "C-4"))).all()
    assert set(map(str, statuses)) == {"applied"}


async def test_tier_rise_inside_the_qualification_period_is_recorded(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    person = national_id()
    referral = await _referral(client, bank, person)
    opened = datetime.now(UTC) - timedelta(days=10)  # events are never dated in the future
    await session.execute(
        update(Referral).where(Referral.id == referral["id"]).values(created_at=opened - timedelta(days=1))
    )
    await _send(
        client,
        feed,
        event("account_opened", "C-5", opened, national_id=person),
        event("account_funded", "C-5", opened + timedelta(seconds=1), **cny(500_000)),
    )
    raised = await _send(client, feed, event("assets_snapshot", "C-5", opened + timedelta(days=10), **cny(6_000_000)))
    assert raised[0]["result"] == "applied"
    account = await session.get(ClientAccount, "C-5", populate_existing=True)
    assert account is not None and account.tier == "institutional"
    stored = (
        await session.scalars(
            select(ConversionEvent).where(ConversionEvent.source_event_id == raised[0]["source_event_id"])
        )
    ).one()
    assert stored.effects["tier_raised"] == ["retail", "institutional"]
    causes = (
        await session.scalars(select(ReferralEvent.cause).where(ReferralEvent.referral_id == referral["id"]))
    ).all()
    assert "tier_raised" in causes


async def test_tier_rise_after_the_qualification_period_changes_nothing(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    person = national_id()
    await _referral(client, bank, person)
    start = datetime.now(UTC) - timedelta(days=200)
    await _send(
        client,
        feed,
        event("account_opened", "C-6", start, national_id=person),
        event("account_funded", "C-6", start, **cny(500_000)),
        event("assets_snapshot", "C-6", start + timedelta(days=100), **cny(2_000_000)),
    )
    account = await session.get(ClientAccount, "C-6", populate_existing=True)
    assert account is not None and account.tier == "retail"


async def test_enterprise_is_institutional(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    code = credit_code()
    created = await client.post(
        "/v1/referrals", json=enterprise(bank.program.id, credit_code=code), headers=bank.headers()
    )
    await _send(
        client, feed, event("account_opened", "E-1", credit_code=code), event("account_funded", "E-1", **cny(10))
    )
    account = await session.get(ClientAccount, "E-1", populate_existing=True)
    assert account is not None and account.tier == "institutional" and account.referral_id == created.json()["id"]


async def test_organic_clients_are_kept(client: httpx.AsyncClient, feed: Caller, session: AsyncSession) -> None:
    results = await _send(
        client,
        feed,
        event("account_opened", "O-1", national_id=national_id()),
        event("revenue_recorded", "O-1", **cny(88)),
    )
    assert [item["referral_id"] for item in results] == [None, None]
    organic = (await session.scalars(select(ConversionEvent.organic).where(ConversionEvent.client_ref == "O-1"))).all()
    assert organic == [True, True]


async def test_opening_outside_the_window_expires_the_referral(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    person = national_id()
    referral = await _referral(client, bank, person)
    await session.execute(
        update(Referral)
        .where(Referral.id == referral["id"])
        .values(window_ends_at=datetime.now(UTC) - timedelta(days=1))
    )
    await _send(client, feed, event("account_opened", "C-7", national_id=person))
    assert await _status(session, referral["id"]) == "expired"
    account = await session.get(ClientAccount, "C-7", populate_existing=True)
    assert account is not None and account.referral_id is None


async def test_opening_before_the_referral_makes_it_an_existing_client(
    client: httpx.AsyncClient, bank: PartnerDesk, feed: Caller, session: AsyncSession
) -> None:
    person = national_id()
    referral = await _referral(client, bank, person)
    await _send(client, feed, event("account_opened", "C-8", datetime.now(UTC) - timedelta(days=3), national_id=person))
    assert await _status(session, referral["id"]) == "existing_client"


async def test_closing_is_recorded(client: httpx.AsyncClient, feed: Caller, session: AsyncSession) -> None:
    await _send(client, feed, event("account_opened", "C-9", national_id=national_id()), event("account_closed", "C-9"))
    account = await session.get(ClientAccount, "C-9", populate_existing=True)
    assert account is not None and account.status == "closed"


async def test_only_the_back_office_reports_events(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory
) -> None:
    body = {"events": [event("account_closed", "X")]}
    assert (await client.post(EVENTS, json=body, headers=bank.caller.headers)).status_code == 403
    assert (
        await client.post(EVENTS, json=body, headers=(await caller("staff", role="admin")).headers)
    ).status_code == 403
    assert (await client.post(EVENTS, json=body)).status_code == 401
    too_many = {"events": [event("account_closed", "X")] * 10_001}
    assert (await client.post(EVENTS, json=too_many, headers=(await caller("back_office")).headers)).status_code == 422
