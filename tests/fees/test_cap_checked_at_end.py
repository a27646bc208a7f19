"""The feed reads a partner's monthly cap usage unlocked and checks it when adding, at the end: concurrent feeds of
one partner, each in its own transaction, never take more than a cap allows and end with the totals of one feed
after the other; a feed that read the usage before another's commit decides its lines again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.catalog import service as catalog
from app.catalog.models import PartnerKind
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, PartnerCreate, ProductCreate, ProgramCreate
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from app.privacy.service import DataKeyring
from tests.conftest import migrated_scratch_database
from tests.fees.conftest import ACTOR, RULES, START, Ledger, cny

PRODUCT = "BANK_WM_PLUS_EQUITY"

# Per partner-month and per referral: what the ledger's capped lines sum to, and the usage row kept beside it.
_MONTHS = text(
    """
    SELECT to_char(occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, sum(amount_fen) AS used,
           (SELECT u.used_fen FROM fee_cap_usage u
            WHERE u.partner_id = :partner AND u.month = to_char(a.occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'))
    FROM fee_accruals a
    WHERE partner_id = :partner AND status <> 'reversed'
      AND rule IN ('funded_bounty', 'tier_top_up', 'bundle_fee', 'revenue_share', 'cap', 'attribution_moved')
    GROUP BY 1, 3 ORDER BY 1
    """
)
_PER_REFERRAL = text(
    """
    SELECT max(used) FROM (
        SELECT sum(amount_fen) AS used FROM fee_accruals
        WHERE partner_id = :partner AND status <> 'reversed'
          AND rule IN ('funded_bounty', 'tier_top_up', 'bundle_fee', 'revenue_share', 'cap')
        GROUP BY referral_id) AS r
    """
)


@pytest.fixture(scope="module")
def caps_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_caps") as url:
        yield url


@pytest.fixture
async def caps_db(caps_database: str, settings: Settings) -> AsyncIterator[tuple[Database, DataKeyring]]:
    scratch = settings.model_copy(update={"database_url": caps_database})
    database = Database(create_engine(caps_database, scratch))
    app = create_app(scratch, database)
    async with database.sessionmaker() as session, session.begin():
        if not await session.scalar(
            text("SELECT count(*) FROM bundled_products WHERE code = :code"), {"code": PRODUCT}
        ):
            await catalog.create_product(
                session,
                ACTOR,
                ProductCreate(
                    code=PRODUCT,
                    name="x",
                    components=[Component(kind="k", name="n")],
                    allowed_partner_kinds=[PartnerKind.bank],
                ),
            )
    yield database, app.state.data_keyring
    await database.dispose()


async def _partner(database: Database, keyring: DataKeyring, caps: dict[str, int | None], people: int) -> Any:
    """A bank with a capped schedule and ``people`` eligible referrals; returns (ledger args, national ids)."""
    async with database.sessionmaker() as session, session.begin():
        partner = await catalog.create_partner(
            session, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="封顶银行")
        )
        program = await catalog.create_program(
            session,
            ACTOR,
            ProgramCreate(
                partner_id=partner.id,
                name="VIP",
                channel="vip_referral",
                effective_from=date(2025, 1, 1),
                product_codes=[PRODUCT],
            ),
        )
        rules = FeeRules.model_validate({**RULES, "caps": caps})
        schedule = await catalog.create_fee_schedule(
            session, ACTOR, FeeScheduleCreate(program_id=program.id, effective_from=date(2025, 1, 1), rules=rules)
        )
        await catalog.activate_fee_schedule(session, ACTOR, schedule.id)
        ledger = Ledger(session, keyring, program.id, partner.id)
        persons = [(await ledger.referral())[1] for _ in range(people)]
    return (keyring, program.id, partner.id), persons


# One client's history: funded (tier by amount), a bundle, revenue; all inside one business month (January), so
# that a month's total does not depend on which feed took the cap first (each line takes what both caps leave).
clients = st.tuples(
    st.sampled_from([20_000, 2_000_000, 8_000_000]),  # funded, CNY: retail, HNW, institutional
    st.booleans(),  # buys the bundle
    st.integers(min_value=0, max_value=3),  # revenue records
    st.integers(min_value=0, max_value=15),  # opening day in January
)
feeds = st.lists(st.lists(clients, min_size=1, max_size=3), min_size=2, max_size=4)
cap_values = st.fixed_dictionaries(
    {
        "per_referral_fen": st.none() | st.integers(100_000, 600_000),
        "per_partner_month_fen": st.integers(0, 2_000_000),
    }
)


def _events(feed: list[tuple[int, bool, int, int]], persons: list[str], tag: str) -> list[dict[str, Any]]:
    events = []
    for (funded, bundle, revenues, day), person in zip(feed, persons, strict=True):
        client, start = f"{tag}-{person}", START + timedelta(days=day)
        events += [
            Ledger.event("account_opened", client, start, national_id=person),
            Ledger.event("account_funded", client, start + timedelta(hours=1), **cny(funded)),
        ]
        if bundle:
            events.append(
                Ledger.event(
                    "bundle_purchased", client, start + timedelta(hours=2), product_code=PRODUCT, **cny(100_000)
                )
            )
        events += [
            Ledger.event("revenue_recorded", client, start + timedelta(days=1 + n), **cny(30_000 + n))
            for n in range(revenues)
        ]
    return events


async def _feed(database: Database, args: tuple[DataKeyring, str, str], events: list[dict[str, Any]]) -> None:
    async with database.sessionmaker() as session, session.begin():
        assert set(await Ledger(session, *args).events(*events)) == {"applied"}


async def _totals(database: Database, partner_id: str) -> tuple[list[Any], int | None]:
    async with database.sessionmaker() as session:
        months = (await session.execute(_MONTHS, {"partner": partner_id})).all()
        return [tuple(row) for row in months], await session.scalar(_PER_REFERRAL, {"partner": partner_id})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caps=cap_values, plan=feeds)
async def test_concurrent_feeds_never_exceed_a_cap_and_total_as_a_serial_run(
    caps_db: tuple[Database, DataKeyring], caps: dict[str, int | None], plan: list[list[Any]]
) -> None:
    database, keyring = caps_db
    people = sum(len(feed) for feed in plan)
    serial_args, serial_persons = await _partner(database, keyring, caps, people)
    racing_args, racing_persons = await _partner(database, keyring, caps, people)
    serial, racing, first = [], [], 0
    for feed in plan:
        serial.append(_events(feed, serial_persons[first : first + len(feed)], "S"))
        racing.append(_events(feed, racing_persons[first : first + len(feed)], "R"))
        first += len(feed)
    for events in serial:
        await _feed(database, serial_args, events)
    await asyncio.gather(*(_feed(database, racing_args, events) for events in racing))

    serial_months, serial_most = await _totals(database, serial_args[2])
    racing_months, racing_most = await _totals(database, racing_args[2])
    assert racing_months == serial_months  # the same month totals, each equal to its usage row
    assert all(used == row for _month, used, row in racing_months)
    assert all(used <= (caps["per_partner_month_fen"] or 0) for _month, used, _row in racing_months)
    if caps["per_referral_fen"] is not None and racing_most is not None:
        assert racing_most <= caps["per_referral_fen"]
    assert (serial_most is None) == (racing_most is None)


async def test_a_feed_that_read_the_usage_before_another_commit_decides_again(
    caps_db: tuple[Database, DataKeyring],
) -> None:
    database, keyring = caps_db
    caps: dict[str, int | None] = {"per_referral_fen": None, "per_partner_month_fen": 300_000}
    args, persons = await _partner(database, keyring, caps, 2)
    first = _events([(2_000_000, False, 0, 1)], persons[:1], "A")  # HNW bounty: 150,000
    second = _events([(8_000_000, False, 0, 2)], persons[1:], "B")  # institutional: 500,000, cut to what is left

    async with database.sessionmaker() as holder, holder.begin():
        assert set(await Ledger(holder, *args).events(*first)) == {"applied"}
        # The first feed holds the month's row until it commits; the second reads the usage (0) unlocked meanwhile
        # and waits for the row at its end.
        racing = asyncio.create_task(_feed(database, args, second))
        async with database.sessionmaker() as watcher:
            for _ in range(200):
                waiting = await watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%fee_cap_usage%'"
                    )
                )
                await watcher.commit()  # the activity view is read once per transaction
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting == 1
    await racing
    months, _ = await _totals(database, args[2])
    assert months == [("2026-01", 300_000, 300_000)]  # 150,000 + the 150,000 left, not 150,000 + 300,000
