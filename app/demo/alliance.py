"""Loading the demo alliance (development and test only): the fixed catalog and clients, then a year of history.

Loading is idempotent: catalog rows and clients have fixed ids and are created only when missing; the history is
loaded once, in the same transaction as everything else, and recognised on the next start by its first referral
(one indexed lookup). Secrets are shown only by the run that creates them, or after ``reset_secrets``, which gives
every demo client a new one at once.

The history runs under a ``ManualClock`` installed for the process while it loads, starting on the first day of
the business month twelve months back and moved through the year to the real time; the real clock is back once
loading ends, whatever happens.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Program
from app.core import clock
from app.core.business_time import business_day, month_named
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.pagination import PageParams
from app.core.tenancy import Tenant
from app.demo.catalog import ACTOR, CLIENTS, ensure_catalog, ensure_clients
from app.demo.history import Player, play
from app.demo.story import MARKER, write_story
from app.people.demo_accounts import ensure_demo_people
from app.privacy.service import blind_index, load_cipher
from app.referrals import service as referrals


class DemoRefused(Exception):
    pass


def history_start(now: datetime) -> datetime:
    """The first instant of the business month twelve months before ``now``'s."""
    day = business_day(now)
    month = month_named(f"{day.year - 1:04d}-{day.month:02d}")
    assert month is not None
    return month.start


async def history_loaded(session: AsyncSession) -> bool:
    partner_id, external_ref = MARKER
    found = await referrals.list_referrals(
        session,
        Tenant.of_partner(partner_id),
        PageParams(limit=1, cursor=None),
        referrals.ReferralFilters(external_ref=external_ref),
    )
    return bool(found)


async def _history_start(session: AsyncSession, now: datetime) -> datetime:
    """Twelve months back, or the month the demo programs began if they were created later (an older demo)."""
    start = history_start(now)
    program = await session.get(Program, "prg_demo_bank_vip")
    if program is not None:
        began = month_named(f"{program.effective_from:%Y-%m}")
        assert began is not None
        start = max(start, began.start if program.effective_from.day == 1 else began.end)
    return start


async def _load(session: AsyncSession, settings: Settings, reset_secrets: bool) -> dict[str, str]:
    now = clock.now()
    if await history_loaded(session):
        await ensure_catalog(session, business_day(now))
        return await ensure_clients(session, reset_secrets)
    start = await _history_start(session, now)
    cipher = await load_cipher(session, settings)
    with clock.install(clock.ManualClock(start), settings) as manual:
        await ensure_catalog(session, business_day(start))
        secrets = await ensure_clients(session, reset_secrets)
        story = write_story(start, now)
        await play(Player(session, settings, cipher, blind_index(settings), story, manual))
    return secrets


async def load_demo(
    database_url: str,
    settings: Settings,
    *,
    reset_secrets: bool = False,
    staff_users: list[dict[str, str | None]] | None = None,
) -> list[dict[str, str | None]]:
    """Create what is missing of the demo alliance; returns every demo client, with the secrets this run made.
    The demo's people (``app.people.demo_accounts``) are added to ``staff_users`` when given, with their passwords
    and TOTP secrets when this run made them."""
    staff_users = [] if staff_users is None else staff_users
    if settings.environment == "production":
        raise DemoRefused("the demo alliance is never loaded in production")
    database = Database(create_engine(database_url, settings))
    try:
        async with database.sessionmaker() as session, session.begin():
            secrets = await _load(session, settings, reset_secrets)
            staff_users.extend(await ensure_demo_people(session, ACTOR, settings, reset_secrets=reset_secrets))
    finally:
        await database.dispose()
    return [
        {
            "client_id": demo.client_id,
            "client_secret": secrets.get(demo.client_id),
            "kind": demo.kind.value,
            "partner_id": demo.partner_id,
            "role": demo.role.value if demo.role else None,
        }
        for demo in CLIENTS
    ]
