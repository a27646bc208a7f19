from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import Settings
from app.referrals.attribution import expire_stale_holders
from app.referrals.models import Referral
from app.webhooks.models import WebhookDelivery
from app.webhooks.service import InvalidWebhookTarget, check_url
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, individual

ENDPOINTS = "/v1/webhook-endpoints"


async def _endpoint(client: httpx.AsyncClient, desk: PartnerDesk, *types: str) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        ENDPOINTS,
        json={"url": "http://127.0.0.1:9/hooks", "event_types": list(types or ["referral.status_changed"])},
        headers=desk.caller.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_secret_is_shown_once_and_stored_sealed(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    created = await _endpoint(client, bank)
    assert created["secret"].startswith("whsec_")
    read = await client.get(f"{ENDPOINTS}/{created['id']}", headers=bank.caller.headers)
    assert "secret" not in read.json()
    sealed = await session.scalar(
        text("SELECT sealed_secret FROM webhook_endpoints WHERE id = :id"), {"id": created["id"]}
    )
    assert created["secret"].encode() not in sealed


async def test_update_rotate_and_delete(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    created = await _endpoint(client, bank)
    path = f"{ENDPOINTS}/{created['id']}"
    patched = await client.patch(
        path, json={"event_types": ["referral.expired"], "enabled": False}, headers=bank.caller.headers
    )
    assert patched.json()["event_types"] == ["referral.expired"] and patched.json()["enabled"] is False
    rotated = await client.post(f"{path}/rotate-secret", headers=bank.caller.headers)
    assert rotated.json()["secret"] != created["secret"] and rotated.json()["previous_secret_expires_at"]
    assert (await client.delete(path, headers=bank.caller.headers)).status_code == 204
    gone = (await client.get(path, headers=bank.caller.headers)).json()
    assert gone["enabled"] is False and gone["disabled_reason"] == "deleted"


async def test_bad_input(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    for body in (
        {"url": "ftp://example.com/x", "event_types": ["referral.expired"]},
        {"url": "https://example.com/x", "event_types": ["referral.deleted"]},
        {"url": "https://example.com/x", "event_types": []},
    ):
        assert (await client.post(ENDPOINTS, json=body, headers=bank.caller.headers)).status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://partner.example/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://localhost/hook",
        "https://[::1]/x",
    ],
)
def test_production_refuses_plain_http_and_private_targets(settings: Settings, url: str) -> None:
    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(InvalidWebhookTarget):
        check_url(url, production)
    check_url("https://partner.example/hook", production)


async def test_another_partners_endpoints_and_deliveries_are_404(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    theirs = await _endpoint(client, other_bank)
    test = await client.post(f"{ENDPOINTS}/{theirs['id']}/test", headers=other_bank.caller.headers)
    assert test.status_code == 202
    me = bank.caller.headers
    for method, path in (
        ("GET", f"{ENDPOINTS}/{theirs['id']}"),
        ("PATCH", f"{ENDPOINTS}/{theirs['id']}"),
        ("DELETE", f"{ENDPOINTS}/{theirs['id']}"),
        ("POST", f"{ENDPOINTS}/{theirs['id']}/rotate-secret"),
        ("POST", f"{ENDPOINTS}/{theirs['id']}/test"),
        ("GET", f"/v1/webhook-deliveries/{test.json()['id']}"),
        ("POST", f"/v1/webhook-deliveries/{test.json()['id']}/retry"),
    ):
        response = await client.request(method, path, json={} if method == "PATCH" else None, headers=me)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get(ENDPOINTS, headers=me)).json()["data"] == []
    assert (await client.get("/v1/webhook-deliveries", headers=me)).json()["data"] == []


async def test_scopes(client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory) -> None:
    narrow = await caller("partner", partner=bank.partner, scopes=["referrals:read"])
    assert (await client.get(ENDPOINTS, headers=narrow.headers)).status_code == 403
    staff = await caller("staff", role="admin")
    assert (await client.get(ENDPOINTS, headers=staff.headers)).status_code == 403
    assert (await client.get(ENDPOINTS)).status_code == 401


async def test_status_changes_are_queued_in_the_same_transaction(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    await _endpoint(client, bank, "referral.status_changed", "referral.expired")
    created = await client.post("/v1/referrals", json=individual(bank.program.id, "WH-1"), headers=bank.headers())
    deliveries = (
        await session.scalars(select(WebhookDelivery).where(WebhookDelivery.partner_id == bank.partner.id))
    ).all()
    assert [delivery.event_type for delivery in deliveries] == ["referral.status_changed"]
    data = deliveries[0].payload["data"]
    assert data == {
        "referral_id": created.json()["id"],
        "external_ref": "WH-1",
        "program_id": bank.program.id,
        "from_status": "received",
        "to_status": "eligible",
        "cause": "attribution",
        "occurred_at": data["occurred_at"],
    }
    assert "national_id" not in str(deliveries[0].payload)


async def test_an_expiry_is_announced_as_a_change_and_as_an_expiry(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    await _endpoint(client, bank, "referral.status_changed", "referral.expired")
    created = await client.post("/v1/referrals", json=individual(bank.program.id, "WH-EXP"), headers=bank.headers())
    referral_id = created.json()["id"]
    identity = await session.scalar(select(Referral.identity_hash).where(Referral.id == referral_id))
    assert identity is not None
    assert await expire_stale_holders(session, clock.now() + timedelta(days=3650), [identity]) == 1
    deliveries = (
        await session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.partner_id == bank.partner.id,
                WebhookDelivery.payload["data"]["to_status"].astext == "expired",
            )
        )
    ).all()
    assert sorted(delivery.event_type for delivery in deliveries) == ["referral.expired", "referral.status_changed"]
    for delivery in deliveries:
        assert delivery.payload["type"] == delivery.event_type
        assert delivery.payload["data"] | {"occurred_at": None} == {
            "referral_id": referral_id,
            "external_ref": "WH-EXP",
            "program_id": bank.program.id,
            "from_status": "eligible",
            "to_status": "expired",
            "cause": "window_passed",
            "occurred_at": None,
        }


async def test_failed_request_queues_nothing(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    await _endpoint(client, bank)
    body = individual(bank.program.id, "WH-2")
    body["consent"]["separate_consent"] = False
    assert (await client.post("/v1/referrals", json=body, headers=bank.headers())).status_code == 422
    count = await session.scalar(
        select(text("count(*)")).select_from(WebhookDelivery).where(WebhookDelivery.partner_id == bank.partner.id)
    )
    assert count == 0


async def test_announce_reaches_only_subscribed_enabled_endpoints(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, session: AsyncSession
) -> None:
    from app.webhooks.service import announce

    subscribed = await _endpoint(client, bank, "statement.issued")
    await _endpoint(client, bank, "referral.expired")
    disabled = await _endpoint(client, bank, "statement.issued")
    await client.patch(f"{ENDPOINTS}/{disabled['id']}", json={"enabled": False}, headers=bank.caller.headers)
    await _endpoint(client, other_bank, "statement.issued")
    await announce(session, bank.partner.id, "statement.issued", {"statement_id": "stm_1", "net_fen": 12_345})
    queued = (
        await session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "statement.issued"))
    ).all()
    assert [delivery.endpoint_id for delivery in queued] == [subscribed["id"]]
    assert queued[0].payload["data"] == {"statement_id": "stm_1", "net_fen": 12_345}


