"""A mixed load for a few minutes against ``alliance serve --workers 2``: partners submitting and reading referrals,
the back office reporting conversions, alliance managers reading reports; then a check, in SQL, that every
accepted request left exactly one effect.

On a scratch database with the demo alliance (``alliance demo --json``), the bench starts the real service with
two worker processes (the machine has two cores, which the service shares with PostgreSQL and this load) and runs
``USERS`` virtual users for ``DURATION_S`` (``QUICK_DURATION_S`` with ``--quick``). Each user loops: it picks an
operation by weight (``OPERATIONS``), sends it with httpx, and records its latency and status. The operations:

* ``submit``: ``POST /v1/referrals`` by one of the demo bank, insurer and corporate, a new person or enterprise each
  time (``bench/referral_gen.py``), with an ``Idempotency-Key`` of its own;
* ``submit_retry``: an answered submission sent again with its key and body, as a client that lost the answer
  would: it must come back 201 with the same referral (``Idempotent-Replayed``), not make a second one;
* ``read``, ``timeline``, ``list``: ``GET /v1/referrals/{id}``, ``GET /v1/referrals/{id}/events`` and
  ``GET /v1/referrals?limit=20`` by the partner that owns them;
* ``conversions``: ``POST /v1/conversion-events`` by the back office: accounts opened (with the referred person's
  ID number, which attributes them) and funded for up to three accepted referrals, and bundle purchases of
  accounts funded earlier; ``conversions_retry`` sends an answered call again (every event ``duplicate``);
* ``report``: one of the reports (funnel, time to convert, client structure, fees, a partner's scorecard) as the
  demo alliance manager, or a partner's own funnel.

The per-client rate limits are lifted (``ALLIANCE_RATE_LIMIT_PER_SECOND`` and each demo client's own limit), so
the figures measure the service. An error is any answer other than the operation's expected statuses (all 2xx
here), a timeout or a transport error. Requests that ended in an error are retried after the load, with their key
and body, before the check.

The check (SQL on the scratch database): every accepted submission has exactly one referral with its reference and
the id it was answered with, replays answered the first referral, no referral exists that no request asked for;
every event of an accepted conversion call exists exactly once; every referral has exactly one initial timeline
entry; the webhook outbox holds one delivery per status change of the demo bank's referrals (the bank subscribes
before the load; no worker runs, so deliveries stay queued); ledger lines are unique by source.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import httpx

from bench import referral_gen
from bench.auth_throughput import (
    RATE_LIMIT_PER_SECOND,
    Credentials,
    _access_token,
    _alliance,
    _demo,
    _lift_client_rate,
    _service_env,
    _stop,
    _tail,
    _wait_until_ready,
)
from bench.common import ROOT, BenchContext, BenchResult, PgTarget, connect, free_port, scratch_database, stage

NAME = "load_mixed"
DURATION_S, QUICK_DURATION_S = 180, 20
USERS, QUICK_USERS = 32, 16
SERVER_WORKERS = 2
REQUEST_TIMEOUT_S = 30.0
SEED = 20_261_125
PERCENTILES = (50, 95, 99)
MAX_ERROR_RATE = 0.01  # above this the bench fails, as it does on any exactly-once problem

# (operation, weight)
OPERATIONS: tuple[tuple[str, float], ...] = (
    ("submit", 30),
    ("submit_retry", 5),
    ("read", 15),
    ("timeline", 8),
    ("list", 10),
    ("conversions", 14),
    ("conversions_retry", 3),
    ("report", 15),
)


@dataclass(frozen=True)
class Desk:
    """A demo partner's integration: its client, the program it submits to, and what it refers there."""

    partner_id: str
    client_id: str
    program_id: str
    kinds: tuple[tuple[str, float], ...]
    product_code: str


DESKS = (
    Desk("ptn_demo_bank", "cli_demo_bank", "prg_demo_bank_vip", (("vip", 1),), "BANK_WM_PLUS_EQUITY"),
    Desk("ptn_demo_insurer", "cli_demo_insurer", "prg_demo_insurer_bundle", (("vip", 1),), "LIFE_PLUS_FUND_SIP"),
    Desk(
        "ptn_demo_corporate",
        "cli_demo_corporate",
        "prg_demo_corporate_employees",
        (("employee", 0.8), ("enterprise", 0.2)),
        "EMPLOYEE_WEALTH_PLAN",
    ),
)
BACK_OFFICE, MANAGER = "cli_demo_back_office", "cli_demo_alliance_manager"
SUBSCRIBED = "ptn_demo_bank"  # subscribes to referral.status_changed before the load
REPORTS = (
    "/v1/reports/funnel",
    "/v1/reports/time-to-convert",
    "/v1/reports/client-structure",
    "/v1/reports/fees",
    "/v1/reports/partners/ptn_demo_bank/scorecard",
)


