"""The service's referral intake, one referral per request: ``POST /v1/referrals`` per second, and its latency.

The real service, ``alliance serve`` (one worker) on 127.0.0.1, on a scratch database of its own with the demo
alliance loaded (``alliance demo --json``). The demo bank's integration (``cli_demo_bank``) fetches a token and
``wrk`` submits referrals to the bank's VIP program (``prg_demo_bank_vip``) over 50 connections, as
``ceiling_http`` loads the bare app. Every request is a different person (``bench/referral_gen.py``), with an
``Idempotency-Key`` of its own: each should be answered 201, and make exactly one referral.

The bodies are generated before the load and written one per line to a file; the wrk script splits the file
between its threads and sends each thread's bodies in turn. The file holds more bodies than the bare ceiling could
send in the time (``POOL_HEADROOM``); should a thread still run out, it starts again with new keys, and the repeated
people come back 200, which fails the bench.

Afterwards the bench reconciles the database with the answers, in SQL. wrk stops with requests in flight (at most
one per connection), which the server still finishes: once its own count of answers (``/metrics``) stops moving,
the referrals must be exactly as many as the 201s it counted, every 201 wrk received must have its referral, and no
person may have two. The requests without an answer are then sent again with their own keys and bodies (a client's
retry): one the server had committed is replayed (201, ``Idempotent-Replayed``) without a second effect, one it had
not is made now. After that, the number of referrals must equal the number of requests answered 201.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import statistics
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import referral_gen
from bench.auth_throughput import _COUNT_STATUSES as COUNT_STATUSES
from bench.auth_throughput import (
    PARTNER_CLIENT_ID,
    RATE_LIMIT_PER_SECOND,
    _access_token,
    _demo_bank,
    _lift_client_rate,
    _serve,
    _service_env,
    _tail,
)
from bench.auth_throughput import Load as StatusLoad
from bench.auth_throughput import _wrk as status_counting_wrk
from bench.ceiling_http import WRK_INSTALL_HINT, WrkReport, parse_wrk
from bench.common import BenchContext, BenchResult, PgTarget, connect, scratch_database, skipped, stage

NAME = "referral_single"
THREADS, CONNECTIONS = 2, 50  # as ceiling_http
DURATION_S, QUICK_DURATION_S = 10, 3
WARMUP_S = 2
WRK_TIMEOUT_S = 10  # as auth_throughput: a response slower than this is an error
PATH = "/v1/referrals"
PROGRAMS_PATH = "/v1/programs"
PROGRAM_ID = "prg_demo_bank_vip"
# The bench's referrals, apart from the demo's year of history in the same database.
REF_PREFIX = "BENCH-SINGLE"
OWN = "external_ref LIKE '" + REF_PREFIX + "%'"
# Bodies per second of load: the bare ceiling's rate (the service does more per request, so it is slower) times this.
POOL_HEADROOM = 1.5
FALLBACK_RATE = 3000.0  # when ceiling_http did not run
MIN_POOL = 2000
PERCENTILES = ("50", "75", "90", "95", "99")
CLI_TIMEOUT_S = 180.0
# After the load, the server's answer counts must stay put this many polls in a row (it is still finishing the
# requests wrk abandoned), for at most SETTLE_S.
SETTLE_POLLS, SETTLE_INTERVAL_S, SETTLE_S = 3, 0.2, 30.0


@dataclass
class Load:
    """One wrk run, and what its script saw: statuses, and which bodies were sent and answered."""

    report: WrkReport
    latency_ms: dict[str, float]  # percentile -> ms, from wrk's own histogram (with p95)
    statuses: dict[str, int]
    wrapped: int  # requests sent after a thread ran out of bodies (a repeated person)
    answered: dict[str, int]  # external_ref -> status, from the response bodies
    sent_refs: set[str] = field(default_factory=set)

    @property
    def socket_errors(self) -> int:
        return sum(self.report.socket_errors.values())

    def count(self, status: int) -> int:
        return self.statuses.get(str(status), 0)


@dataclass
class Reconciliation:
    referrals: int  # rows in the database after the load
    accepted: int  # requests answered 201 by the load (warm-up included)
    server_accepted: int  # 201s the server counted (its metrics), abandoned requests included: = referrals
    server_statuses: dict[str, int]
    accepted_without_referral: int  # must be 0
    duplicate_identities: int  # must be 0
    # Sent, and not answered with a referral: in flight when wrk stopped (at most one per connection), the request
    # wrk builds to check the script and never sends, and any answer that is an error.
    unanswered: int
    committed_unanswered: int  # of those, the server had committed
    foreign: int  # rows of no request sent: must be 0
    retried: bool  # whether the unanswered requests were sent again (not when there are errors)
    retried_statuses: dict[str, int]  # their answers
    replayed: int  # of those, answered from the idempotency record (committed before)
    referrals_after_retry: int
    accepted_after_retry: int  # distinct requests answered 201, the retries included
    referral_statuses: dict[str, int]

    @property
    def problems(self) -> list[str]:
        problems = []
        if self.referrals != self.server_accepted:
            problems.append(f"{self.referrals} referrals for {self.server_accepted} answers 201 (server's count)")
        if self.accepted_without_referral:
            problems.append(f"{self.accepted_without_referral} requests answered 201 have no referral")
        if self.duplicate_identities:
            problems.append(f"{self.duplicate_identities} people have more than one referral")
        if self.foreign:
            problems.append(f"{self.foreign} referrals match no request sent")
        if not self.retried:
            problems.append(f"{self.unanswered} requests have no answer with a referral: not retried")
        elif self.referrals_after_retry != self.accepted_after_retry:
            problems.append(
                f"{self.referrals_after_retry} referrals for {self.accepted_after_retry} requests answered 201"
            )
        if set(self.retried_statuses) - {"201"}:
            problems.append(f"the retried requests were answered {self.retried_statuses}")
        if self.retried and self.replayed != self.committed_unanswered:
            problems.append(f"{self.replayed} retries replayed, for {self.committed_unanswered} committed before")
        return problems


async def run(ctx: BenchContext) -> BenchResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        message = f"wrk is not installed, so the service cannot be loaded: {WRK_INSTALL_HINT}"
        print(f"  {message}", flush=True)
        return skipped(NAME, message)
    duration = QUICK_DURATION_S if ctx.quick else DURATION_S
    warmup = 0 if ctx.quick else WARMUP_S
    rate = ctx.metric("ceiling_http", "requests_per_s") or FALLBACK_RATE
    sizes = [max(MIN_POOL, math.ceil(rate * seconds * POOL_HEADROOM)) for seconds in (warmup, duration) if seconds]
    with stage(f"generating {sum(sizes):,} referrals, each a different person"):
        bodies = referral_gen.referrals(sum(sizes), program_id=PROGRAM_ID, ref_prefix=REF_PREFIX)
    async with scratch_database(ctx.server) as database:
        env = _service_env(database)
        with stage("loading the demo alliance (alliance demo --json)"):
            bank = await _demo_bank(env)
        client_rate = await _lift_client_rate(database, bank.client_id)
        async with _serve(env) as (base_url, server_log), _pools(bodies, sizes) as pools:
            headers = {"Authorization": "Bearer " + await _access_token(base_url, bank)}
            url = base_url + PATH
            loads = []
            if warmup:
                with stage(f"warming up for {warmup}s"):
                    loads.append(await _wrk(wrk, url, headers, pools[0], warmup))
                    # The server is still finishing what wrk left in flight: not during the load.
                    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
                        await _settled_statuses(http)
            with stage(f"POST {PATH}: wrk -t{THREADS} -c{CONNECTIONS} -d{duration}s"):
                load = await _wrk(wrk, url, headers, pools[-1], duration)
            loads.append(load)
            with stage("reconciling the database with the answers"):
                reconciled = await _reconcile(database, loads, bodies, base_url, headers)
            with stage(f"GET {PROGRAMS_PATH}, the bank's programs: wrk -t{THREADS} -c{CONNECTIONS} -d{duration}s"):
                programs = await _programs_load(wrk, base_url, headers["Authorization"], duration)
            errors = any(_errors(each) for each in loads)
            log_tail = _tail(server_log) if errors or reconciled.problems else ""
            body_bytes = statistics.mean(len(body.encode()) for _, body in pools[-1].lines)
    if log_tail:
        print(f"  the server's log ends with:\n{log_tail}", flush=True)
    result = _result(ctx, load, loads, reconciled, duration, sizes, body_bytes, client_rate, log_tail)
    return _with_programs(ctx, result, programs)


async def _programs_load(wrk: str, base_url: str, authorization: str, duration_s: int) -> StatusLoad:
    """A partner's protected GET (its programs, with the same token) under the load of ``ceiling_http``."""
    script = f"wrk.method = 'GET'\nwrk.headers['Authorization'] = {_lua_string(authorization)}\n" + COUNT_STATUSES
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        path = Path(directory) / "programs.lua"
        path.write_text(script)
        return await status_counting_wrk(wrk, base_url + PROGRAMS_PATH, path, CONNECTIONS, duration_s)


