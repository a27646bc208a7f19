"""What the fee benches share: a migrated scratch database, the service's own session on it, and ledger lines
generated set-based (``INSERT … SELECT generate_series``) so that generating is never what is measured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.database import Database, create_engine, normalise_url
from app.core.migrations import upgrade_to_head
from bench.common import PgTarget, scratch_database, stage

PERIOD = "2026-09"  # lines occur in August and September; every one generated here is due by October 1 (UTC)


@dataclass
class FeeDatabase:
    target: PgTarget
    database: Database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction, as a request or the CLI owns it: committed at the end."""
        async with self.database.sessionmaker() as session, session.begin():
            yield session


@asynccontextmanager
async def fee_database(server: PgTarget, prefix: str) -> AsyncIterator[FeeDatabase]:
    """A scratch database at the schema's head, with the service's engine on it (its default statement timeout:
    what is measured must fit in it)."""
    async with scratch_database(server, prefix) as target:
        url = normalise_url(target.dsn)
        with stage("migrating the scratch database"):
            await asyncio.to_thread(upgrade_to_head, url)
        settings = Settings(environment="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
        database = Database(create_engine(url, settings))
        try:
            yield FeeDatabase(target, database)
        finally:
            await database.dispose()


PARTNERS_SQL = """
INSERT INTO partners (id, kind, legal_name, display_name, contacts, vat_rate_bp, vat_inclusive, rate_limit_tier,
                      status, created_at, updated_at)
SELECT 'ptn_bench_' || n, 'bank', '基准银行 ' || n, '基准银行 ' || n, '[]', 600, n % 4 = 0, 'standard', 'active',
       now(), now()
FROM generate_series(1, CAST(:partners AS integer)) AS n
"""

# Line n: partner n mod P, a reference shared by two lines (two fee types of one referral), one in fifty a
# clawback, one in ten still held (its hold ends inside the period, so closing releases it).
LINES_SQL = """
INSERT INTO fee_accruals (id, source_key, partner_id, external_ref, rule, amount_fen, currency, status, occurred_at,
                          hold_until, arithmetic, created_at, updated_at)
SELECT 'acr_bench_' || n, 'bench:' || n, 'ptn_bench_' || (n % CAST(:partners AS integer) + 1), 'BENCH-' || (n / 2),
       CASE WHEN n % 50 = 0 THEN 'clawback' WHEN n % 2 = 0 THEN 'funded_bounty' ELSE 'bundle_fee' END,
       CASE WHEN n % 50 = 0 THEN -20000 ELSE 1000 + (n * 7919) % 200000 END,
       'CNY', CASE WHEN n % 10 = 1 THEN 'pending' ELSE 'payable' END,
       timestamptz '2026-08-01 00:00+00' + (n % 30) * interval '1 day',
       timestamptz '2026-08-01 00:00+00' + (n % 30) * interval '1 day' + interval '30 days',
       '{}', now(), now()
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n
"""

# Lines due after the period (October), which the close must leave alone.
LATER_LINES_SQL = """
INSERT INTO fee_accruals (id, source_key, partner_id, external_ref, rule, amount_fen, currency, status, occurred_at,
                          hold_until, arithmetic, created_at, updated_at)
SELECT 'acr_later_' || n, 'later:' || n, 'ptn_bench_' || (n % CAST(:partners AS integer) + 1), 'LATER-' || n,
       'funded_bounty', 20000, 'CNY', 'pending', timestamptz '2026-09-20 00:00+00',
       timestamptz '2026-10-20 00:00+00', '{}', now(), now()
FROM generate_series(1, CAST(:count AS integer)) AS n
"""


async def generate_lines(fees: FeeDatabase, partners: int, lines: int, later: int = 0) -> None:
    """``partners`` partners and ``lines`` ledger lines due by the end of :data:`PERIOD` (plus ``later`` not)."""
    async with fees.transaction() as session:
        await session.execute(text(PARTNERS_SQL), {"partners": partners})
        await session.execute(text(LINES_SQL), {"partners": partners, "first": 1, "last": lines})
        if later:
            await session.execute(text(LATER_LINES_SQL), {"partners": partners, "count": later})
    async with fees.transaction() as session:
        await session.execute(text("ANALYZE partners, fee_accruals"))
