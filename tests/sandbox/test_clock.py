"""A partner's test clock (DESIGN.md, "Time" and "Sandbox"): read through HTTP, what its requests read, independent
of every other partner's, out of other partners' reach, and absent from production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.core import clock
from app.core.config import Settings
from app.core.database import Database
from app.main import create_app
from app.referrals.models import Referral
from app.sandbox.models import SandboxClock
from tests.conftest import CallerFactory
from tests.core.test_clock import PRODUCTION
from tests.factories.referrals import PartnerDesk, individual

START = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)


async def _clock(client: httpx.AsyncClient, headers: dict[str, str], **query: str) -> httpx.Response:
    return await client.get("/v1/sandbox/clock", params=query, headers=headers)


async def _advance(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> httpx.Response:
    return await client.post("/v1/sandbox/clock/advance", json=body, headers=headers)


async def test_a_partner_without_a_clock_follows_real_time(
    client: httpx.AsyncClient, bank: PartnerDesk, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(START)
    answer = await _clock(client, bank.caller.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "partner_id": bank.partner.id,
        "now": "2027-01-05T02:00:00Z",
        "advanced_by_s": 0,
        "frozen": False,
    }
    manual_clock.advance(timedelta(hours=3))
    assert (await _clock(client, bank.caller.headers)).json()["now"] == "2027-01-05T05:00:00Z"


async def test_once_advanced_the_clock_stands_still_and_the_partners_requests_read_it(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(START)
    moved = await _advance(client, bank.caller.headers, by_days=10)
    assert moved.status_code == 200, moved.text
    assert moved.json()["previous_now"] == "2027-01-05T02:00:00Z"
    assert moved.json()["clock"] == {
        "partner_id": bank.partner.id,
        "now": "2027-01-15T02:00:00Z",
        "advanced_by_s": 10 * 86_400,
        "frozen": True,
    }
    manual_clock.advance(timedelta(hours=7))  # real time goes on; the partner's does not
    assert (await _clock(client, bank.caller.headers)).json()["now"] == "2027-01-15T02:00:00Z"

    created = await client.post("/v1/referrals", json=individual(bank.program.id), headers=bank.headers())
    assert created.status_code == 201, created.text
    referral = await session.scalar(select(Referral).where(Referral.id == created.json()["id"]))
    assert referral is not None
    assert referral.created_at == datetime(2027, 1, 15, 2, 0, tzinfo=UTC)
    assert referral.window_ends_at == datetime(2027, 1, 15, 2, 0, tzinfo=UTC) + timedelta(days=90)
    # Outside the partner's request, time is the real one again.
    assert clock.now() == START + timedelta(hours=7)


async def test_two_partners_clocks_are_independent(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(START)
    await _advance(client, other_bank.caller.headers, by_days=2)
    before = (await _clock(client, other_bank.caller.headers)).json()
    assert (await _advance(client, bank.caller.headers, to="2027-06-01T00:00:00+08:00")).status_code == 200
    assert (await _clock(client, bank.caller.headers)).json()["now"] == "2027-05-31T16:00:00Z"
    assert (
        (await _clock(client, other_bank.caller.headers)).json()
        == before
        == {
            "partner_id": other_bank.partner.id,
            "now": "2027-01-07T02:00:00Z",
            "advanced_by_s": 2 * 86_400,
            "frozen": True,
        }
    )


async def test_a_partner_can_name_only_itself(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, session: AsyncSession
) -> None:
    mine = await _clock(client, bank.caller.headers, partner_id=bank.partner.id)
    assert mine.status_code == 200 and mine.json()["partner_id"] == bank.partner.id
    theirs = await _clock(client, bank.caller.headers, partner_id=other_bank.partner.id)
    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    moved = await _advance(client, bank.caller.headers, by_days=3, partner_id=other_bank.partner.id)
    assert moved.status_code == 404
    assert await session.get(SandboxClock, other_bank.partner.id) is None
    assert await session.get(SandboxClock, bank.partner.id) is None


async def test_staff_read_and_move_a_partners_clock_by_naming_it(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(START)
    manager, auditor = await caller("staff", role="alliance_manager"), await caller("staff", role="auditor")
    unnamed = await _clock(client, auditor.headers)
    assert unnamed.status_code == 422 and unnamed.json()["type"] == "/problems/partner-required"
    moved = await _advance(client, manager.headers, by_days=1, partner_id=bank.partner.id)
    assert moved.status_code == 200, moved.text
    read = await _clock(client, auditor.headers, partner_id=bank.partner.id)
    assert read.json()["now"] == "2027-01-06T02:00:00Z"
    assert (await _clock(client, auditor.headers, partner_id="ptn_nobody")).status_code == 404
    refused = await _advance(client, auditor.headers, by_days=1, partner_id=bank.partner.id)
    assert refused.status_code == 403
    assert (await _clock(client, bank.caller.headers)).json()["now"] == "2027-01-06T02:00:00Z"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"to": "2027-01-05T02:00:00Z"}, 409, "clock-moves-forward-only"),  # where it stands
        ({"to": "2027-01-01T00:00:00Z"}, 409, "clock-moves-forward-only"),
        ({"to": "2032-02-01T00:00:00Z"}, 422, "clock-advance-too-far"),
        ({"by_days": 1831}, 422, "validation-error"),
        ({"by_days": 0}, 422, "validation-error"),
        ({}, 422, "validation-error"),
        ({"to": "2027-02-01T00:00:00Z", "by_days": 1}, 422, "validation-error"),
        ({"to": "2027-02-01T00:00:00"}, 422, "validation-error"),  # no offset
        ({"by_days": 1, "speed": 2}, 422, "validation-error"),
    ],
)
async def test_a_clock_only_moves_forward_and_not_too_far(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    session: AsyncSession,
    manual_clock: clock.ManualClock,
    body: dict[str, object],
    status: int,
    kind: str,
) -> None:
    manual_clock.move_to(START - timedelta(days=3))
    assert (await _advance(client, bank.caller.headers, by_days=3)).status_code == 200
    refused = await _advance(client, bank.caller.headers, **body)
    assert refused.status_code == status, refused.text
    assert refused.json()["type"] == f"/problems/{kind}"
    row = await session.get(SandboxClock, bank.partner.id, populate_existing=True)
    assert row is not None and (row.now, row.advanced_by_s) == (START, 3 * 86_400)


async def test_an_advance_is_audited(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, manual_clock: clock.ManualClock
) -> None:
    manual_clock.move_to(START)
    assert (await _advance(client, bank.caller.headers, by_days=4)).status_code == 200
    event = await session.scalar(
        select(AuditEvent).where(AuditEvent.action == "sandbox.clock_advanced", AuditEvent.object_id == bank.partner.id)
    )
    assert event is not None
    assert event.actor_id == bank.caller.client.id
    assert event.details["from_now"] == START.isoformat()
    assert event.details["to_now"] == (START + timedelta(days=4)).isoformat()


def _production_app(settings: Settings, connection: AsyncConnection):  # type: ignore[no-untyped-def]
    production = Settings(_env_file=None, **PRODUCTION, log_json=True)  # type: ignore[call-arg, arg-type]
    return create_app(production.model_copy(update={"log_level": settings.log_level}), Database(connection))


async def test_production_has_no_sandbox_routes_and_its_clock_cannot_be_moved(
    settings: Settings, connection: AsyncConnection
) -> None:
    app = _production_app(settings, connection)
    assert not app.state.settings.sandbox_enabled
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/v1/sandbox/clock")).status_code == 404
        assert (await client.post("/v1/sandbox/clock/advance", json={"by_days": 1})).status_code == 404
    assert not [path for path in app.openapi()["paths"] if path.startswith("/v1/sandbox")]
    frozen = clock.FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(clock.ClockLocked), clock.scoped(frozen, app.state.settings):
        pass
    with clock.request_scope(), pytest.raises(clock.ClockLocked):
        clock.enter_for_request(frozen, app.state.settings)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_routes_are_documented(app: FastAPI) -> None:
    document = app.openapi()
    for path, method in (("/v1/sandbox/clock", "get"), ("/v1/sandbox/clock/advance", "post")):
        operation = document["paths"][path][method]
        assert operation["summary"] and len(operation["description"]) > 100
        assert {"401", "403", "404"} <= set(operation["responses"])
    advance = document["paths"]["/v1/sandbox/clock/advance"]["post"]
    assert "409" in advance["responses"]
    schemas = document["components"]["schemas"]
    assert schemas["AdvanceIn"]["examples"] and schemas["AdvanceOut"]["examples"] and schemas["ClockOut"]["examples"]
