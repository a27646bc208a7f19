"""A referral's day is the business day (Beijing by default), not the UTC date: a program that starts on the 10th
takes referrals from 00:00 Beijing time on the 10th, which is 16:00 UTC on the 9th."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest

from app.core.clock import ManualClock
from tests.factories.referrals import individual

STARTS = date(2026, 12, 10)


@pytest.mark.parametrize(
    ("instant", "status"),
    [
        (datetime(2026, 12, 9, 15, 59, 59, tzinfo=UTC), 422),  # 23:59:59 on the 9th in Beijing: not yet
        (datetime(2026, 12, 9, 16, 0, 0, tzinfo=UTC), 201),  # midnight on the 10th in Beijing
        (datetime(2026, 12, 9, 16, 30, 0, tzinfo=UTC), 201),
    ],
)
async def test_a_program_opens_on_its_first_business_day(
    client: httpx.AsyncClient, make_desk, manual_clock: ManualClock, instant: datetime, status: int
) -> None:  # type: ignore[no-untyped-def]
    desk = await make_desk(effective_from=STARTS)
    manual_clock.move_to(instant)
    response = await client.post("/v1/referrals", json=individual(desk.program.id), headers=desk.headers())
    assert response.status_code == status, response.text