def _with_programs(ctx: BenchContext, result: BenchResult, programs: StatusLoad) -> BenchResult:
    rate = programs.report.requests_per_s
    result.metrics["programs_requests_per_s"] = rate
    ratio = ctx.ratio_to("ceiling_http", "requests_per_s", rate)
    if ratio is not None:
        result.metrics["programs_ratio_to_ceiling_http"] = ratio
    for percentile in ("50", "99"):
        if percentile in programs.report.latency_ms:
            result.metrics[f"programs_latency_p{percentile}_ms"] = programs.report.latency_ms[percentile]
    result.metrics["programs_non_2xx"] = programs.report.non_2xx
    result.params["programs_statuses"] = programs.statuses
    result.headline += f"; GET {PROGRAMS_PATH} {rate:,.0f} req/s" + (f" ({ratio:.0%})" if ratio is not None else "")
    if programs.errors:
        result.status = "failed"
        result.note += (
            f"; GET {PROGRAMS_PATH}: statuses {programs.statuses}, socket errors {programs.report.socket_errors}"
        )
    return result


def _errors(load: Load) -> int:
    """Anything but a 201: non-2xx answers, 200s (a repeated person), socket errors."""
    return load.report.non_2xx + load.count(200) + load.socket_errors + load.wrapped


def _result(
    ctx: BenchContext,
    load: Load,
    loads: list[Load],
    reconciled: Reconciliation,
    duration: int,
    sizes: list[int],
    body_bytes: float,
    client_rate: bool,
    log_tail: str = "",
) -> BenchResult:
    rate = load.report.requests_per_s
    ratio = ctx.ratio_to("ceiling_http", "requests_per_s", rate)
    metrics: dict[str, float] = {"requests_per_s": rate}
    if ratio is not None:
        metrics["ratio_to_ceiling_http"] = ratio
    metrics["created_per_s"] = load.count(201) / load.report.duration_s if load.report.duration_s else 0.0
    for percentile in PERCENTILES:
        if percentile in load.latency_ms:
            metrics[f"latency_p{percentile}_ms"] = load.latency_ms[percentile]
    metrics |= {
        "requests": load.report.requests,
        "responses_201": load.count(201),
        "responses_200": load.count(200),
        "non_2xx": load.report.non_2xx,
        "socket_errors": load.socket_errors,
        # The reconciliation, warm-up included.
        "referrals_in_db": reconciled.referrals,
        "client_201": reconciled.accepted,
        "server_201": reconciled.server_accepted,
        "no_answer": reconciled.unanswered,
        "no_answer_committed": reconciled.committed_unanswered,
        "retry_replayed": reconciled.replayed,
        "referrals_after_retry": reconciled.referrals_after_retry,
        "accepted_after_retry": reconciled.accepted_after_retry,
    }

    failures = list(reconciled.problems)
    for label, each in zip(("warm-up", "load") if len(loads) == 2 else ("load",), loads, strict=True):
        if _errors(each):
            failures.append(
                f"{label}: statuses {each.statuses}, {each.report.non_2xx} non-2xx, "
                f"socket errors {each.report.socket_errors}, {each.wrapped} repeated people (bodies ran out)"
            )
    lifted = f" and {PARTNER_CLIENT_ID}'s own limit set to it (its partner's tier allows 50/s)" if client_rate else ""
    notes = [
        f"the server ran with ALLIANCE_RATE_LIMIT_PER_SECOND={RATE_LIMIT_PER_SECOND}{lifted}, "
        "so the figure measures the service, not the rate limiter",
        f"after the load (warm-up included) the database held {reconciled.referrals} referrals; the server had "
        f"answered 201 {reconciled.server_accepted} times, wrk had received {reconciled.accepted} of those answers; "
        f"{reconciled.unanswered} requests had no answer with a referral (in flight when wrk stopped, and the one "
        f"wrk builds to check its script and never sends), {reconciled.committed_unanswered} of them committed; "
        f"sent again, they were answered {reconciled.retried_statuses or '-'} ({reconciled.replayed} replayed), "
        f"and the database then held {reconciled.referrals_after_retry} referrals for "
        f"{reconciled.accepted_after_retry} requests answered 201",
    ]
    if ratio is None:
        notes.append("no ratio: ceiling_http did not run or did not succeed")
    notes += failures
    if log_tail:
        notes.append(f"the server's log ends with: {log_tail[-1000:]}")
    ratio_text = f" ({ratio:.0%} of ceiling_http)" if ratio is not None else ""
    p99 = load.latency_ms.get("99", float("nan"))
    return BenchResult(
        name=NAME,
        status="failed" if failures else "ok",
        headline=f"{rate:,.0f} referrals/s{ratio_text}, p99 {p99:.0f} ms",
        metrics=metrics,
        params={
            "duration_s": duration,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "request": f"POST {PATH}, one new person per request, unique Idempotency-Key, Bearer token of "
            f"{PARTNER_CLIENT_ID}, program {PROGRAM_ID}",
            "statuses": load.statuses,
            "bodies_generated": sum(sizes),
            "body_bytes_mean": round(body_bytes),
            "referral_statuses": reconciled.referral_statuses,
            "server_statuses": reconciled.server_statuses,
            "rate_limit_per_second": RATE_LIMIT_PER_SECOND,
            "client_rate_limit_lifted": client_rate,
            "server": "alliance serve --workers 1",
        },
        note="; ".join(notes),
    )


