"""The conflicts inbox over HTTP: both partners and the masked identity on the row, a decision through the form
(the row changes, the audit log names the person), and a form without the session's CSRF token changing nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.reports.conftest import Book


async def _conflict(session: AsyncSession, book: Book) -> dict[str, Any]:
    row = (
        (
            await session.execute(
                text("SELECT * FROM attribution_conflicts WHERE duplicate_referral_id = :id"),
                {"id": book.referrals["R5"]},
            )
        )
        .mappings()
        .one()
    )
    return dict(row)


async def _audit(session: AsyncSession, conflict_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT actor_id, action, details FROM audit_events WHERE object_id = :id"), {"id": conflict_id}
    )
    return [dict(row) for row in rows.mappings()]


async def test_the_inbox_shows_both_sides_and_the_masked_identity(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    manager = await console_as("alliance_manager")
    conflict = await _conflict(session, book)
    response = await manager.client.get("/console/conflicts")
    assert response.status_code == 200
    html = response.text
    assert f'data-conflict="{conflict["id"]}"' in html
    assert "哈尔滨银行股份有限公司" in html and "中国平安人寿保险股份有限公司" in html
    masked = await session.scalar(
        text("SELECT identifier_masked FROM referrals WHERE id = :id"), {"id": book.referrals["R5"]}
    )
    assert masked and masked in html
    clear = await session.scalar(text("SELECT count(*) FROM referrals WHERE id = :id"), {"id": book.referrals["R5"]})
    assert clear == 1

    sheet = await manager.client.get("/console/conflicts", params={"tab": "open", "id": conflict["id"]})
    assert sheet.status_code == 200 and 'id="conflict-sheet"' in sheet.text
    assert 'name="csrf_token"' in sheet.text


async def test_keeping_the_holder_through_the_page_resolves_and_audits(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    manager = await console_as("alliance_manager")
    conflict = await _conflict(session, book)
    response = await manager.post(
        f"/console/conflicts/{conflict['id']}/resolve", resolution="keep_holder", reason="先到先得，银行在先"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/conflicts?tab=open"
    assert "console_flash" in response.headers["set-cookie"]
    after = await _conflict(session, book)
    assert (after["status"], after["resolution"], after["reason"]) == ("resolved", "keep_holder", "先到先得，银行在先")
    assert after["resolved_by"] == manager.actor_id
    [event] = await _audit(session, conflict["id"])
    assert event["actor_id"] == manager.actor_id and event["action"] == "conflict.resolved"
    holder = await session.scalar(text("SELECT status FROM referrals WHERE id = :id"), {"id": book.referrals["R1"]})
    assert holder == "converted"

    archive = await manager.client.get("/console/conflicts", params={"tab": "resolved"})
    assert f'data-conflict="{conflict["id"]}"' in archive.text
    opened = await manager.client.get("/console/conflicts", params={"tab": "open", "id": conflict["id"]})
    assert opened.status_code == 303  # a resolved conflict lives in the archive
    assert opened.headers["location"] == f"/console/conflicts?tab=resolved&id={conflict['id']}"


async def test_moving_the_attribution_through_the_page(console_as: Any, session: AsyncSession, book: Book) -> None:
    manager = await console_as("alliance_manager")
    conflict = await _conflict(session, book)
    response = await manager.post(
        f"/console/conflicts/{conflict['id']}/resolve", resolution="award_duplicate", reason="客户书面确认由保险推荐"
    )
    assert response.status_code == 303
    statuses = dict(
        (
            await session.execute(
                text("SELECT id, status FROM referrals WHERE id IN (:a, :b)"),
                {"a": book.referrals["R1"], "b": book.referrals["R5"]},
            )
        ).all()
    )
    assert statuses[book.referrals["R1"]] == "duplicate"
    # R1's person bought the bank's bundle, which the insurer's program does not offer: funded, not converted.
    assert statuses[book.referrals["R5"]] == "funded"
    actions = {event["action"] for event in await _audit(session, conflict["id"])}
    assert "attribution.overridden" in actions


async def test_without_the_csrf_token_nothing_changes(console_as: Any, session: AsyncSession, book: Book) -> None:
    manager = await console_as("alliance_manager")
    conflict = await _conflict(session, book)
    response = await manager.client.post(
        f"/console/conflicts/{conflict['id']}/resolve", data={"resolution": "award_duplicate", "reason": "no token"}
    )
    assert response.status_code == 403
    wrong = await manager.client.post(
        f"/console/conflicts/{conflict['id']}/resolve",
        data={"resolution": "award_duplicate", "reason": "wrong token", "csrf_token": "not-the-token"},
    )
    assert wrong.status_code == 403
    assert await _conflict(session, book) == conflict
    assert await _audit(session, conflict["id"]) == []


async def test_a_decision_without_a_reason_is_refused_and_changes_nothing(
    console_as: Any, session: AsyncSession, book: Book
) -> None:
    manager = await console_as("alliance_manager")
    conflict = await _conflict(session, book)
    response = await manager.post(f"/console/conflicts/{conflict['id']}/resolve", resolution="keep_holder", reason=" ")
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/conflicts?tab=open&id={conflict['id']}"
    assert await _conflict(session, book) == conflict
    twice = await manager.post(f"/console/conflicts/{conflict['id']}/resolve", resolution="keep_holder", reason="ok!")
    again = await manager.post(
        f"/console/conflicts/{conflict['id']}/resolve", resolution="award_duplicate", reason="x2!"
    )
    assert twice.status_code == again.status_code == 303
    after = await _conflict(session, book)
    assert after["resolution"] == "keep_holder"  # the second decision was refused: already resolved
    assert len(await _audit(session, conflict["id"])) == 1


async def test_bad_urls_are_corrected(console_as: Any, book: Book) -> None:
    manager = await console_as("alliance_manager")
    for params, location in (
        ({"tab": "nope"}, "/console/conflicts?tab=open"),
        ({"tab": "open", "page": "9"}, "/console/conflicts?tab=open"),
        ({"tab": "open", "page": "-1"}, "/console/conflicts?tab=open"),
        ({"tab": "open", "id": "cfl_missing"}, "/console/conflicts?tab=open"),
    ):
        response = await manager.client.get("/console/conflicts", params=params)
        assert response.status_code == 303, params
        assert response.headers["location"] == location, params


async def test_finance_may_not_open_the_conflicts(console_as: Any) -> None:
    finance = await console_as("finance")
    assert (await finance.client.get("/console/conflicts")).status_code == 403
    assert (
        await finance.post("/console/conflicts/cfl_x/resolve", resolution="keep_holder", reason="abc")
    ).status_code == 403


async def test_an_empty_queue_says_so(console_as: Any) -> None:
    manager = await console_as("alliance_manager")
    response = await manager.client.get("/console/conflicts")
    assert response.status_code == 200
    assert "尚未产生归因冲突" in response.text
