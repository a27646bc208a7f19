"""Console sessions, kept in PostgreSQL: opened at sign-in, found by the hash of the cookie token, ended by an idle
timeout, an absolute lifetime, sign-out or sign-out everywhere.

Sessions are credentials, so they live in real time (``clock.real_now``), like access tokens: a test clock moved
forward in a sandbox must neither end a person's session nor lengthen it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.config import Settings
from app.people.models import ConsoleSession, Person
from app.people.schemas import OpenedSession, SessionHolder

# last_seen_at is written at most this often: a page view is a read, not a write, most of the time.
TOUCH_EVERY = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    session: AsyncSession, settings: Settings, person_id: str, *, method: str, ip_address: str | None = None
) -> OpenedSession:
    """A new session for ``person_id``; the token is returned here only (the table keeps its hash)."""
    now = clock.real_now()
    token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = ConsoleSession(
        person_id=person_id,
        token_hash=token_hash(token),
        csrf_token=csrf_token,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.console_session_lifetime_s),
        ip_address=ip_address,
        sign_in_method=method,
    )
    session.add(row)
    await session.flush()
    return OpenedSession(row.id, token, csrf_token, person_id)


def _valid(token: str, now: datetime, settings: Settings) -> list[object]:
    return [
        col(ConsoleSession.token_hash) == token_hash(token),
        col(ConsoleSession.revoked_at).is_(None),
        col(ConsoleSession.expires_at) > now,
        col(ConsoleSession.last_seen_at) > now - timedelta(seconds=settings.console_idle_timeout_s),
    ]


async def holder_of(session: AsyncSession, settings: Settings, token: str) -> SessionHolder | None:
    """The person of a valid session, in one statement; the session's last-seen time is moved when it is more
    than a minute old (the same statement, through a data-modifying CTE)."""
    now = clock.real_now()
    valid = _valid(token, now, settings)
    touch = (
        update(ConsoleSession)
        .where(*valid, col(ConsoleSession.last_seen_at) < now - TOUCH_EVERY)  # type: ignore[arg-type]
        .values(last_seen_at=now)
        .returning(col(ConsoleSession.id))
        .cte("touched")
    )
    statement = (
        select(
            col(Person.id),
            col(Person.username),
            col(Person.display_name),
            col(Person.role),
            col(ConsoleSession.id),
            col(ConsoleSession.csrf_token),
        )
        .join(Person, col(Person.id) == col(ConsoleSession.person_id))
        .where(*valid, col(Person.disabled_at).is_(None))  # type: ignore[arg-type]
        .add_cte(touch)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    return SessionHolder(*row)


async def end_session(session: AsyncSession, session_id: str) -> bool:
    """Sign-out: the session stops working at once. Answers whether it was still open."""
    ended = await session.execute(
        update(ConsoleSession)
        .where(and_(col(ConsoleSession.id) == session_id, col(ConsoleSession.revoked_at).is_(None)))
        .values(revoked_at=clock.real_now())
        .returning(col(ConsoleSession.id))
    )
    return ended.first() is not None


async def end_every_session(session: AsyncSession, person_id: str) -> int:
    """Sign-out everywhere: every open session of the person ends at once; answers how many."""
    ended = await session.execute(
        update(ConsoleSession)
        .where(and_(col(ConsoleSession.person_id) == person_id, col(ConsoleSession.revoked_at).is_(None)))
        .values(revoked_at=clock.real_now())
        .returning(col(ConsoleSession.id))
    )
    return len(ended.all())


async def open_sessions_of(session: AsyncSession, settings: Settings, person_id: str) -> list[ConsoleSession]:
    """The person's sessions that still work, newest first (for the account page)."""
    now = clock.real_now()
    statement = (
        select(ConsoleSession)
        .where(
            col(ConsoleSession.person_id) == person_id,
            col(ConsoleSession.revoked_at).is_(None),
            col(ConsoleSession.expires_at) > now,
            col(ConsoleSession.last_seen_at) > now - timedelta(seconds=settings.console_idle_timeout_s),
        )
        .order_by(col(ConsoleSession.created_at).desc())
    )
    return list((await session.scalars(statement)).all())
