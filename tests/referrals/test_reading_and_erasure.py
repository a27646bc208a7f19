from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from tests.conftest import CallerFactory
from tests.referrals.conftest import PartnerDesk, individual, mobile, national_id

REFERRALS = "/v1/referrals"


async def _create(client: httpx.AsyncClient, desk: PartnerDesk, **subject: str) -> dict:  # type: ignore[type-arg]
    response = await client.post(REFERRALS, json=individual(desk.program.id, **subject), headers=desk.headers())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_list_filters_and_paginates(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    mine = [await _create(client, bank) for _ in range(3)]
    await _create(client, other_bank)
    page = (await client.get(REFERRALS, params={"limit": 2}, headers=bank.caller.headers)).json()
    rest = (
        await client.get(REFERRALS, params={"limit": 2, "cursor": page["next_cursor"]}, headers=bank.caller.headers)
    ).json()
    assert {item["id"] for item in page["data"] + rest["data"]} == {item["id"] for item in mine}
    by_ref = (
        await client.get(REFERRALS, params={"external_ref": mine[0]["external_ref"]}, headers=bank.caller.headers)
    ).json()
    assert [item["id"] for item in by_ref["data"]] == [mine[0]["id"]]
    by_status = (await client.get(REFERRALS, params={"status": "duplicate"}, headers=bank.caller.headers)).json()
    assert by_status["data"] == []
    bad_range = await client.get(REFERRALS, params={"created_from": "2026-01-01"}, headers=bank.caller.headers)
    assert bad_range.status_code == 422


async def test_timeline(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    referral = await _create(client, bank)
    events = (await client.get(f"{REFERRALS}/{referral['id']}/events", headers=bank.caller.headers)).json()
    assert [(event["from_status"], event["to_status"], event["cause"]) for event in events] == [
        (None, "received", "submitted"),
        ("received", "eligible", "attribution"),
    ]


async def test_another_partners_referral_is_404_on_every_route(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    theirs = await _create(client, other_bank)
    me = bank.caller.headers
    for method, path, body in (
        ("GET", f"{REFERRALS}/{theirs['id']}", None),
        ("GET", f"{REFERRALS}/{theirs['id']}/events", None),
        ("POST", f"{REFERRALS}/{theirs['id']}/withdraw", {"reason": "other"}),
    ):
        response = await client.request(method, path, json=body, headers=me)
        assert response.status_code == 404, (method, path)
        assert theirs["external_ref"] not in response.text
    listed = (await client.get(REFERRALS, params={"external_ref": theirs["external_ref"]}, headers=me)).json()
    assert listed["data"] == []
    still = await client.get(f"{REFERRALS}/{theirs['id']}", headers=other_bank.caller.headers)
    assert still.json()["status"] == "eligible"


async def test_scopes(client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory) -> None:
    read_only = await caller("partner", partner=bank.partner, scopes=["referrals:read"])
    write_only = await caller("partner", partner=bank.partner, scopes=["referrals:write"])
    body = individual(bank.program.id)
    denied = await client.post(REFERRALS, json=body, headers={**read_only.headers, "Idempotency-Key": "k1"})
    assert denied.status_code == 403
    assert (await client.get(REFERRALS, headers=write_only.headers)).status_code == 403
    back_office = await caller("back_office")
    assert (await client.get(REFERRALS, headers=back_office.headers)).status_code == 403
    assert (await client.get(REFERRALS)).status_code == 401


async def test_withdrawal_erases_personal_data_and_keeps_history(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    referral = await _create(client, bank)
    response = await client.post(
        f"{REFERRALS}/{referral['id']}/withdraw", json={"reason": "consent_revoked"}, headers=bank.caller.headers
    )
    assert response.status_code == 200
    out = response.json()
    assert out["status"] == "withdrawn"
    assert out["subject"] == {"name": None, "mobile": None, "identifier": None, "erased": True}
    row = (
        (
            await session.execute(
                text(
                    "SELECT name_ct, mobile_ct, identifier_ct, identity_hash, mobile_hash, name_masked, mobile_masked, "
                    "identifier_masked, consent, erased_at, external_ref, age_band FROM referrals WHERE id = :id"
                ),
                {"id": referral["id"]},
            )
        )
        .mappings()
        .one()
    )
    personal = (
        "name_ct",
        "mobile_ct",
        "identifier_ct",
        "identity_hash",
        "mobile_hash",
        "name_masked",
        "mobile_masked",
        "identifier_masked",
        "consent",
    )
    assert all(row[column] is None for column in personal)
    assert (
        row["erased_at"] is not None and row["external_ref"] == referral["external_ref"] and row["age_band"] == "25_35"
    )
    events = (await client.get(f"{REFERRALS}/{referral['id']}/events", headers=bank.caller.headers)).json()
    assert events[-1]["to_status"] == "withdrawn" and events[-1]["cause"] == "consent_revoked"
    again = await client.post(
        f"{REFERRALS}/{referral['id']}/withdraw", json={"reason": "other"}, headers=bank.caller.headers
    )
    assert again.status_code == 200
    bad = await client.post(
        f"{REFERRALS}/{referral['id']}/withdraw", json={"reason": "bored"}, headers=bank.caller.headers
    )
    assert bad.status_code == 422
    actions = (await session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == referral["id"]))).all()
    assert actions == ["referral.withdrawn"]


# --- staff ------------------------------------------------------------------------------------------------------


async def test_staff_search_by_identifier_and_mobile(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk, caller: CallerFactory
) -> None:
    person, phone = national_id(), mobile()
    mine = await _create(client, bank, national_id=person, mobile=phone)
    theirs = await _create(client, other_bank, national_id=person)
    manager = await caller("staff", role="alliance_manager")
    found = await client.post(
        "/v1/admin/referrals/search", json={"national_id": person.lower()}, headers=manager.headers
    )
    assert {item["id"] for item in found.json()["data"]} == {mine["id"], theirs["id"]}
    by_mobile = await client.post("/v1/admin/referrals/search", json={"mobile": "+86" + phone}, headers=manager.headers)
    assert [item["id"] for item in by_mobile.json()["data"]] == [mine["id"]]
    by_partner = await client.get(
        "/v1/admin/referrals", params={"partner_id": other_bank.partner.id}, headers=manager.headers
    )
    assert [item["id"] for item in by_partner.json()["data"]] == [theirs["id"]]
    bad = await client.post("/v1/admin/referrals/search", json={"mobile": "12"}, headers=manager.headers)
    assert bad.status_code == 422 and "12" not in bad.json()["detail"]
    assert (await client.post("/v1/admin/referrals/search", json={}, headers=bank.caller.headers)).status_code == 403


async def test_unmask_is_a_staff_permission_and_audited(
    client: httpx.AsyncClient, bank: PartnerDesk, caller: CallerFactory, session: AsyncSession
) -> None:
    person, phone = national_id(), mobile()
    referral = await _create(client, bank, national_id=person, mobile=phone, name="李四")
    manager = await caller("staff", role="alliance_manager")
    clear = await client.post(
        f"/v1/admin/referrals/{referral['id']}/unmask",
        json={"purpose": "client complaint #42"},
        headers=manager.headers,
    )
    assert clear.json() == {"name": "李四", "mobile": phone, "identifier": person}
    event = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "referral.unmasked"))).one()
    assert event.actor_id == manager.client.id and event.details == {"purpose": "client complaint #42"}
    for role in ("finance", "auditor", "admin"):
        staff = await caller("staff", role=role)
        denied = await client.post(
            f"/v1/admin/referrals/{referral['id']}/unmask", json={"purpose": "curious"}, headers=staff.headers
        )
        assert denied.status_code == 403