# --- wrk ----------------------------------------------------------------------------------------------------------

# Each thread takes every THREADS-th line of the file (its share) and sends its lines in turn, one per request.
# A line is "<Idempotency-Key> TAB <JSON body>". The responses' statuses are counted, and the external_ref of each
# answer is kept: which requests were answered, and how. ``done`` prints it all, one fact per line.
_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  keys, bodies, count = {}, {}, 0
  local index = 0
  for line in io.lines(POOL) do
    if index % THREADS == id then
      local tab = line:find("\\t", 1, true)
      count = count + 1
      keys[count], bodies[count] = line:sub(1, tab - 1), line:sub(tab + 1)
    end
    index = index + 1
  end
  sent, wrapped, statuses, answered = 0, 0, {}, {}
end

function request()
  local index, round = sent % count + 1, math.floor(sent / count)
  sent = sent + 1
  local key = keys[index]
  if round > 0 then
    wrapped = wrapped + 1
    key = key .. "-again-" .. round
  end
  wrk.headers["Idempotency-Key"] = key
  return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local ref = body:match('"external_ref":%s*"([^"]+)"')
  if ref then answered[#answered + 1] = status .. " " .. ref end
end

function done(summary, latency, requests)
  for _, p in ipairs({50, 75, 90, 95, 99}) do
    io.write(string.format("LATENCY %d %d\\n", p, latency:percentile(p)))
  end
  for _, thread in ipairs(threads) do
    io.write(string.format("THREAD %d %d %d\\n", thread:get("id"), thread:get("sent"), thread:get("wrapped")))
    for status, n in pairs(thread:get("statuses")) do io.write(string.format("STATUS %d %d\\n", status, n)) end
    for _, answer in ipairs(thread:get("answered")) do io.write("ANSWER " .. answer .. "\\n") end
  end
end
"""


@dataclass
class Pool:
    path: Path
    lines: list[tuple[str, str]]  # (key, body) in file order


@asynccontextmanager
async def _pools(bodies: list[dict[str, Any]], sizes: list[int]) -> AsyncIterator[list[Pool]]:
    """One file of requests per load (the warm-up's, then the load's), in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-referrals-") as directory:
        pools, start = [], 0
        for number, size in enumerate(sizes):
            lines = [
                (body["external_ref"], json.dumps(body, ensure_ascii=False, separators=(",", ":")))
                for body in bodies[start : start + size]
            ]
            path = Path(directory) / f"pool-{number}.tsv"
            path.write_text("".join(f"{key}\t{body}\n" for key, body in lines), encoding="utf-8")
            pools.append(Pool(path, lines))
            start += size
        yield pools


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def _wrk(wrk: str, url: str, headers: dict[str, str], pool: Pool, duration_s: int) -> Load:
    preamble = [
        "wrk.method = 'POST'",
        "wrk.headers['Content-Type'] = 'application/json'",
        *(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in headers.items()),
        f"POOL = {_lua_string(str(pool.path))}",
        f"THREADS = {THREADS}",
    ]
    script = pool.path.with_suffix(".lua")
    script.write_text("\n".join(preamble) + _SCRIPT)
    command = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", f"--timeout={WRK_TIMEOUT_S}s"]
    command += ["--latency", "-s", str(script), url]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text[-4000:]}")
    return _parse(text, pool)