# --- What the load did --------------------------------------------------------------------------------------------


@dataclass
class Submission:
    key: str
    desk: Desk
    body: dict[str, Any]
    referral_id: str | None = None  # from the first 201/200 answer
    answers: list[int] = field(default_factory=list)


@dataclass
class Call:
    """One conversion call: its body, and the per-event results of its answers."""

    key: str
    events: list[dict[str, Any]]
    results: dict[str, str] = field(default_factory=dict)  # source_event_id -> applied|deferred|duplicate|rejected
    answered: bool = False


@dataclass
class Load:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # op -> ms
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # op -> status
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    submissions: dict[str, Submission] = field(default_factory=dict)
    answered: list[Submission] = field(default_factory=list)  # accepted, for reads and retries
    replay_mismatches: int = 0
    replays: int = 0
    to_open: list[tuple[Submission, str, str]] = field(default_factory=list)  # (submission, identity field, value)
    funded: list[tuple[str, str]] = field(default_factory=list)  # (client_ref, product_code)
    calls: list[Call] = field(default_factory=list)
    retry_duplicates_expected: int = 0
    retry_duplicates_seen: int = 0
    started: float = 0.0
    finished: float = 0.0
    load_average: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before and after

    def record(self, op: str, seconds: float, status: str, ok: bool) -> None:
        self.latencies[op].append(seconds * 1000)
        self.statuses[op][status] += 1
        if not ok:
            self.errors[op] += 1

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())


