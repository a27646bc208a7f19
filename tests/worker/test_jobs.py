"""The periodic jobs: expiry of referrals whose window passed, erasure of unconverted referrals' personal data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import Settings
from app.referrals.batches import intake
from app.worker import jobs
from tests.referrals.conftest import PartnerDesk, individual

PERSONAL = (
    "identity_hash",
    "mobile_hash",
    "name_ct",
    "mobile_ct",
    "identifier_ct",
    "name_masked",
    "mobile_masked",
    "identifier_masked",
    "employer",
    "consent",
)


async def _referral(client: httpx.AsyncClient, desk: PartnerDesk, **subject: Any) -> str:
    response = await client.post(
        "/v1/referrals", json=individual(desk.program.id, employer="某公司", **subject), headers=desk.headers()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _row(session: AsyncSession, referral_id: str) -> Any:
    return (await session.execute(text("SELECT * FROM referrals WHERE id = :id"), {"id": referral_id})).mappings().one()


async def test_referrals_whose_window_passed_expire(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, settings: Settings
) -> None:
    stale, fresh = await _referral(client, bank), await _referral(client, bank)
    now = clock.now()
    await session.execute(
        text("UPDATE referrals SET window_ends_at = :past WHERE id = :id"),
        {"past": now - timedelta(days=1), "id": stale},
    )
    assert await jobs.expire_referrals(session, settings, now) >= 1
    assert (await _row(session, stale))["status"] == "expired"
    assert (await _row(session, stale))["outcome_at"] == now
    assert (await _row(session, fresh))["status"] == "eligible"
    causes = (
        await session.scalars(
            text("SELECT cause FROM referral_events WHERE referral_id = :id AND to_status = 'expired'"), {"id": stale}
        )
    ).all()
    assert causes == ["window_passed"]
    assert await jobs.expire_referrals(session, settings, now) == 0


async def test_unconverted_referrals_are_erased_after_the_retention_period(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, settings: Settings
) -> None:
    assert settings.referral_retention_days == 30
    now = clock.now()
    old_expired, recent_expired, old_duplicate, holding = [await _referral(client, bank) for _ in range(4)]
    for referral_id, status, days_ago in (
        (old_expired, "expired", 31),
        (recent_expired, "expired", 29),
        (old_duplicate, "duplicate", 400),
        (holding, "eligible", 400),
    ):
        await session.execute(
            text("UPDATE referrals SET status = :status, outcome_at = :at WHERE id = :id"),
            {"status": status, "at": now - timedelta(days=days_ago), "id": referral_id},
        )
    assert await jobs.erase_unconverted_personal_data(session, settings, now) == 2
    for referral_id in (old_expired, old_duplicate):
        row = await _row(session, referral_id)
        assert all(row[column] is None for column in PERSONAL), row
        assert row["erased_at"] == now and row["external_ref"] and row["age_band"]
    for referral_id in (recent_expired, holding):
        row = await _row(session, referral_id)
        assert all(row[column] is not None for column in PERSONAL) and row["erased_at"] is None
    response = await client.get(f"/v1/referrals/{old_expired}", headers=bank.caller.headers)
    assert response.json()["subject"] == {"name": None, "mobile": None, "identifier": None, "erased": True}


async def test_the_staged_lines_of_a_failed_batch_are_discarded_after_the_retention_period(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, settings: Settings
) -> None:
    content = "\n".join(['{"program_id": "x"}'] * (intake.INLINE_LIMIT + 1)) + "\n"
    response = await client.post(
        "/v1/referral-batches",
        content=content.encode(),
        headers={**bank.headers(), "Content-Type": "application/x-ndjson"},
    )
    batch_id = response.json()["id"]
    now = clock.now()
    await session.execute(
        text("UPDATE referral_batches SET status = 'failed', updated_at = :at WHERE id = :id"),
        {"at": now - timedelta(days=31), "id": batch_id},
    )
    await jobs.erase_unconverted_personal_data(session, settings, now)
    left = await session.scalar(
        text("SELECT count(*) FROM referral_batch_chunks WHERE batch_id = :id"), {"id": batch_id}
    )
    assert left == 0