def _parse(text: str, pool: Pool) -> Load:
    statuses: dict[str, int] = {}
    for status, count in re.findall(r"^STATUS (\d+) (\d+)$", text, re.MULTILINE):
        statuses[status] = statuses.get(status, 0) + int(count)
    latency = {p: int(us) / 1000 for p, us in re.findall(r"^LATENCY (\d+) (\d+)$", text, re.MULTILINE)}
    answered = {ref: int(status) for status, ref in re.findall(r"^ANSWER (\d+) (\S+)$", text, re.MULTILINE)}
    wrapped = 0
    sent_refs: set[str] = set()
    for thread, thread_sent, thread_wrapped in re.findall(r"^THREAD (\d+) (\d+) (\d+)$", text, re.MULTILINE):
        wrapped += int(thread_wrapped)
        share = pool.lines[int(thread) :: THREADS]
        sent_refs.update(key for key, _ in share[: int(thread_sent)])
    # The wrk report proper: drop the script's lines, which parse_wrk need not see.
    report = parse_wrk(re.sub(r"^(STATUS|LATENCY|ANSWER|THREAD) .*\n", "", text, flags=re.MULTILINE))
    return Load(report, latency, dict(sorted(statuses.items())), wrapped, answered, sent_refs)


# --- Reconciliation -----------------------------------------------------------------------------------------------