class Users:
    """The virtual users' shared world: tokens, the referral stream, and what was accepted so far."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str], load: Load) -> None:
        self.http = http
        self.tokens = tokens
        self.load = load
        self.rng = random.Random(SEED)
        self.generator = referral_gen.ReferralGenerator(seed=SEED, ref_prefix="MIX")
        self.operations = [name for name, _ in OPERATIONS]
        self.weights = [weight for _, weight in OPERATIONS]
        self.accounts = 0
        self.events = 0
        self.calls = 0

    def headers(self, client_id: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[client_id]}", **extra}

    async def send(
        self, op: str, method: str, url: str, expected: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response | None:
        """One request, timed and recorded; None on a timeout or a transport error."""
        started = time.perf_counter()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.load.record(op, time.perf_counter() - started, type(error).__name__, ok=False)
            return None
        self.load.record(op, time.perf_counter() - started, str(response.status_code), response.status_code in expected)
        return response

    async def run(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            op = self.rng.choices(self.operations, weights=self.weights)[0]
            await getattr(self, op)()

    # --- partners ---------------------------------------------------------------------------------------------

    async def submit(self) -> None:
        desk = self.rng.choice(DESKS)
        kind = self.rng.choices([k for k, _ in desk.kinds], weights=[w for _, w in desk.kinds])[0]
        self.generator.program_id = desk.program_id
        body = self.generator.next(kind)
        submission = Submission(f"mix-{body['external_ref']}", desk, body)
        self.load.submissions[submission.key] = submission
        await self._submit(submission, "submit")

    async def _submit(self, submission: Submission, op: str) -> httpx.Response | None:
        headers = self.headers(submission.desk.client_id, **{"Idempotency-Key": submission.key})
        response = await self.send(op, "POST", "/v1/referrals", (200, 201), json=submission.body, headers=headers)
        if response is None:
            submission.answers.append(0)
            return None
        submission.answers.append(response.status_code)
        if response.status_code in (200, 201):
            referral_id = str(response.json()["id"])
            if submission.referral_id is None:
                submission.referral_id = referral_id
                self.load.answered.append(submission)
                subject = submission.body["subject"]
                identity = ("credit_code", subject["credit_code"]) if "credit_code" in subject else None
                identity = identity or ("national_id", subject["national_id"])
                self.load.to_open.append((submission, *identity))
            elif referral_id != submission.referral_id:
                self.load.replay_mismatches += 1
        return response

    async def submit_retry(self) -> None:
        if not self.load.answered:
            return await self.submit()
        submission = self.rng.choice(self.load.answered)
        response = await self._submit(submission, "submit_retry")
        if response is not None and response.headers.get("Idempotent-Replayed", "").lower() == "true":
            self.load.replays += 1

    def _owned(self) -> Submission | None:
        return self.rng.choice(self.load.answered) if self.load.answered else None

    async def read(self) -> None:
        if (submission := self._owned()) is None:
            return await self.list()
        headers = self.headers(submission.desk.client_id)
        await self.send("read", "GET", f"/v1/referrals/{submission.referral_id}", (200,), headers=headers)

    async def timeline(self) -> None:
        if (submission := self._owned()) is None:
            return await self.list()
        headers = self.headers(submission.desk.client_id)
        await self.send("timeline", "GET", f"/v1/referrals/{submission.referral_id}/events", (200,), headers=headers)

    async def list(self) -> None:
        desk = self.rng.choice(DESKS)
        await self.send("list", "GET", "/v1/referrals?limit=20", (200,), headers=self.headers(desk.client_id))

    # --- the back office ----------------------------------------------------------------------------------------

    async def conversions(self) -> None:
        now = datetime.now(UTC)
        events: list[dict[str, Any]] = []
        for _ in range(min(len(self.load.to_open), self.rng.randint(1, 3))):
            submission, field_name, identity = self.load.to_open.pop(self.rng.randrange(len(self.load.to_open)))
            self.accounts += 1
            client_ref = f"MIXACC-{self.accounts:07d}"
            amount = self.rng.choice((50_000, 200_000, 2_000_000, 8_000_000)) * 100
            events.append(self._event("account_opened", now, client_ref, **{field_name: identity}))
            events.append(self._event("account_funded", now, client_ref, amount=amount, currency="CNY"))
            self.load.funded.append((client_ref, submission.desk.product_code))
        while self.load.funded and self.rng.random() < 0.5:
            client_ref, product = self.load.funded.pop(0)
            events.append(
                self._event(
                    "bundle_purchased", now, client_ref, amount=10_000_000, currency="CNY", product_code=product
                )
            )
        if not events:
            return await self.report()
        self.calls += 1
        call = Call(f"call-{self.calls:07d}", events)
        self.load.calls.append(call)
        await self._report_events(call, "conversions")

    def _event(self, kind: str, at: datetime, client_ref: str, **fields: Any) -> dict[str, Any]:
        self.events += 1
        return {
            "source_event_id": f"mix-{self.events:08d}",
            "type": kind,
            "occurred_at": at.isoformat(),
            "client_ref": client_ref,
            **fields,
        }

    async def _report_events(self, call: Call, op: str) -> dict[str, str] | None:
        body = {"events": call.events}
        headers = self.headers(BACK_OFFICE)
        response = await self.send(op, "POST", "/v1/conversion-events", (200,), json=body, headers=headers)
        if response is None or response.status_code != 200:
            return None
        results = {item["source_event_id"]: item["result"] for item in response.json()["results"]}
        if not call.answered:
            call.results, call.answered = results, True
        return results

    async def conversions_retry(self) -> None:
        answered = [call for call in self.load.calls if call.answered]
        if not answered:
            return await self.conversions()
        call = self.rng.choice(answered)
        results = await self._report_events(call, "conversions_retry")
        if results is not None:
            self.load.retry_duplicates_expected += len(call.events)
            self.load.retry_duplicates_seen += sum(result == "duplicate" for result in results.values())

    # --- alliance managers ------------------------------------------------------------------------------------

    async def report(self) -> None:
        if self.rng.random() < 0.2:
            desk = self.rng.choice(DESKS)
            await self.send("report", "GET", "/v1/reports/funnel", (200,), headers=self.headers(desk.client_id))
            return
        path = self.rng.choice(REPORTS)
        await self.send("report", "GET", path, (200,), headers=self.headers(MANAGER))


# --- The bench ----------------------------------------------------------------------------------------------------


async def run(ctx: BenchContext) -> BenchResult:
    duration = QUICK_DURATION_S if ctx.quick else DURATION_S
    users = QUICK_USERS if ctx.quick else USERS
    async with scratch_database(ctx.server, "bench_mixed") as database:
        env = _service_env(database)
        env["ALLIANCE_ACCESS_TOKEN_TTL_S"] = "3600"  # one token per client for the whole run
        with stage("loading the demo alliance (alliance demo --json)"):
            credentials = await _demo_credentials(env)
            for client_id in credentials:
                await _lift_client_rate(database, client_id)
        async with _serve(env, SERVER_WORKERS) as (base_url, server_log):
            tokens = {
                client_id: await _access_token(base_url, credentials[client_id])
                for client_id in [desk.client_id for desk in DESKS] + [BACK_OFFICE, MANAGER]
            }
            limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
            async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
                await _subscribe(http, tokens["cli_demo_bank"])
                # The demo alliance holds a year of history: the check counts only what the load added.
                baseline = await _baseline(database)
                load = Load()
                world = Users(http, tokens, load)
                with stage(f"{users} users, mixed operations, for {duration}s, {SERVER_WORKERS} server workers"):
                    before = os.getloadavg()[0]
                    load.started = time.perf_counter()
                    deadline = load.started + duration
                    await asyncio.gather(*(world.run(deadline) for _ in range(users)))
                    load.finished = time.perf_counter()
                    load.load_average = (before, os.getloadavg()[0])
                with stage("retrying the requests that ended in an error"):
                    retried = await _retry_failures(world)
            log_tail = _tail(server_log) if sum(load.errors.values()) else ""
        with stage("checking that every accepted request left exactly one effect (SQL)"):
            check = await _check(database, load, baseline)
    return _result(load, check, retried, duration, users, log_tail)


async def _demo_credentials(env: dict[str, str]) -> dict[str, Credentials]:
    wanted = {desk.client_id for desk in DESKS} | {BACK_OFFICE, MANAGER}
    clients = await _demo(env)
    if any(not clients.get(client_id, Credentials(client_id, "")).client_secret for client_id in wanted):
        clients = await _demo(env, "--reset-secrets")  # only the run that creates a client shows its secret
    missing = sorted(client_id for client_id in wanted if not clients.get(client_id, Credentials("", "")).client_secret)
    if missing:
        raise RuntimeError(f"`alliance demo` gave no secret for {', '.join(missing)}")
    return {client_id: clients[client_id] for client_id in wanted}


@asynccontextmanager
async def _serve(env: dict[str, str], workers: int) -> AsyncIterator[tuple[str, IO[bytes]]]:
    """``alliance serve --workers N`` on a free port, until it answers ``/readyz``; yields its URL and its log."""
    port = free_port()
    host = ["--host", "127.0.0.1", "--port", str(port)]
    command = [_alliance(), "serve", *host, "--workers", str(workers), "--no-worker"]
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            with stage(f"starting `alliance serve --workers {workers}` on 127.0.0.1:{port}"):
                await _wait_until_ready(process, base_url, log)
            yield base_url, log
        finally:
            await _stop(process)


async def _subscribe(http: httpx.AsyncClient, token: str) -> None:
    """The demo bank's webhook endpoint for status changes (never called: no worker runs during the bench)."""
    response = await http.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/alliance-hooks", "event_types": ["referral.status_changed"]},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "mix-webhook-endpoint"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/webhook-endpoints answered {response.status_code}: {response.text[:500]}")


