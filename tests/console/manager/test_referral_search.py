"""推荐查询 over HTTP: a person's referrals at two partners found by ID number or by mobile through the blind
index, the number never in a URL; the timeline; unmasking only with a purpose, audited with the person."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.privacy.service import DataKeyring
from tests.reports.conftest import Book, BookWriter, at


async def _person_at_two_partners(
    session: AsyncSession, keyring: DataKeyring, book: Book
) -> tuple[str, str, list[str]]:
    writer = BookWriter(session, keyring)
    writer.book = book
    body = writer.person("bank", 31)
    body["subject"]["mobile"] = "13912345678"
    number = body["subject"]["national_id"]
    first = await writer.referral("S1", "bank", at("2026-03-02"), body)
    again = writer.person("insurer", 31, number)
    again["subject"]["mobile"] = "13912345678"
    second = await writer.referral("S2", "insurer", at("2026-03-05"), again)
    return number, "13912345678", [first, second]


async def test_search_by_id_number_and_by_mobile(console_as: Any, session: AsyncSession, book: Book, app: Any) -> None:
    number, mobile, ids = await _person_at_two_partners(session, app.state.data_keyring, book)
    manager = await console_as("alliance_manager")
    for typed in (number, mobile, f"+86 {mobile[:3]}-{mobile[3:]}"):
        response = await manager.post("/console/referrals/search", identity=typed)
        assert response.status_code == 200, typed
        assert all(f'data-referral="{referral_id}"' in response.text for referral_id in ids), typed
        assert response.text.count("data-referral=") == 2
        assert number not in response.text and mobile not in response.text  # masked


async def test_an_unreadable_number_is_refused_with_a_message(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.post("/console/referrals/search", identity="123")
    assert response.status_code == 303 and response.headers["location"] == "/console/referrals"


async def test_nobody_found_is_its_own_empty_state(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.post("/console/referrals/search", identity="13800000000")
    assert response.status_code == 200 and "没有此人的推荐记录" in response.text


async def test_the_timeline_and_unmasking_with_a_purpose(
    console_as: Any, session: AsyncSession, book: Book, app: Any
) -> None:
    number, mobile, ids = await _person_at_two_partners(session, app.state.data_keyring, book)
    manager = await console_as("alliance_manager")
    page = await manager.client.get("/console/referrals", params={"referral": ids[1]})
    assert page.status_code == 200
    assert "重复推荐" in page.text  # the insurer's is the later one: duplicate
    assert number not in page.text

    refused = await manager.post(f"/console/referrals/{ids[0]}/unmask", purpose=" ")
    assert refused.status_code == 303
    assert await session.scalar(text("SELECT count(*) FROM audit_events WHERE action = 'referral.unmasked'")) == 0

    shown = await manager.post(f"/console/referrals/{ids[0]}/unmask", purpose="客户来电核实身份")
    assert shown.status_code == 200 and number in shown.text and mobile in shown.text
    assert shown.headers["cache-control"] == "no-store"
    [event] = (
        await session.execute(
            text("SELECT actor_id, object_id, details FROM audit_events WHERE action = 'referral.unmasked'")
        )
    ).all()
    assert (event.actor_id, event.object_id, event.details["purpose"]) == (manager.actor_id, ids[0], "客户来电核实身份")


async def test_an_unknown_referral_redirects_and_other_roles_are_refused(console_as: Any) -> None:
    manager = await console_as("alliance_manager")
    missing = await manager.client.get("/console/referrals", params={"referral": "ref_missing"})
    assert missing.status_code == 303 and missing.headers["location"] == "/console/referrals"
    auditor = await console_as("auditor")
    assert (await auditor.client.get("/console/referrals")).status_code == 403
    assert (await auditor.post("/console/referrals/ref_x/unmask", purpose="look")).status_code == 403