async def _reconcile(
    database: PgTarget,
    loads: list[Load],
    bodies: list[dict[str, Any]],
    base_url: str,
    headers: dict[str, str],
) -> Reconciliation:
    accepted = {ref for load in loads for ref, status in load.answered.items() if status == 201}
    sent = set().union(*(load.sent_refs for load in loads))
    unanswered = sent - {ref for load in loads for ref in load.answered}
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        # The server finishes the requests wrk abandoned: wait until it has answered them all.
        server_statuses = await _settled_statuses(http)
        connection = await connect(database)
        try:
            refs = set(await _referrals(connection))
            duplicates = int(
                await connection.fetchval(
                    f"SELECT count(*) FROM (SELECT identity_hash FROM referrals WHERE {OWN}"
                    " GROUP BY 1 HAVING count(*) > 1) AS d"
                )
            )
            statuses = {
                str(row["status"]): int(row["n"])
                for row in await connection.fetch(
                    f"SELECT status::text, count(*) AS n FROM referrals WHERE {OWN} GROUP BY 1 ORDER BY 1"
                )
            }
            # The requests without an answer, sent again as a client would retry them: same key, same body. More
            # than one per connection means error answers (no referral in their body): the bench fails, no retries.
            retry = len(unanswered) <= len(loads) * (CONNECTIONS + 1)
            by_ref = {body["external_ref"]: body for body in bodies}
            retried: dict[str, int] = {}
            retried_accepted: set[str] = set()
            replayed = 0
            for ref in sorted(unanswered) if retry else []:
                response = await http.post(PATH, json=by_ref[ref], headers={**headers, "Idempotency-Key": ref})
                retried[str(response.status_code)] = retried.get(str(response.status_code), 0) + 1
                replayed += response.headers.get("Idempotent-Replayed", "").lower() == "true"
                if response.status_code == 201:
                    retried_accepted.add(ref)
            after = len(await _referrals(connection))
        finally:
            await connection.close()
    return Reconciliation(
        referrals=len(refs),
        accepted=len(accepted),
        server_accepted=server_statuses.get("201", 0),
        server_statuses=server_statuses,
        accepted_without_referral=len(accepted - refs),
        duplicate_identities=duplicates,
        unanswered=len(unanswered),
        committed_unanswered=len(refs & unanswered),
        foreign=len(refs - sent),
        retried=retry,
        retried_statuses=dict(sorted(retried.items())),
        replayed=replayed,
        referrals_after_retry=after,
        accepted_after_retry=len(accepted | retried_accepted),
        referral_statuses=statuses,
    )