async def test_notices_of_several_partners_are_queued_in_one_call(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, session: AsyncSession
) -> None:
    from app.webhooks.service import Notice, queue_notices

    mine = await _endpoint(client, bank, "statement.issued", "reconciliation.completed")
    theirs = await _endpoint(client, other_bank, "statement.issued")
    await queue_notices(
        session,
        [
            Notice(bank.partner.id, "statement.issued", {"statement_id": "stm_1"}),
            Notice(bank.partner.id, "reconciliation.completed", {"statement_id": "stm_1"}),
            Notice(other_bank.partner.id, "statement.issued", {"statement_id": "stm_2"}),
            Notice(other_bank.partner.id, "reconciliation.completed", {"statement_id": "stm_2"}),  # not subscribed
        ],
    )
    queued = (
        await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.partner_id.in_([bank.partner.id, other_bank.partner.id]))  # type: ignore[attr-defined]
        )
    ).all()
    assert sorted((d.endpoint_id, d.event_type, d.payload["data"]["statement_id"]) for d in queued) == sorted(
        [
            (mine["id"], "statement.issued", "stm_1"),
            (mine["id"], "reconciliation.completed", "stm_1"),
            (theirs["id"], "statement.issued", "stm_2"),
        ]
    )
    assert all(d.payload["type"] == d.event_type for d in queued)


def test_webhooks_know_no_other_domains_tables() -> None:
    import re
    from pathlib import Path

    from sqlmodel import SQLModel

    import app.webhooks

    others = sorted(name for name in SQLModel.metadata.tables if not name.startswith("webhook_"))
    assert "referrals" in others
    package = Path(app.webhooks.__file__).parent
    reaching = re.compile(rf"\b(?:FROM|JOIN|INTO|UPDATE)\s+(?:{'|'.join(others)})\b", re.I)
    # auth and audit are plumbing every domain uses: who calls, and the record of what they did.
    domains = re.compile(r"^from app\.(?!core|auth|audit|webhooks)\w+", re.M)
    offenders = sorted(
        path.name for path in package.glob("*.py") if reaching.search(text := path.read_text()) or domains.search(text)
    )
    assert offenders == []
