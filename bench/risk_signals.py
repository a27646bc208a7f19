"""The risk signal job over the ``fees_accrual`` load: what the six detectors cost next to the ingest they follow.

The same load as ``fees_accrual`` (its referrals, set-based, and its back office's calls through ``alliance
serve``), with each referral given a mobile blind index and consent evidence of its own (set-based, untimed: the
bench's referrals are inserted without them, and the two detectors that read them would otherwise see nothing).
Then the worker's job (``app.risk.signals.raise_risk_signals``) runs in-process over all of it at once, as its
first run after the ingest would (a lookback that covers the whole load: every row is new to it), then again
(the steady state: nothing arrived since its last look). The figure is the first run's time against the ingest's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import clock
from app.core.config import Settings
from app.core.database import create_engine, normalise_url
from app.risk.detectors import Window
from app.risk.signals import DETECTORS, raise_risk_signals
from bench import fees_accrual as load
from bench.auth_throughput import _access_token, _serve, _service_env
from bench.common import BenchContext, BenchResult, PgTarget, Stopwatch, connect, scratch_database, stage

NAME = "risk_signals"
LOOKBACK_DAYS = 400  # the load's referrals and events date from January 2026 on

PERSONAL_SQL = """
UPDATE referrals SET
    mobile_hash = sha256(convert_to('mobile:' || id, 'UTF8')),
    consent = jsonb_build_object(
        'captured_at', to_char(created_at - interval '1 hour' - make_interval(secs => abs(hashtext(id)) % 3600),
                               'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'channel', 'mobile_app', 'notice_version', '2026-01',
        'notice_sha256', encode(sha256(convert_to('notice 2026-01', 'UTF8')), 'hex'),
        'evidence_ref', 'SIG-' || id)
WHERE partner_id = $1
"""


async def run(ctx: BenchContext) -> BenchResult:
    total = load.QUICK_EVENTS if ctx.quick else load.EVENTS
    clients = total // load.EVENTS_PER_CLIENT
    per_call = load.PER_CALL // load.EVENTS_PER_CLIENT
    bodies = [
        json.dumps({"events": [event for index in range(first, first + per_call) for event in load.history(index)]})
        for first in range(0, clients, per_call)
    ]
    async with scratch_database(ctx.server, "bench_risk") as database:
        env = _service_env(database)
        env["ALLIANCE_ACCESS_TOKEN_TTL_S"] = "3600"
        with stage("loading the demo alliance (alliance demo --json)"):
            back_office = await load._demo_client(env, load.BACK_OFFICE_CLIENT_ID)
        with stage(f"inserting {clients:,} eligible referrals, with mobile indexes and consent (SQL)"):
            await load._referrals(database, clients)
            await _personal_data(database)
        async with _serve(env) as (base_url, _):
            token = await _access_token(base_url, back_office)
            latencies, _ = await load._post_all(base_url, token, bodies)
        ingest_s = sum(latencies)
        with stage("the signal job, first run over the whole load, then again"):
            first_s, again_s, per_detector, raised = await _signal_job(database)
    ratio = first_s / ingest_s
    return BenchResult(
        name=NAME,
        status="ok" if ratio < 0.10 else "failed",
        headline=f"signal job {first_s:.2f}s over the load vs ingest {ingest_s:.1f}s: {ratio:.1%} (< 10%)",
        metrics={
            "signal_job_s": first_s,
            "signal_job_again_s": again_s,
            "ingest_s": ingest_s,
            "ratio_pct": 100 * ratio,
            "signals_raised": float(raised),
            **{f"{name}_s": seconds for name, seconds in per_detector.items()},
        },
        params={
            "events": total,
            "referrals": clients,
            "lookback_days": LOOKBACK_DAYS,
            "ingest": "fees_accrual's: alliance serve --workers 1, calls of 10,000 events, sequential",
        },
        note="" if ratio < 0.10 else f"the signal job costs {ratio:.1%} of the ingest",
    )


async def _personal_data(database: PgTarget) -> None:
    connection: asyncpg.Connection = await connect(database)
    try:
        await connection.execute(PERSONAL_SQL, load.PARTNER_ID)
        await connection.execute("ANALYZE referrals")
        await connection.execute("ANALYZE conversion_events")
    finally:
        await connection.close()


async def _signal_job(database: PgTarget) -> tuple[float, float, dict[str, float], int]:
    settings = Settings(database_url=database.dsn, risk_lookback_days=LOOKBACK_DAYS)
    engine = create_engine(normalise_url(database.dsn), settings)
    now = clock.now()  # the events were received just now
    try:
        per_detector: dict[str, float] = {}
        # Each detector alone first (they only read): where the time goes.
        async with engine.connect() as connection, connection.begin():
            session = AsyncSession(bind=connection)
            window = Window(datetime(2000, 1, 1, tzinfo=UTC), now, settings)
            for detector in DETECTORS:
                with Stopwatch() as watch:
                    await detector(session, window)
                per_detector[detector.__name__] = watch.seconds
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        with Stopwatch() as first:
            async with sessions() as session, session.begin():
                raised = await raise_risk_signals(session, settings, now)
        with Stopwatch() as again:
            async with sessions() as session, session.begin():
                await raise_risk_signals(session, settings, now)
    finally:
        await engine.dispose()
    return first.seconds, again.seconds, per_detector, raised
