"""Console sessions: a valid cookie is a signed-in person; an ended, idle or expired session, or none, is not."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.access import SESSION_COOKIE
from app.people import sessions
from app.people.models import ConsoleSession
from tests.console.conftest import ConsoleAs


async def test_a_session_cookie_signs_the_person_in(console_as: ConsoleAs) -> None:
    finance = await console_as("finance")
    response = await finance.client.get("/console")
    assert response.status_code == 303
    # Finance's home: the first page of its navigation (overview: finance reads the reports), not the sign-in page.
    assert response.headers["location"] == "/console/overview"


async def test_two_people_of_one_role_are_two_people(console_as: ConsoleAs) -> None:
    maker, checker = await console_as("finance"), await console_as("finance")
    assert maker.person.id != checker.person.id and maker.token != checker.token


async def test_the_table_holds_the_hash_of_the_token_not_the_token(
    console_as: ConsoleAs, session: AsyncSession
) -> None:
    signed_in = await console_as("admin")
    row = await session.get(ConsoleSession, signed_in.session_id)
    assert row is not None
    assert row.token_hash != signed_in.token and row.token_hash == sessions.token_hash(signed_in.token)


async def _rewind(session: AsyncSession, session_id: str, **columns: timedelta) -> None:
    row = await session.get(ConsoleSession, session_id)
    assert row is not None
    values = {name: getattr(row, name) - by for name, by in columns.items()}
    await session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id).values(**values))  # type: ignore[arg-type]


async def test_an_idle_session_ends(console_as: ConsoleAs, session: AsyncSession) -> None:
    signed_in = await console_as("auditor")
    # The default idle timeout is 30 minutes: 29 minutes of silence keep the session, 31 end it.
    await _rewind(session, signed_in.session_id, last_seen_at=timedelta(minutes=29))
    assert (await signed_in.client.get("/console")).headers["location"] != "/console/sign-in?next=/console"
    await _rewind(session, signed_in.session_id, last_seen_at=timedelta(minutes=31))
    assert (await signed_in.client.get("/console")).headers["location"] == "/console/sign-in?next=/console"


async def test_a_request_moves_last_seen_at_most_once_a_minute(console_as: ConsoleAs, session: AsyncSession) -> None:
    signed_in = await console_as("auditor")
    await _rewind(session, signed_in.session_id, last_seen_at=timedelta(minutes=5))
    before = (
        await session.scalars(select(ConsoleSession.last_seen_at).where(ConsoleSession.id == signed_in.session_id))
    ).one()
    await signed_in.client.get("/console")
    session.expire_all()
    touched = await session.get(ConsoleSession, signed_in.session_id)
    assert touched is not None and touched.last_seen_at > before + timedelta(minutes=4)
    first = touched.last_seen_at
    await signed_in.client.get("/console")
    session.expire_all()
    again = await session.get(ConsoleSession, signed_in.session_id)
    assert again is not None and again.last_seen_at == first


async def test_a_session_past_its_lifetime_ends_however_busy(console_as: ConsoleAs, session: AsyncSession) -> None:
    signed_in = await console_as("alliance_manager")
    # 12 hours after sign-in (the default lifetime) the session ends, though it was used a moment ago.
    await _rewind(session, signed_in.session_id, expires_at=timedelta(hours=12, seconds=1))
    assert (await signed_in.client.get("/console")).headers["location"].startswith("/console/sign-in")


async def test_an_ended_session_and_a_made_up_cookie_are_no_one(
    console_as: ConsoleAs, session: AsyncSession, client: httpx.AsyncClient
) -> None:
    signed_in = await console_as("finance")
    assert await sessions.end_session(session, signed_in.session_id)
    assert (await signed_in.client.get("/console")).headers["location"].startswith("/console/sign-in")
    client.cookies.set(SESSION_COOKIE, "x" * 43)
    assert (await client.get("/console")).headers["location"].startswith("/console/sign-in")
    client.cookies.set(SESSION_COOKIE, "x" * 5000)
    assert (await client.get("/console")).headers["location"].startswith("/console/sign-in")