async def _retry_failures(world: Users) -> dict[str, Counter[str]]:
    """A client's retry of each request that ended in an error: the same key and body. Not timed."""
    retried: dict[str, Counter[str]] = {"submissions": Counter(), "conversions": Counter()}
    load = world.load
    for submission in load.submissions.values():
        if submission.referral_id is None:
            response = await world._submit(submission, "after_load_retry")
            retried["submissions"][str(response.status_code) if response is not None else "no answer"] += 1
    for call in load.calls:
        if not call.answered:
            results = await world._report_events(call, "after_load_retry")
            retried["conversions"]["200" if results is not None else "error"] += 1
    # The retries are not part of the load's figures.
    load.latencies.pop("after_load_retry", None)
    load.statuses.pop("after_load_retry", None)
    load.errors.pop("after_load_retry", None)
    return {name: counter for name, counter in retried.items() if counter}


# --- The check ----------------------------------------------------------------------------------------------------


@dataclass
class Check:
    referrals: int = 0
    accepted: int = 0
    accepted_without_referral: int = 0  # accepted, and no referral with that reference and id: must be 0
    never_accepted: int = 0  # submissions that never got a 201/200, even retried: must be 0
    foreign: int = 0  # referrals no submission asked for: must be 0
    duplicate_references: int = 0
    replay_mismatches: int = 0
    events_accepted: int = 0
    events_stored: int = 0
    events_missing: int = 0  # accepted (applied, deferred, duplicate) and not stored: must be 0
    events_unexpected: int = 0  # stored and not accepted (rejected or never sent): must be 0
    events_rejected: int = 0
    retry_duplicates_expected: int = 0
    retry_duplicates_seen: int = 0
    timeline_anomalies: int = 0  # referrals without exactly one initial timeline entry: must be 0
    transitions: int = 0  # status changes of the subscribed partner's referrals
    deliveries: int = 0  # queued webhook deliveries for them: must equal transitions
    duplicate_ledger_sources: int = 0
    ledger_lines: int = 0
    referral_statuses: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        problems = []
        if self.accepted_without_referral:
            problems.append(f"{self.accepted_without_referral} accepted submissions have no matching referral")
        if self.never_accepted:
            problems.append(f"{self.never_accepted} submissions were never accepted, even when retried")
        if self.foreign:
            problems.append(f"{self.foreign} referrals no submission asked for")
        if self.duplicate_references:
            problems.append(f"{self.duplicate_references} references with more than one referral")
        if self.replay_mismatches:
            problems.append(f"{self.replay_mismatches} retried submissions answered another referral")
        if self.referrals != self.accepted:
            problems.append(f"{self.referrals} referrals for {self.accepted} accepted submissions")
        if self.events_missing or self.events_unexpected:
            problems.append(f"events: {self.events_missing} accepted not stored, {self.events_unexpected} unexpected")
        if self.retry_duplicates_seen != self.retry_duplicates_expected:
            problems.append(
                f"retried conversion calls: {self.retry_duplicates_seen} of {self.retry_duplicates_expected} events "
                "answered duplicate"
            )
        if self.timeline_anomalies:
            problems.append(f"{self.timeline_anomalies} referrals without exactly one initial timeline entry")
        if self.deliveries != self.transitions:
            problems.append(f"{self.deliveries} webhook deliveries queued for {self.transitions} status changes")
        if self.duplicate_ledger_sources:
            problems.append(f"{self.duplicate_ledger_sources} ledger sources with more than one line")
        return problems


