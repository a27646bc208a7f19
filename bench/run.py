"""Run the benches: ``make bench``, or ``.venv/bin/python bench/run.py [--only NAME] [--quick] [--list]``.

Benches run in the order of ``BENCHES``, ceilings first, all in one process and one event loop: a later bench reads
the ceilings measured in the same run from ``ctx.results`` (see ``BenchContext.ratio_to``). Each result is printed
and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, Python puts bench/ first on the path, where a bench module could shadow a library; import the
# benches as the ``bench`` package from the repository root instead.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT), *(entry for entry in sys.path if Path(entry or ".").resolve() != _ROOT / "bench")]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import signal  # noqa: E402
import traceback  # noqa: E402

from bench import (  # noqa: E402
    auth_throughput,
    ceiling_copy,
    ceiling_http,
    fees_accrual,
    fees_close,
    fees_reconcile,
    load_mixed,
    referral_batch,
    referral_single,
    reports_latency,
    risk_signals,
    webhooks_delivery,
)
from bench.common import (  # noqa: E402
    Bench,
    BenchContext,
    BenchResult,
    Stopwatch,
    environment,
    failed,
    print_result,
    print_table,
    server_settings,
    server_target,
    write_result,
)

# Ceilings first: later benches report their figures as a ratio to them (declare them in ``needs``).
BENCHES: list[Bench] = [
    Bench(ceiling_copy.NAME, ceiling_copy.run, "bare asyncpg COPY of referral-shaped rows into a plain table"),
    Bench(ceiling_http.NAME, ceiling_http.run, "bare FastAPI + one asyncpg INSERT per POST, uvicorn 1 worker, wrk"),
    Bench(
        auth_throughput.NAME,
        auth_throughput.run,
        "alliance serve, 1 worker: POST /oauth/token and a protected GET, wrk",
        needs=(ceiling_http.NAME,),
    ),
    Bench(
        referral_single.NAME,
        referral_single.run,
        "alliance serve, 1 worker: POST /v1/referrals, a new person per request, wrk",
        needs=(ceiling_http.NAME,),
    ),
    Bench(
        referral_batch.NAME,
        referral_batch.run,
        "alliance serve + alliance worker: one CSV batch of 100,000 referrals, end to end, vs a bare COPY",
        needs=(ceiling_copy.NAME,),
    ),
    Bench(
        fees_accrual.NAME,
        fees_accrual.run,
        "alliance serve, 1 worker: 1,000,000 conversion events in calls of 10,000, accrued under the demo schedule",
    ),
    Bench(
        risk_signals.NAME,
        risk_signals.run,
        "the risk signal job over the fees_accrual load (its referrals with mobile indexes and consent), vs its ingest",
    ),
    Bench(fees_close.NAME, fees_close.run, "close a month of 100,000 ledger lines (200 partners) into statements"),
    Bench(
        fees_reconcile.NAME, fees_reconcile.run, "reconcile a 100,000-line partner claim (CSV) against its statement"
    ),
    Bench(
        reports_latency.NAME,
        reports_latency.run,
        "each report over a year by partner and month: 1,000,000 referrals, 3,000,000 conversion events",
    ),
    Bench(
        webhooks_delivery.NAME, webhooks_delivery.run, "worker delivery loop: signed webhooks to a loopback receiver"
    ),
    Bench(
        load_mixed.NAME,
        load_mixed.run,
        "alliance serve, 2 workers: submissions, status reads, conversion events and reports mixed for 3 minutes, "
        "then an exactly-once check in SQL",
    ),
]


def select(names: list[str] | None) -> list[Bench]:
    """The benches asked for, with the benches they need, in registry order."""
    by_name = {bench.name: bench for bench in BENCHES}
    if not names:
        return list(BENCHES)
    unknown = sorted(set(names) - by_name.keys())
    if unknown:
        raise SystemExit(f"unknown bench {', '.join(unknown)}; known: {', '.join(by_name)}")
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(by_name[name].needs)
    return [bench for bench in BENCHES if bench.name in wanted]


async def run_one(bench: Bench, ctx: BenchContext) -> BenchResult:
    print(f"\n== {bench.name}: {bench.description}", flush=True)
    with Stopwatch() as watch:
        try:
            result = await bench.run(ctx)
        except Exception as error:
            traceback.print_exc()
            result = failed(bench.name, f"{type(error).__name__}: {error}")
    result.seconds = watch.seconds
    print_result(result)
    path = write_result(result, ctx.environment)
    print(f"  -> {path.relative_to(_ROOT)}", flush=True)
    return result


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the run as Ctrl-C does, so that every bench still stops its servers and drops its databases."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run_all(benches: list[Bench], quick: bool) -> dict[str, BenchResult]:
    cancel_on_sigterm()
    server = server_target()
    settings = await server_settings(server)
    ctx = BenchContext(server=server, quick=quick, environment=environment(server, settings, quick))
    print(f"database: {server.describe()}, PostgreSQL {settings.get('server_version', '?')}", flush=True)
    for bench in benches:
        ctx.results[bench.name] = await run_one(bench, ctx)
    return ctx.results


def print_summary(results: dict[str, BenchResult]) -> None:
    rows = [(r.name, r.status, r.headline, f"{r.seconds:.1f}s") for r in results.values()]
    print_table("Summary", rows, header=("bench", "status", "figure", "took"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Alliance benchmarks: reference ceilings, then the service.")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this bench (and what it needs)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter loads, for a smoke test")
    parser.add_argument("--list", action="store_true", help="list the benches and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print_table("Benches", [(bench.name, bench.description) for bench in BENCHES])
        return 0
    try:
        results = asyncio.run(run_all(select(args.only), args.quick))
    except asyncio.CancelledError:
        print("\nterminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    print_summary(results)
    return 1 if any(result.status == "failed" for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
