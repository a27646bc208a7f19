"""Accrual for 1,000,000 conversion events: ``POST /v1/conversion-events`` in calls of 10,000, against the real
service (``alliance serve``, one worker) on a scratch database with the demo alliance.

100,000 eligible referrals of the demo bank's VIP program are inserted set-based (``INSERT … SELECT unnest``), each
with the blind index of a valid resident ID number, computed with the service's own key. The back office then
reports ten events per client, as its feed would, each call carrying 1,000 whole client histories: the account
opened (with the ID number, which attributes it), funded, two asset snapshots, a bundle purchase and five revenue
records. Every event is applied, attributed and accrued under the demo schedule (funded bounty by tier, bundle
fee, revenue share, and its caps per referral and per partner month, which write capped lines). The clock runs
from the first call to the last answer; the calls are sequential. Afterwards the ledger is checked in SQL.
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.core.config import Settings
from app.core.identifiers import national_id_check_character
from app.privacy.service import blind_index
from app.referrals.service import identity_index
from bench.auth_throughput import Credentials, _access_token, _alliance, _serve, _service_env, _stop
from bench.common import ROOT, BenchContext, BenchResult, PgTarget, Stopwatch, connect, scratch_database, stage

NAME = "fees_accrual"
EVENTS, QUICK_EVENTS = 1_000_000, 50_000
PER_CALL = 10_000
EVENTS_PER_CLIENT = 10
PATH = "/v1/conversion-events"
BACK_OFFICE_CLIENT_ID = "cli_demo_back_office"
PARTNER_ID, PROGRAM_ID = "ptn_demo_bank", "prg_demo_bank_vip"
FIRST_OPENING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OPENING_DAYS = 260  # accounts open from January 5 to late September
CLI_TIMEOUT_S = 180.0
CALL_TIMEOUT_S = 600.0

# Each referral holds its person (``identity_holders``), as an intake through the API leaves it: the feed finds the
# referral a client's events credit through the holder of the client's identity.
REFERRALS_SQL = """
WITH made AS (
    INSERT INTO referrals (id, partner_id, program_id, external_ref, kind, status, identity_hash, window_ends_at,
                           created_at, updated_at)
    SELECT 'ref_bench_' || n, $1, $2, 'ACR-' || n, 'vip', 'eligible', hash,
           opened - interval '5 days' + interval '95 days', opened - interval '5 days', opened - interval '5 days'
    FROM unnest($3::int[], $4::bytea[], $5::timestamptz[]) AS person(n, hash, opened)
    RETURNING id, partner_id, identity_hash, created_at
)
INSERT INTO identity_holders (identity_hash, referral_id, partner_id, held_since)
SELECT identity_hash, id, partner_id, created_at FROM made
"""

# The bench's own rows only: the demo alliance comes with a year of history of its own.
CHECK_SQL = """
SELECT (SELECT count(*) FROM conversion_events WHERE source_event_id LIKE 'bench-%') AS events,
       (SELECT count(*) FROM conversion_events WHERE source_event_id LIKE 'bench-%' AND status = 'applied') AS applied,
       (SELECT count(*) FROM fee_accruals WHERE referral_id LIKE 'ref_bench_%') AS lines,
       (SELECT coalesce(sum(amount_fen), 0) FROM fee_accruals
        WHERE referral_id LIKE 'ref_bench_%' AND status <> 'reversed') AS total_fen,
       (SELECT count(*) FROM fee_accruals WHERE referral_id LIKE 'ref_bench_%' AND rule = 'cap') AS cap_lines,
       (SELECT count(*) FROM referrals WHERE id LIKE 'ref_bench_%' AND status = 'converted') AS converted,
       (SELECT count(*) FROM (
            SELECT u.partner_id, u.month FROM fee_cap_usage AS u
            FULL JOIN (SELECT partner_id, to_char(occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month,
                              sum(amount_fen) AS used
                       FROM fee_accruals
                       WHERE rule IN ('funded_bounty', 'tier_top_up', 'bundle_fee', 'revenue_share', 'cap',
                                      'attribution_moved') AND status <> 'reversed'
                       GROUP BY 1, 2) AS l USING (partner_id, month)
            WHERE coalesce(u.used_fen, 0) <> coalesce(l.used, 0)) AS off) AS usage_off
"""


def national_id(index: int) -> str:
    """A distinct valid resident ID number for client ``index`` (1,000 per birth date)."""
    born = date(1960, 1, 1) + timedelta(days=index // 1000)
    first17 = f"110101{born:%Y%m%d}{index % 1000:03d}"
    return first17 + national_id_check_character(first17)


def opened_at(index: int) -> datetime:
    return FIRST_OPENING + timedelta(days=index % OPENING_DAYS, minutes=index % 600)


def history(index: int) -> list[dict[str, Any]]:
    """Client ``index``'s ten events, in the order the back office reports them."""
    ref, start = f"ACC-{index}", opened_at(index)
    funded = (50_000, 50_000, 50_000, 2_000_000, 8_000_000)[index % 5] * 100  # retail x3, HNW, institutional

    def event(n: int, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        return {
            "source_event_id": f"bench-{index}-{n}",
            "type": kind,
            "occurred_at": at.isoformat(),
            "client_ref": ref,
            **fields,
        }

    money = {"currency": "CNY"}
    return [
        event(0, "account_opened", start, national_id=national_id(index)),
        event(1, "account_funded", start + timedelta(hours=1), amount=funded, **money),
        event(
            2,
            "bundle_purchased",
            start + timedelta(days=2),
            product_code="BANK_WM_PLUS_EQUITY",
            amount=10_000_000,
            **money,
        ),
        event(3, "assets_snapshot", start + timedelta(days=10), amount=funded, **money),
        event(4, "assets_snapshot", start + timedelta(days=20), amount=funded + 100_000, **money),
        *(
            event(5 + day, "revenue_recorded", start + timedelta(days=3 + day), amount=100_000 + 1_234 * day, **money)
            for day in range(5)
        ),
    ]


async def run(ctx: BenchContext) -> BenchResult:
    total = QUICK_EVENTS if ctx.quick else EVENTS
    clients = total // EVENTS_PER_CLIENT
    per_call_clients = PER_CALL // EVENTS_PER_CLIENT
    with stage(f"generating {total:,} events of {clients:,} clients as {total // PER_CALL} bodies"):
        bodies = [
            json.dumps(
                {"events": [event for index in range(first, first + per_call_clients) for event in history(index)]}
            )
            for first in range(0, clients, per_call_clients)
        ]
    async with scratch_database(ctx.server, "bench_accrual") as database:
        env = _service_env(database)
        env["ALLIANCE_ACCESS_TOKEN_TTL_S"] = "3600"  # one token for the whole run, which outlasts the default 10 min
        with stage("loading the demo alliance (alliance demo --json)"):
            back_office = await _demo_client(env, BACK_OFFICE_CLIENT_ID)
        with stage(f"inserting {clients:,} eligible referrals with their blind indexes (SQL)"):
            await _referrals(database, clients)
        async with _serve(env) as (base_url, _):
            token = await _access_token(base_url, back_office)
            latencies, summaries = await _post_all(base_url, token, bodies)
        with stage("checking the ledger (SQL)"):
            check = await _check(database)
    elapsed = sum(latencies)
    applied = sum(summary.get("applied", 0) for summary in summaries)
    problems = []
    if applied != total or check["applied"] != total:
        problems.append(f"{applied} events answered applied, {check['applied']} stored applied, for {total}")
    if check["converted"] != clients:
        problems.append(f"{check['converted']} referrals converted, for {clients}")
    if check["usage_off"]:
        problems.append(f"{check['usage_off']} (partner, month)s whose fee_cap_usage differs from the ledger")
    # Flat time: the calls of the first tenth against those of the last (the ledger grows in between).
    tenth = max(1, len(latencies) // 10)
    first_s, last_s = statistics.mean(latencies[:tenth]), statistics.mean(latencies[-tenth:])
    return BenchResult(
        name=NAME,
        status="failed" if problems else "ok",
        headline=f"{total:,} events accrued in {elapsed:.1f}s ({total / elapsed:,.0f} events/s)",
        metrics={
            "events_per_s": total / elapsed,
            "lines_per_s": check["lines"] / elapsed,
            "total_s": elapsed,
            "call_median_s": statistics.median(latencies),
            "call_max_s": max(latencies),
            "call_first_10pct_s": first_s,
            "call_last_10pct_s": last_s,
            "last_to_first": last_s / first_s,
            "ledger_lines": float(check["lines"]),
            "cap_lines": float(check["cap_lines"]),
        },
        params={
            "events": total,
            "clients": clients,
            "events_per_call": PER_CALL,
            "calls": len(bodies),
            "server": "alliance serve --workers 1, calls sequential",
            "schedule": "demo bank VIP: bounty by tier, bundle fee, revenue share 10% x 12 months, caps",
        },
        note="; ".join(problems),
    )


async def _demo_client(env: dict[str, str], client_id: str) -> Credentials:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        _alliance(), "demo", "--json", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    finally:
        await _stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"`alliance demo` exited with {process.returncode}:\n{stderr.decode(errors='replace')}")
    text = stdout.decode()
    start = re.search(r"^\{$", text, re.MULTILINE)
    for item in json.loads(text[start.start() :])["clients"] if start else []:
        if item["client_id"] == client_id and item["client_secret"]:
            return Credentials(item["client_id"], item["client_secret"])
    raise RuntimeError(f"`alliance demo` gave no secret for {client_id}")


async def _referrals(database: PgTarget, clients: int) -> None:
    # The service's own key (the same settings and environment as `alliance serve`): its blind indexes match.
    index = blind_index(Settings())
    numbers = list(range(clients))
    hashes = [identity_index(index, "vip", national_id(number)) for number in numbers]
    opened = [opened_at(number) for number in numbers]
    connection: asyncpg.Connection = await connect(database)
    try:
        await connection.execute(REFERRALS_SQL, PARTNER_ID, PROGRAM_ID, numbers, hashes, opened)
        await connection.execute("ANALYZE referrals, identity_holders")
    finally:
        await connection.close()


async def _post_all(base_url: str, token: str, bodies: list[str]) -> tuple[list[float], list[dict[str, int]]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies, summaries = [], []
    async with httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S) as http:
        with stage(f"POST {PATH}: {len(bodies)} calls of {PER_CALL:,} events"):
            for body in bodies:
                with Stopwatch() as watch:
                    response = await http.post(PATH, content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"POST {PATH} answered {response.status_code}: {response.text[:500]}")
                latencies.append(watch.seconds)
                summaries.append(response.json()["summary"])
    return latencies, summaries


async def _check(database: PgTarget) -> dict[str, int]:
    connection: asyncpg.Connection = await connect(database)
    try:
        row = await connection.fetchrow(CHECK_SQL)
    finally:
        await connection.close()
    return {key: int(value) for key, value in dict(row).items()}
