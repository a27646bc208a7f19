"""The simulated back office: a partner moves its own sandbox referral down the funnel through the real feed."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.conversions.models import ConversionEvent
from app.core import clock
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from app.referrals.models import Referral
from app.webhooks.models import WebhookEndpoint
from tests.factories.referrals import PartnerDesk, individual
from tests.sandbox.conftest import OTHER_PRODUCT, PRODUCT

HNW_FUNDING = 2_000_000 * 100  # 2,000,000 CNY: high net worth
PURCHASE = 300_000 * 100


async def refer(client: httpx.AsyncClient, desk: PartnerDesk) -> dict[str, Any]:
    response = await client.post("/v1/referrals", json=individual(desk.program.id), headers=desk.headers())
    assert response.status_code == 201, response.text
    return response.json()


async def simulate(
    client: httpx.AsyncClient, desk: PartnerDesk, referral_id: str, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = desk.headers(key) if key else desk.caller.headers
    return await client.post(f"/v1/sandbox/referrals/{referral_id}/simulate", json=body, headers=headers)


async def event_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ConversionEvent)) or 0)


async def test_opening_funding_and_a_bundle_move_the_referral_and_accrue_its_fees(
    client: httpx.AsyncClient, make_sandbox_desk: Any
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)

    opened = await simulate(client, desk, referral["id"], type="account_opened")
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert body["referral_status"] == "account_opened"
    [event] = body["events"]
    assert event["type"] == "account_opened" and event["result"] == "applied"
    assert event["effects"] == {"attributed": True}
    assert body["fee_lines"] == []

    funded = (await simulate(client, desk, referral["id"], type="account_funded", amount=HNW_FUNDING)).json()
    assert funded["referral_status"] == "funded"
    assert funded["events"][0]["effects"]["tier"] == "hnw"
    assert funded["events"][0]["client_ref"] == event["client_ref"]
    assert [(line["rule"], line["amount_fen"], line["status"]) for line in funded["fee_lines"]] == [
        ("funded_bounty", 150_000, "pending")
    ]

    bought = (
        await simulate(client, desk, referral["id"], type="bundle_purchased", amount=PURCHASE, product_code=PRODUCT)
    ).json()
    assert bought["referral_status"] == "converted"
    # The schedule: 100 CNY flat + 30 bp of the purchase, between 120 and 5,000 CNY.
    expected = 10_000 + int((Decimal(PURCHASE) * 30 / 10_000).quantize(Decimal(1), ROUND_HALF_UP))
    assert [(line["rule"], line["amount_fen"]) for line in bought["fee_lines"]] == [("bundle_fee", expected)]

    timeline = (await client.get(f"/v1/referrals/{referral['id']}/events", headers=desk.caller.headers)).json()
    assert [step["to_status"] for step in timeline][-3:] == ["account_opened", "funded", "converted"]


async def test_closing_the_account_claws_the_fees_back(client: httpx.AsyncClient, make_sandbox_desk: Any) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)
    await simulate(client, desk, referral["id"], type="account_opened")
    await simulate(client, desk, referral["id"], type="account_funded", amount=HNW_FUNDING)

    closed = (await simulate(client, desk, referral["id"], type="account_closed")).json()

    # Inside the hold the bounty is cancelled outright: both lines reversed.
    assert [(line["rule"], line["amount_fen"], line["status"]) for line in closed["fee_lines"]] == [
        ("clawback", -150_000, "reversed")
    ]


async def test_the_body_is_checked_per_type(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)
    await simulate(client, desk, referral["id"], type="account_opened")
    before = await event_count(session)
    for body in (
        {"type": "account_funded"},
        {"type": "account_opened", "amount": 100},
        {"type": "account_closed", "product_code": PRODUCT},
        {"type": "bundle_purchased", "amount": 100},
        {"type": "account_funded", "amount": -1},
        {"type": "account_funded", "amount": "100"},
        {"type": "account_reopened"},
        {"type": "account_funded", "amount": 100, "currency": "CNY"},
    ):
        response = await simulate(client, desk, referral["id"], **body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"

    foreign = await simulate(
        client, desk, referral["id"], type="bundle_purchased", amount=100, product_code=OTHER_PRODUCT
    )
    assert foreign.status_code == 422
    assert PRODUCT in foreign.json()["detail"] and foreign.json()["field"] == "product_code"
    assert await event_count(session) == before


async def test_events_need_the_account_and_an_eligible_referral(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)

    early = await simulate(client, desk, referral["id"], type="account_funded", amount=HNW_FUNDING)
    assert early.status_code == 409
    assert early.json()["type"] == "/problems/simulation-not-possible"
    assert "account_opened first" in early.json()["detail"]

    await simulate(client, desk, referral["id"], type="account_opened")
    again = await simulate(client, desk, referral["id"], type="account_opened")
    assert again.status_code == 409 and "already open" in again.json()["detail"]

    withdrawn = await refer(client, desk)
    body = {"reason": "client_request"}
    assert (
        await client.post(f"/v1/referrals/{withdrawn['id']}/withdraw", json=body, headers=desk.caller.headers)
    ).status_code == 200
    before = await event_count(session)
    refused = await simulate(client, desk, withdrawn["id"], type="account_opened")
    assert refused.status_code == 409 and "eligible" in refused.json()["detail"]
    assert await event_count(session) == before


async def test_another_partners_referral_is_not_found_and_nothing_changes(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    owner, stranger = await make_sandbox_desk(), await make_sandbox_desk("别家沙箱银行")
    referral = await refer(client, owner)
    before = await event_count(session)

    response = await simulate(client, stranger, referral["id"], type="account_opened")

    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not-found"
    assert await event_count(session) == before
    mine = (await client.get(f"/v1/referrals/{referral['id']}", headers=owner.caller.headers)).json()
    assert mine["status"] == "eligible"


async def test_the_same_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)
    await simulate(client, desk, referral["id"], type="account_opened")
    before = await event_count(session)

    first = await simulate(client, desk, referral["id"], key="fund-1", type="account_funded", amount=HNW_FUNDING)
    second = await simulate(client, desk, referral["id"], key="fund-1", type="account_funded", amount=HNW_FUNDING)
    other = await simulate(client, desk, referral["id"], key="fund-1", type="account_funded", amount=1)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    assert await event_count(session) == before + 1


async def test_each_simulation_is_audited_and_announced(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    desk = await make_sandbox_desk()
    hook = {"url": "http://127.0.0.1:9/hooks", "event_types": ["referral.status_changed"]}
    assert (await client.post("/v1/webhook-endpoints", json=hook, headers=desk.headers())).status_code == 201
    referral = await refer(client, desk)

    await simulate(client, desk, referral["id"], type="account_opened")

    audit = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "sandbox.event_simulated"))).all()
    assert [(event.object_id, event.actor_id, event.details["event_type"]) for event in audit] == [
        (referral["id"], desk.caller.client.id, "account_opened")
    ]
    deliveries = (await client.get("/v1/webhook-deliveries", headers=desk.caller.headers)).json()["data"]
    changes = [d for d in deliveries if d["event_type"] == "referral.status_changed"]
    assert changes, deliveries
    assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) >= 1


async def test_production_has_no_simulation_route(
    settings: Settings, connection: AsyncConnection, client: httpx.AsyncClient, make_sandbox_desk: Any
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)
    production = Settings(  # type: ignore[call-arg]
        environment="production",
        database_url=settings.database_url,
        master_key="cHJvZHVjdGlvbi1rZXktZm9yLXRoZS10ZXN0LTAwMDA=",
        public_url="https://alliance.example.com",
        _env_file=None,
    )
    app: FastAPI = create_app(production, Database(connection, join_savepoint=True))
    assert not any(path.startswith("/v1/sandbox") for path in app.openapi()["paths"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as prod:
        response = await prod.post(
            f"/v1/sandbox/referrals/{referral['id']}/simulate",
            json={"type": "account_opened"},
            headers=desk.caller.headers,
        )
    assert response.status_code == 404


async def test_an_account_opened_after_the_window_expires_the_referral(
    client: httpx.AsyncClient, make_sandbox_desk: Any, session: AsyncSession
) -> None:
    desk = await make_sandbox_desk()
    referral = await refer(client, desk)
    await session.execute(
        update(Referral).where(Referral.id == referral["id"]).values(window_ends_at=clock.now() - timedelta(days=1))
    )

    opened = (await simulate(client, desk, referral["id"], type="account_opened")).json()

    assert opened["referral_status"] == "expired"
    [event] = opened["events"]  # the partner's own event, though no partner holds the account now
    assert event["effects"] == {"attributed": False, "reason": "outside the attribution window"}
    assert opened["fee_lines"] == []
    refused = await simulate(client, desk, referral["id"], type="account_funded", amount=HNW_FUNDING)
    assert refused.status_code == 409
