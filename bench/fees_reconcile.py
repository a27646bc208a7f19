"""Reconciling a 100,000-line claim: parsing the partner's CSV, storing it, and the one matching join, as
``POST /v1/statements/{id}/claims`` runs them (the service in one transaction, HTTP left out).

On a scratch database one partner gets 100,000 lines due by the end of September; the period is closed and the
statement issued (both timed for information). The partner's CSV claims every line, with discrepancies of
every kind: one key in a hundred with another amount, one left out, one claimed twice, and one line in a hundred
for a reference that is not ours. The clock runs from the raw CSV bytes to the commit. The totals per class are
then checked against what was generated.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy import text

from app.audit.service import Actor
from app.core.tenancy import Tenant
from app.fees.statements import close_period, issue
from app.reconciliation.matching import ClassTotal
from app.reconciliation.models import MatchClass
from app.reconciliation.service import parse_csv, upload_claim
from bench.common import BenchContext, BenchResult, Stopwatch, stage
from bench.fees_data import PERIOD, fee_database, generate_lines

NAME = "fees_reconcile"
LINES, QUICK_LINES = 100_000, 10_000
PARTNER_ID = "ptn_bench_1"


def claim_csv(lines: list[tuple[str, str, int]]) -> tuple[bytes, dict[MatchClass, int]]:
    """The partner's CSV for our ``lines``, with its discrepancies, and how many items of each class it makes."""
    expected = dict.fromkeys(MatchClass, 0)
    buffer = io.StringIO()
    buffer.write("external_ref,fee_type,amount_fen\n")
    for index, (ref, rule, amount) in enumerate(lines):
        kind = index % 100
        if kind == 2:
            expected[MatchClass.unclaimed] += 1
            continue
        if kind == 1:
            amount += 100
            expected[MatchClass.amount_mismatch] += 1
        elif kind == 3:
            buffer.write(f"{ref},{rule},{amount}\n")
            expected[MatchClass.duplicate_claim] += 1
        else:
            expected[MatchClass.matched] += 1
        buffer.write(f"{ref},{rule},{amount}\n")
        if kind == 4:
            buffer.write(f"NOT-OURS-{index},funded_bounty,20000\n")
            expected[MatchClass.unknown] += 1
    return buffer.getvalue().encode(), expected


async def run(ctx: BenchContext) -> BenchResult:
    count = QUICK_LINES if ctx.quick else LINES
    actor = Actor.system("bench")
    async with fee_database(ctx.server, "bench_reconcile") as fees:
        with stage(f"generating {count:,} lines of one partner (SQL)"):
            await generate_lines(fees, 1, count)
        with stage(f"closing {PERIOD} and issuing the statement"), Stopwatch() as closing:
            async with fees.transaction() as session:
                closed = await close_period(session, actor, PERIOD, datetime.now(UTC))
                [statement] = closed.statements
                await issue(session, actor, statement.id, datetime.now(UTC))
        async with fees.transaction() as session:
            rows = await session.execute(
                text("SELECT external_ref, rule, amount_fen FROM fee_accruals WHERE statement_id = :id ORDER BY id"),
                {"id": statement.id},
            )
            ours = [(str(ref), str(rule), int(amount)) for ref, rule, amount in rows]
        body, expected = claim_csv(ours)
        claimed = body.count(b"\n") - 1
        with stage(f"reconciling a claim of {claimed:,} lines ({len(body) / 2**20:.1f} MiB CSV)"):
            with Stopwatch() as parsing:
                lines = parse_csv(body)
            with Stopwatch() as matching:
                async with fees.transaction() as session:
                    result = await upload_claim(
                        session,
                        Tenant.of_partner(PARTNER_ID),
                        actor,
                        statement.id,
                        lines,
                        claim_format="csv",
                        amounts_include_vat=None,
                        now=datetime.now(UTC),
                    )
    total_s = parsing.seconds + matching.seconds
    got = {match_class: total.items for match_class, total in result.totals.by_class.items()}
    problems = [f"{got}, expected {expected}"] if got != expected else []
    mismatch = result.totals.by_class.get(MatchClass.amount_mismatch, ClassTotal())
    if mismatch.difference_fen != 100 * expected[MatchClass.amount_mismatch]:
        problems.append(f"amount_mismatch difference {mismatch.difference_fen}")
    return BenchResult(
        name=NAME,
        status="failed" if problems else "ok",
        headline=f"{len(lines):,}-line claim reconciled in {total_s:.2f}s ({len(lines) / total_s:,.0f} lines/s)",
        metrics={
            "reconcile_s": total_s,
            "claim_lines_per_s": len(lines) / total_s,
            "parse_s": parsing.seconds,
            "store_and_match_s": matching.seconds,
            "close_and_issue_s": closing.seconds,
            **{f"items_{match_class.value}": float(items) for match_class, items in got.items()},
        },
        params={"statement_lines": count, "claim_lines": len(lines), "claim_bytes": len(body), "period": PERIOD},
        note="; ".join(problems),
    )