@pytest.mark.parametrize("resolution", ["keep_holder", "award_duplicate"])
async def test_conflicts_are_listed_and_resolved_with_a_reason(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    caller: CallerFactory,
    session: AsyncSession,
    resolution: str,
) -> None:
    person = national_id()
    holder = await _create(client, bank, national_id=person)
    later = (
        await client.post(
            REFERRALS, json=individual(other_bank.program.id, national_id=person), headers=other_bank.headers()
        )
    ).json()
    manager = await caller("staff", role="alliance_manager")
    conflicts = (await client.get("/v1/admin/conflicts", params={"status": "open"}, headers=manager.headers)).json()[
        "data"
    ]
    conflict = next(item for item in conflicts if item["duplicate_referral_id"] == later["id"])
    resolved = await client.post(
        f"/v1/admin/conflicts/{conflict['id']}/resolve",
        json={"resolution": resolution, "reason": "bank proved earlier consent"},
        headers=manager.headers,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_by"] == manager.client.id
    holder_now = (await client.get(f"{REFERRALS}/{holder['id']}", headers=bank.caller.headers)).json()["status"]
    later_now = (await client.get(f"{REFERRALS}/{later['id']}", headers=other_bank.caller.headers)).json()["status"]
    expected = ("eligible", "duplicate") if resolution == "keep_holder" else ("duplicate", "eligible")
    assert (holder_now, later_now) == expected
    twice = await client.post(
        f"/v1/admin/conflicts/{conflict['id']}/resolve",
        json={"resolution": "keep_holder", "reason": "again"},
        headers=manager.headers,
    )
    assert twice.status_code == 409
    audited = (await session.scalars(select(AuditEvent.details).where(AuditEvent.object_id == conflict["id"]))).one()
    assert audited["reason"] == "bank proved earlier consent"