@dataclass(frozen=True)
class Baseline:
    """What the database held before the load (the demo alliance's history)."""

    referral_ids: frozenset[str]
    transitions: int
    deliveries: int


_TRANSITIONS = (
    "SELECT count(*) FROM referral_events WHERE partner_id = $1 AND from_status IS NOT NULL "
    "AND from_status::text <> to_status::text"
)
_DELIVERIES = "SELECT count(*) FROM webhook_deliveries WHERE partner_id = $1 AND event_type = 'referral.status_changed'"


async def _baseline(database: PgTarget) -> Baseline:
    connection = await connect(database)
    try:
        ids = frozenset(row["id"] for row in await connection.fetch("SELECT id FROM referrals"))
        transitions = int(await connection.fetchval(_TRANSITIONS, SUBSCRIBED))
        deliveries = int(await connection.fetchval(_DELIVERIES, SUBSCRIBED))
    finally:
        await connection.close()
    return Baseline(ids, transitions, deliveries)


async def _check(database: PgTarget, load: Load, baseline: Baseline) -> Check:
    check = Check(replay_mismatches=load.replay_mismatches)
    check.retry_duplicates_expected = load.retry_duplicates_expected
    check.retry_duplicates_seen = load.retry_duplicates_seen
    connection = await connect(database)
    try:
        every = await connection.fetch("SELECT id, partner_id, external_ref, status::text AS status FROM referrals")
        rows = [row for row in every if row["id"] not in baseline.referral_ids]
        stored = {(row["partner_id"], row["external_ref"]): row["id"] for row in rows}
        check.referrals = len(rows)
        check.referral_statuses = dict(sorted(Counter(row["status"] for row in rows).items()))
        check.duplicate_references = len(rows) - len(stored)
        asked = set()
        for submission in load.submissions.values():
            reference = (submission.desk.partner_id, submission.body["external_ref"])
            asked.add(reference)
            if submission.referral_id is None:
                check.never_accepted += 1
                continue
            check.accepted += 1
            if stored.get(reference) != submission.referral_id:
                check.accepted_without_referral += 1
        check.foreign = len(set(stored) - asked)

        accepted_events = {
            source: result
            for call in load.calls
            for source, result in call.results.items()
            if result in ("applied", "deferred", "duplicate")
        }
        check.events_rejected = sum(result == "rejected" for call in load.calls for result in call.results.values())
        sources = await connection.fetch(
            "SELECT source_event_id, count(*) AS n FROM conversion_events WHERE source_event_id LIKE 'mix-%' GROUP BY 1"
        )
        stored_events = {row["source_event_id"]: row["n"] for row in sources}
        check.events_accepted = len(accepted_events)
        check.events_stored = sum(stored_events.values())
        check.events_missing = sum(1 for source in accepted_events if stored_events.get(source) != 1)
        check.events_unexpected = len(set(stored_events) - set(accepted_events))

        check.timeline_anomalies = int(
            await connection.fetchval(
                "SELECT count(*) FROM referrals r WHERE (SELECT count(*) FROM referral_events e "
                "WHERE e.referral_id = r.id AND e.from_status IS NULL) <> 1"
            )
        )
        check.transitions = int(await connection.fetchval(_TRANSITIONS, SUBSCRIBED)) - baseline.transitions
        check.deliveries = int(await connection.fetchval(_DELIVERIES, SUBSCRIBED)) - baseline.deliveries
        check.ledger_lines = int(await connection.fetchval("SELECT count(*) FROM fee_accruals"))
        check.duplicate_ledger_sources = check.ledger_lines - int(
            await connection.fetchval("SELECT count(DISTINCT source_key) FROM fee_accruals")
        )
    finally:
        await connection.close()
    return check


