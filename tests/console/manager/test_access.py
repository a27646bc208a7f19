"""Each of the manager's pages for every role, as ``tests/console/policy.py`` says: the roles it names get the
page, the others the 403 page, and without a session the browser is sent to sign in (and back)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.console.policy import CONSOLE_POLICY, ROLES
from tests.reports.conftest import Book

PAGES = (
    "/console/overview",
    "/console/partners",
    "/console/partners/{partner_id}",
    "/console/programs",
    "/console/programs/{program_id}",
    "/console/fee-schedules/{schedule_id}",
    "/console/conflicts",
    "/console/referrals",
)


async def _url(path: str, session: AsyncSession, book: Book) -> str:
    schedule = await session.scalar(
        text("SELECT id FROM fee_schedules WHERE program_id = :p"), {"p": book.programs["bank"].id}
    )
    return path.format(partner_id=book.partners["bank"].id, program_id=book.programs["bank"].id, schedule_id=schedule)


@pytest.mark.parametrize("role", ROLES)
async def test_each_page_for_each_role(console_as: Any, session: AsyncSession, book: Book, role: str) -> None:
    person = await console_as(role)
    for path in PAGES:
        allowed = CONSOLE_POLICY[("GET", path)]
        response = await person.client.get(await _url(path, session, book))
        expected = 200 if role in allowed else 403
        assert response.status_code == expected, (role, path, response.status_code)


async def test_without_a_session_each_page_leads_to_sign_in(
    client: httpx.AsyncClient, session: AsyncSession, book: Book
) -> None:
    for path in PAGES:
        url = await _url(path, session, book)
        response = await client.get(url)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/console/sign-in?next={url}", path
