"""Closing a month of 100,000 ledger lines: the service's ``close_period`` in one transaction, as
``POST /v1/finance/periods/{period}/close`` and ``alliance finance close-period`` run it.

On a scratch database, 200 partners (one in four VAT-inclusive) get 100,000 lines due by the end of September
(one in ten still held, so the close releases it; one in fifty a clawback) and 20,000 lines due in October that
the close must leave alone. The clock runs from the start of the transaction to its commit. A second close of
the same period (the repeat finance may run) is timed too, and the statements are checked against the lines in
SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from app.audit.service import Actor
from app.fees.statements import close_period
from bench.common import BenchContext, BenchResult, Stopwatch, stage
from bench.fees_data import PERIOD, fee_database, generate_lines

NAME = "fees_close"
LINES, QUICK_LINES = 100_000, 10_000
PARTNERS = 200
LATER_LINES, QUICK_LATER_LINES = 20_000, 2_000

CHECK_SQL = """
SELECT (SELECT count(*) FROM statements WHERE period = :period) AS statements,
       (SELECT coalesce(sum(line_count), 0) FROM statements WHERE period = :period) AS statement_lines,
       (SELECT coalesce(sum(lines_total_fen), 0) FROM statements WHERE period = :period) AS statement_total,
       (SELECT count(*) FROM fee_accruals WHERE statement_id IS NOT NULL) AS attached,
       (SELECT coalesce(sum(amount_fen), 0) FROM fee_accruals WHERE statement_id IS NOT NULL) AS attached_total,
       (SELECT count(*) FROM fee_accruals WHERE id LIKE 'acr_later_%' AND statement_id IS NULL) AS later_left
"""


async def run(ctx: BenchContext) -> BenchResult:
    lines = QUICK_LINES if ctx.quick else LINES
    later = QUICK_LATER_LINES if ctx.quick else LATER_LINES
    actor = Actor.system("bench")
    async with fee_database(ctx.server, "bench_close") as fees:
        with stage(f"generating {PARTNERS} partners, {lines:,} lines due in {PERIOD} and {later:,} due later (SQL)"):
            await generate_lines(fees, PARTNERS, lines, later)
        with stage(f"closing {PERIOD}"), Stopwatch() as first:
            async with fees.transaction() as session:
                closed = await close_period(session, actor, PERIOD, datetime.now(UTC))
        with stage(f"closing {PERIOD} again"), Stopwatch() as repeat:
            async with fees.transaction() as session:
                again = await close_period(session, actor, PERIOD, datetime.now(UTC))
        async with fees.transaction() as session:
            check = (await session.execute(text(CHECK_SQL), {"period": PERIOD})).mappings().one()
    problems = []
    if closed.statemented_lines != lines or check["attached"] != lines or check["statement_lines"] != lines:
        problems.append(f"{closed.statemented_lines} lines statemented, {check['attached']} attached, for {lines}")
    if check["statements"] != PARTNERS or closed.created_statements != PARTNERS:
        problems.append(f"{check['statements']} statements for {PARTNERS} partners")
    if check["statement_total"] != check["attached_total"]:
        problems.append(f"statements total {check['statement_total']} != lines total {check['attached_total']}")
    if check["later_left"] != later:
        problems.append(f"{later - check['later_left']} lines due later were put on the statements")
    if again.created_statements or again.statemented_lines:
        problems.append("the repeat close changed something")
    rate = lines / first.seconds
    return BenchResult(
        name=NAME,
        status="failed" if problems else "ok",
        headline=f"{lines:,} lines closed in {first.seconds:.2f}s ({rate:,.0f} lines/s)",
        metrics={
            "close_s": first.seconds,
            "lines_per_s": rate,
            "repeat_close_s": repeat.seconds,
            "released_lines": float(closed.released_lines),
        },
        params={"lines": lines, "partners": PARTNERS, "later_lines": later, "period": PERIOD},
        note="; ".join(problems),
    )