async def _referrals(connection: asyncpg.Connection) -> list[str]:
    """The external_ref of every referral the bench sent (the demo's history is not counted)."""
    rows = await connection.fetch(f"SELECT external_ref FROM referrals WHERE {OWN}")
    return [str(row["external_ref"]) for row in rows]


_REQUESTS_TOTAL = re.compile(r"^alliance_http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


async def _server_statuses(http: httpx.AsyncClient) -> dict[str, int]:
    """What the server itself counted (its Prometheus metrics): its answers to ``POST /v1/referrals``, by status."""
    response = await http.get("/metrics")
    response.raise_for_status()
    counts: dict[str, int] = {}
    for match in _REQUESTS_TOTAL.finditer(response.text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("method") == "POST" and labels.get("route") == PATH:
            counts[labels["status"]] = counts.get(labels["status"], 0) + int(float(match["value"]))
    return dict(sorted(counts.items()))


async def _settled_statuses(http: httpx.AsyncClient) -> dict[str, int]:
    """The server's counts once they stop moving (``SETTLE_POLLS`` polls in a row alike), or after ``SETTLE_S``."""
    deadline = asyncio.get_running_loop().time() + SETTLE_S
    counts, alike = await _server_statuses(http), 0
    while alike < SETTLE_POLLS and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(SETTLE_INTERVAL_S)
        latest = await _server_statuses(http)
        alike = alike + 1 if latest == counts else 0
        counts = latest
    return counts
