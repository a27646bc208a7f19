"""Ceiling: the fastest this machine writes referral-shaped rows, a bare asyncpg binary COPY into a plain table.

No ORM, no validation, no encryption, one connection, one COPY per run. Anything the service does to take in rows
in bulk is measured against this figure.
"""

from __future__ import annotations

from bench import datagen
from bench.common import (
    BenchContext,
    BenchResult,
    PgTarget,
    Stopwatch,
    connect,
    scratch_database,
    stage,
    summarise_rates,
)

NAME = "ceiling_copy"
TABLE = "referral_copy"
ROWS, QUICK_ROWS = 100_000, 10_000
REPEATS, QUICK_REPEATS = 3, 1


async def run(ctx: BenchContext) -> BenchResult:
    count = QUICK_ROWS if ctx.quick else ROWS
    repeats = QUICK_REPEATS if ctx.quick else REPEATS
    with stage(f"generating {count:,} rows"):
        rows = datagen.referrals(count)
    async with scratch_database(ctx.server) as database:
        durations = await _time_copies(database, rows, repeats)
    rates = summarise_rates(count, durations)
    return BenchResult(
        name=NAME,
        headline=f"{rates['median_per_s']:,.0f} rows/s",
        metrics={
            "rows_per_s": rates["median_per_s"],
            "best_rows_per_s": rates["best_per_s"],
            "copy_median_s": rates["median_s"],
        },
        params={
            "rows": count,
            "repeats": repeats,
            "table": "plain, logged, primary key on id",
            "seed": datagen.DEFAULT_SEED,
        },
    )


async def _time_copies(database: PgTarget, rows: list[datagen.Row], repeats: int) -> list[float]:
    connection = await connect(database)
    try:
        await connection.execute(datagen.create_table_sql(TABLE))
        durations = []
        for attempt in range(1, repeats + 1):
            await connection.execute(f"TRUNCATE {TABLE}")
            with stage(f"COPY {len(rows):,} rows ({attempt}/{repeats})"), Stopwatch() as watch:
                await connection.copy_records_to_table(TABLE, records=rows, columns=datagen.COLUMN_NAMES)
            durations.append(watch.seconds)
        copied = await connection.fetchval(f"SELECT count(*) FROM {TABLE}")
    finally:
        await connection.close()
    if copied != len(rows):
        raise RuntimeError(f"COPY wrote {copied} rows, expected {len(rows)}")
    return durations