# --- The result ---------------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile of ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _result(
    load: Load, check: Check, retried: dict[str, Counter[str]], duration: int, users: int, log_tail: str
) -> BenchResult:
    elapsed = load.finished - load.started
    requests = load.requests
    errors = sum(load.errors.values())
    everything = [value for values in load.latencies.values() for value in values]
    metrics: dict[str, float] = {
        "requests_per_s": requests / elapsed if elapsed else 0.0,
        **{f"latency_p{p}_ms": percentile(everything, p) for p in PERCENTILES},
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
    }
    for op, _ in OPERATIONS:
        values = load.latencies.get(op, [])
        if not values:
            continue
        metrics[f"{op}_per_s"] = len(values) / elapsed
        for p in PERCENTILES:
            metrics[f"{op}_p{p}_ms"] = percentile(values, p)
        metrics[f"{op}_errors"] = load.errors.get(op, 0)
    metrics |= {
        "referrals": check.referrals,
        "accepted_submissions": check.accepted,
        "replayed_submissions": load.replays,
        "conversion_events_accepted": check.events_accepted,
        "ledger_lines": check.ledger_lines,
        "webhook_deliveries_queued": check.deliveries,
    }
    problems = check.problems
    error_rate = metrics["error_rate"]
    failures = list(problems)
    if error_rate > MAX_ERROR_RATE:
        failures.append(f"error rate {error_rate:.2%} above {MAX_ERROR_RATE:.0%}")
    notes = [
        "exactly-once check: " + ("passed" if not problems else "FAILED: " + "; ".join(problems)),
        f"{check.accepted} submissions accepted, {check.referrals} referrals; {load.replays} retries replayed the "
        f"first answer; {check.events_accepted} conversion events accepted, {check.events_stored} stored; "
        f"{check.retry_duplicates_seen}/{check.retry_duplicates_expected} re-sent events answered duplicate; "
        f"{check.deliveries} webhook deliveries queued for {check.transitions} status changes",
        f"the server ran with ALLIANCE_RATE_LIMIT_PER_SECOND={RATE_LIMIT_PER_SECOND} and the demo clients' own "
        "limits lifted, so the figures measure the service, not the rate limiter",
    ]
    if retried:
        notes.append(f"retried after the load: {json.dumps({k: dict(v) for k, v in retried.items()})}")
    if log_tail:
        notes.append(f"the server's log ends with: {log_tail[-1000:]}")
    p50, p95, p99 = (metrics[f"latency_p{p}_ms"] for p in PERCENTILES)
    return BenchResult(
        name=NAME,
        status="failed" if failures else "ok",
        headline=(
            f"{metrics['requests_per_s']:,.0f} req/s mixed, p50/p95/p99 {p50:.0f}/{p95:.0f}/{p99:.0f} ms, "
            f"errors {error_rate:.2%}, exactly-once {'ok' if not problems else 'FAILED'}"
        ),
        metrics=metrics,
        params={
            "duration_s": duration,
            "users": users,
            "server": f"alliance serve --workers {SERVER_WORKERS}",
            "operations": dict(OPERATIONS),
            "statuses": {op: dict(sorted(counts.items())) for op, counts in sorted(load.statuses.items())},
            "referral_statuses": check.referral_statuses,
            "cpu_count": os.cpu_count(),
            "load_average_1m_before_after": load.load_average,
            "failures": failures,
        },
        note="; ".join(notes),
    )
