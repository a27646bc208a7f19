from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.referrals.models import Referral, ReferralEvent
from tests.referrals.conftest import PartnerDesk, consent, enterprise, individual, national_id

REFERRALS = "/v1/referrals"


def _wrong_check_digit(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


async def test_eligible_referral_is_encrypted_and_masked(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    number = national_id()
    body = individual(bank.program.id, "VIP-0001", mobile="138 0013 5678", national_id=number)
    response = await client.post(REFERRALS, json=body, headers=bank.headers())
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "eligible"
    assert out["subject"] == {
        "name": "张**",
        "mobile": "138****5678",
        "identifier": number[:4] + "**********" + number[-4:],
        "erased": False,
    }
    assert out["age_band"] == "25_35"
    raw = (await session.execute(text("SELECT * FROM referrals WHERE id = :id"), {"id": out["id"]})).mappings().one()
    stored = b"".join(value for value in raw.values() if isinstance(value, bytes))
    assert number.encode() not in stored and b"13800135678" not in stored and "张三丰".encode() not in stored
    assert raw["birth_year"] == 1993
    events = (
        await session.scalars(select(ReferralEvent.to_status).where(ReferralEvent.referral_id == out["id"]))
    ).all()
    assert [str(status) for status in events] == ["received", "eligible"]


async def test_enterprise_referral(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    response = await client.post(REFERRALS, json=enterprise(bank.program.id), headers=bank.headers())
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "eligible"
    assert response.json()["subject"]["mobile"] is None


@pytest.mark.parametrize(
    ("mutate", "location"),
    [
        (lambda b: b["subject"].update(national_id=_wrong_check_digit(b["subject"]["national_id"])), "national_id"),
        (lambda b: b["subject"].update(national_id="230102199302301234"), "national_id"),
        (lambda b: b["subject"].update(mobile="12345678901"), "mobile"),
        (lambda b: b["subject"].update(name="   "), "name"),
        (lambda b: b.pop("consent"), None),
        (lambda b: b["consent"].update(separate_consent=False), "separate_consent"),
        (lambda b: b["consent"].update(captured_at="2099-01-01T00:00:00Z"), "captured_at"),
        (lambda b: b["consent"].update(captured_at="2026-11-01T10:00:00"), "captured_at"),
        (lambda b: b["consent"].update(notice_sha256="abc"), "notice_sha256"),
        (lambda b: b["consent"].update(data_categories=[]), "data_categories"),
        (lambda b: b.update(kind="walk_in"), "kind"),
        (lambda b: b.update(external_ref="has space"), "external_ref"),
        (lambda b: b["subject"].update(extra="x"), "extra"),
    ],
)
async def test_validation_errors_are_422_without_echoing_personal_data(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    session: AsyncSession,
    mutate,
    location: str | None,  # type: ignore[no-untyped-def]
) -> None:
    body = individual(bank.program.id)
    mutate(body)
    response = await client.post(REFERRALS, json=body, headers=bank.headers())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    if location:
        assert any(location in map(str, error["loc"]) for error in problem["errors"]), problem
    for value in (body["subject"].get("national_id"), body["subject"].get("mobile")):
        if value:
            assert value not in response.text
    assert (await session.scalar(select(Referral.id).where(Referral.external_ref == body["external_ref"]))) is None


async def test_enterprise_with_bad_credit_code(client: httpx.AsyncClient, bank: PartnerDesk) -> None:
    body = enterprise(bank.program.id, credit_code="91230100MA00000000")
    response = await client.post(REFERRALS, json=body, headers=bank.headers())
    assert response.status_code == 422
    assert any("credit_code" in error["loc"] for error in response.json()["errors"])


async def test_another_partners_program_is_refused(
    client: httpx.AsyncClient, bank: PartnerDesk, other_bank: PartnerDesk
) -> None:
    response = await client.post(REFERRALS, json=individual(other_bank.program.id), headers=bank.headers())
    assert response.status_code == 422
    assert response.json()["type"].endswith("/program-not-available")
    assert other_bank.partner.id not in response.text


async def test_idempotency_key_is_required_and_replays(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    body = individual(bank.program.id)
    missing = await client.post(REFERRALS, json=body, headers=bank.caller.headers)
    assert missing.status_code == 422
    first = await client.post(REFERRALS, json=body, headers=bank.headers("same-key"))
    again = await client.post(REFERRALS, json=body, headers=bank.headers("same-key"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await client.post(REFERRALS, json=individual(bank.program.id), headers=bank.headers("same-key"))
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    count = await session.scalar(
        select(text("count(*)")).select_from(Referral).where(Referral.partner_id == bank.partner.id)
    )
    assert count == 1


async def test_consent_in_the_future_within_clock_skew_is_accepted(
    client: httpx.AsyncClient, bank: PartnerDesk
) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    body = {**individual(bank.program.id), "consent": consent(captured_at=soon)}
    assert (await client.post(REFERRALS, json=body, headers=bank.headers())).status_code == 201
