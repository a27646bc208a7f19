"""Batch intake end to end: 100,000 referrals as one CSV upload, from the POST to the batch's last result.

The real service on a scratch database of its own: the demo alliance is loaded (``alliance demo --json``), then
``alliance serve`` (one worker process) and ``WORKERS`` processes of ``alliance worker`` (two: one per core; they
share the batch chunk by chunk) start. The demo bank's integration streams the CSV (``bench/referral_gen.py``:
valid ID numbers with real birth dates and check characters, mainland mobiles, consent evidence; 80% VIP, 15%
employees, 5% enterprises, each a different person) to ``POST /v1/referral-batches``; the clock runs from the first
byte sent until ``GET /v1/referral-batches/{id}`` reports the batch completed. The upload (staging) and the
processing are also timed apart.

The ceiling, measured in the same run on the same server: a bare binary ``COPY`` of the same rows (the CSV's 20
columns as text) into a plain table. The bench then checks in SQL that every line has one result and one referral,
and measures the floors: the batch's finished referral rows COPYed into a table that carries what ``referrals``
carries (indexes, foreign keys, the report queue's triggers), and into one with its indexes only. CPU seconds per
1,000 rows of the workers, the server and the database server are measured over the upload and processing.

What bounds the figure (2 cores, shared by PostgreSQL and Python, both busy). Per referral, about 65 us of Python
(validation about 13, encryption and blind indexes about 6, CSV parsing, the rows, the results) and about 60 us of
PostgreSQL (the referral with 8 indexes, 2 foreign keys and the report queue's trigger; two timeline rows and the
webhook notices; the line's result), measured with one worker; with two, contending, about 75 and 95. Each worker
runs ``LANES`` chunks side by side, so that one validates and encrypts while another waits for the database. The
floor shows why 25% of the bare COPY is out of reach for any design that keeps the referrals' indexes: writing the
finished rows alone, with no validation, encryption, attribution, timeline or result, runs at about a tenth of the
bare COPY.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from bench import referral_gen
from bench.auth_throughput import Credentials, _access_token, _alliance, _serve, _service_env, _stop, _tail
from bench.common import ROOT, BenchContext, BenchResult, PgTarget, Stopwatch, connect, scratch_database, stage
from bench.cpu import child_pids, postmaster_pid, tree_cpu_s

NAME = "referral_batch"
ROWS, QUICK_ROWS = 100_000, 10_000
COPY_REPEATS = 3
MIX = {"vip": 0.80, "employee": 0.15, "enterprise": 0.05}
PARTNER_CLIENT_ID = "cli_demo_bank"
PROGRAM_ID = "prg_demo_bank_vip"
PATH = "/v1/referral-batches"
UPLOAD_PIECE = 1024 * 1024  # bytes per piece of the streamed upload
POLL_S = 0.2
TIMEOUT_S = 1800.0
CLI_TIMEOUT_S = 180.0
COPY_TABLE = "referral_batch_copy"
FLOOR_TABLE = "referral_batch_floor"
INDEX_FLOOR_TABLE = "referral_batch_index_floor"
CPU_SIDES = ("workers", "server", "database")
WORKERS = int(os.environ.get("BENCH_BATCH_WORKERS", "2"))  # one per core: workers share a batch chunk by chunk
# Targets of the issue: end to end at least this many rows/s, and this share of the bare COPY.
TARGET_ROWS_PER_S, TARGET_COPY_RATIO = 10_000, 0.25
TARGET_FLOOR_RATIO = 0.60  # issue #19: end to end at least this share of the floor (the finished rows COPYed alone)


async def run(ctx: BenchContext) -> BenchResult:
    count = QUICK_ROWS if ctx.quick else ROWS
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as directory:
        path = Path(directory) / "referrals.csv"
        with stage(f"generating {count:,} referrals as CSV"):
            bodies = referral_gen.iter_referrals(count, program_id=PROGRAM_ID, kind=MIX, ref_prefix="BENCH-BATCH")
            referral_gen.write_csv(bodies, path)
        csv_bytes = path.stat().st_size
        async with scratch_database(ctx.server) as database:
            env = _service_env(database)
            with stage("loading the demo alliance (alliance demo --json)"):
                bank = await _demo_bank(env)
            copy_s = await _time_copies(database, path)
            postmaster = await _postmaster(database)
            async with _serve(env) as (base_url, server_log), _workers(env, WORKERS) as worker_log:
                token = await _access_token(base_url, bank)
                cpu_before = _cpu_s(postmaster)
                timings, batch = await _submit_and_wait(base_url, token, path, csv_bytes)
                cpu_after = _cpu_s(postmaster)
                log_tail = _tail(server_log) + "\n" + _tail(worker_log)
            with stage("checking every line's result and referral (SQL)"):
                checked = await _check(database, batch["id"])
            floors = await _time_floors(database, batch["id"])
    problems = _problems(batch, checked, count)
    if problems:
        print(f"  the logs end with:\n{log_tail}", flush=True)
    cpu = {side: _spent(cpu_before[side], cpu_after[side]) for side in CPU_SIDES}
    return _result(ctx, count, timings, copy_s, floors, cpu, batch, checked, csv_bytes, problems)


async def _postmaster(database: PgTarget) -> int | None:
    connection = await connect(database)
    try:
        return await postmaster_pid(connection)
    finally:
        await connection.close()


def _cpu_s(postmaster: int | None) -> dict[str, float | None]:
    """CPU seconds so far of the bench's worker processes, of its server, and of the database server (all its
    processes: when it is not on this machine, None)."""
    me = os.getpid()
    return {
        "workers": tree_cpu_s(child_pids(me, "worker")),
        "server": tree_cpu_s(child_pids(me, "serve")),
        "database": tree_cpu_s([postmaster]) if postmaster is not None else None,
    }


def _spent(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


async def _demo_bank(env: dict[str, str]) -> Credentials:
    """The demo bank's credentials, from ``alliance demo --json`` (a new database: the secrets are shown)."""
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
    start = re.search(r"^\{$", text, re.MULTILINE)  # the indented JSON object starts on a line of its own
    listed = json.loads(text[start.start() :])["clients"] if start else []
    for item in listed:
        if item["client_id"] == PARTNER_CLIENT_ID and item["client_secret"]:
            return Credentials(item["client_id"], item["client_secret"])
    raise RuntimeError(f"`alliance demo` gave no secret for {PARTNER_CLIENT_ID}")


async def _time_copies(database: PgTarget, path: Path) -> list[float]:
    """The ceiling: the same rows, a bare binary COPY into a plain table (not timed: reading the CSV)."""
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        columns = next(reader)
        rows = [tuple(row) for row in reader]
    connection = await connect(database)
    try:
        await connection.execute(f"CREATE TABLE {COPY_TABLE} ({', '.join(f'{name} text' for name in columns)})")
        return await _timed_copies(connection, COPY_TABLE, rows, columns, f"bare COPY of the same {len(rows):,} rows")
    finally:
        await connection.close()


async def _timed_copies(
    connection: asyncpg.Connection, table: str, records: list[tuple[Any, ...]], columns: list[str], label: str
) -> list[float]:
    """``COPY_REPEATS`` timed binary COPYs of ``records`` into ``table`` (emptied before each); then drops it."""
    durations = []
    for attempt in range(1, COPY_REPEATS + 1):
        await connection.execute(f"TRUNCATE {table}")
        with stage(f"{label} ({attempt}/{COPY_REPEATS})"), Stopwatch() as watch:
            await connection.copy_records_to_table(table, records=records, columns=columns)
        durations.append(watch.seconds)
    await connection.execute(f"DROP TABLE {table}")
    return durations


async def _time_floors(database: PgTarget, batch_id: str) -> dict[str, list[float]]:
    """The floors under any design of intake: the batch's finished referral rows (encrypted, masked) COPYed, none
    of the work that made them being done, into a table that carries what ``referrals`` carries: its indexes, its
    foreign keys and its triggers (the report queue's), read from the catalog (``floor``); and into one with its
    indexes only (``index_floor``, the floor reported until 2026-12-07). Their ratio to the bare COPY bounds what the
    end-to-end figure can reach."""
    connection = await connect(database)
    try:
        rows = await connection.fetch("SELECT * FROM referrals WHERE batch_id = $1", batch_id)
        records, columns = [tuple(row) for row in rows], list(rows[0].keys())
        await connection.execute(f"CREATE TABLE {INDEX_FLOOR_TABLE} (LIKE referrals INCLUDING ALL)")
        label = "COPY of the finished referral rows into a table with the indexes of referrals"
        index_floor = await _timed_copies(connection, INDEX_FLOOR_TABLE, records, columns, label)
        await connection.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE referrals INCLUDING ALL)")
        for statement in await _carried_by_referrals(connection, FLOOR_TABLE):
            await connection.execute(statement)
        label = "COPY of the finished referral rows into a table with the indexes, foreign keys, triggers of referrals"
        floor = await _timed_copies(connection, FLOOR_TABLE, records, columns, label)
        return {"floor": floor, "index_floor": index_floor}
    finally:
        await connection.close()


async def _carried_by_referrals(connection: asyncpg.Connection, table: str) -> list[str]:
    """The statements that give ``table`` the foreign keys and the (non-internal) triggers of ``referrals``."""
    keys = await connection.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
        " WHERE conrelid = 'referrals'::regclass AND contype = 'f' ORDER BY conname"
    )
    triggers = await connection.fetch(
        "SELECT pg_get_triggerdef(oid) AS definition FROM pg_trigger"
        " WHERE tgrelid = 'referrals'::regclass AND NOT tgisinternal ORDER BY tgname"
    )
    if not keys or not triggers:
        raise RuntimeError("referrals has no foreign keys or no triggers: the floor would not carry what it carries")
    statements = [f"ALTER TABLE {table} ADD CONSTRAINT {table}_{key['conname']} {key['definition']}" for key in keys]
    for trigger in triggers:
        definition, on = trigger["definition"], re.compile(r" ON (public\.)?referrals ")
        if not on.search(definition):
            raise RuntimeError(f"unexpected trigger definition: {definition}")
        statements.append(on.sub(f" ON {table} ", definition, count=1))
    return statements


@asynccontextmanager
async def _workers(env: dict[str, str], count: int) -> AsyncIterator[IO[bytes]]:
    """``count`` processes of ``alliance worker``, polling every ``POLL_S``; stopped with SIGTERM (gracefully) at
    the end. They share one log."""
    command = [_alliance(), "worker", "--poll-interval", str(POLL_S)]
    with tempfile.TemporaryFile() as log:
        processes = []
        try:
            for _ in range(count):
                processes.append(
                    await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=log, stderr=log)
                )
            for process in processes:
                await _started(process, log, count)
            yield log
        finally:
            for process in processes:
                await _stop(process)
                if process.returncode not in (0, None):
                    print(f"  `alliance worker` exited with {process.returncode}", flush=True)


async def _started(process: asyncio.subprocess.Process, log: IO[bytes], count: int) -> None:
    """Until the workers have started (their imports take seconds on a busy machine): deployed workers are running."""
    with stage("starting `alliance worker`"):
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while os.pread(log.fileno(), 1 << 16, 0).count(b"worker on database") < count:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`alliance worker` did not start:\n{_tail(log)}")
            await asyncio.sleep(0.05)


async def _file_pieces(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while piece := file.read(UPLOAD_PIECE):
            yield piece


async def _submit_and_wait(base_url: str, token: str, path: Path, size: int) -> tuple[dict[str, float], dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv", "Idempotency-Key": os.urandom(8).hex()}
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as http:
        started = time.perf_counter()
        with stage(f"POST {PATH} (streamed, {size / 1e6:.1f} MB)"):
            response = await http.post(PATH, content=_file_pieces(path), headers=headers)
        uploaded = time.perf_counter()
        if response.status_code != 202:
            raise RuntimeError(f"POST {PATH} answered {response.status_code}: {response.text[:1000]}")
        batch = response.json()
        with stage("waiting for the worker to complete the batch"):
            while batch["status"] not in ("completed", "failed"):
                if time.perf_counter() - started > TIMEOUT_S:
                    raise RuntimeError(f"the batch was not completed within {TIMEOUT_S:.0f}s: {batch}")
                await asyncio.sleep(POLL_S)
                progress = await http.get(f"{PATH}/{batch['id']}", headers={"Authorization": headers["Authorization"]})
                batch = progress.json()
        finished = time.perf_counter()
    return {"total_s": finished - started, "upload_s": uploaded - started, "processing_s": finished - uploaded}, batch


async def _check(database: PgTarget, batch_id: str) -> dict[str, int]:
    connection = await connect(database)
    try:
        row = await connection.fetchrow(
            """
            SELECT (SELECT count(*) FROM referral_batch_results WHERE batch_id = $1) AS results,
                   (SELECT count(DISTINCT line) FROM referral_batch_results WHERE batch_id = $1) AS lines,
                   (SELECT count(*) FROM referrals WHERE batch_id = $1) AS referrals,
                   (SELECT count(*) FROM referral_batch_results r JOIN referrals f ON f.id = r.referral_id
                     WHERE r.batch_id = $1 AND f.batch_id = $1) AS linked,
                   (SELECT count(*) FROM referral_batch_chunks WHERE batch_id = $1) AS staged
            """,
            batch_id,
        )
    finally:
        await connection.close()
    return dict(row)


def _problems(batch: dict[str, Any], checked: dict[str, int], count: int) -> list[str]:
    counts = batch["counts"]
    problems = []
    if batch["status"] != "completed":
        problems.append(f"the batch is {batch['status']}")
    if counts["total"] != count or counts["processed"] != count:
        problems.append(f"{counts['processed']} of {counts['total']} lines processed, for {count} sent")
    if counts["eligible"] != count:
        problems.append(f"{count - counts['eligible']} lines not eligible (each is a new person): {counts}")
    if not checked["results"] == checked["lines"] == checked["referrals"] == checked["linked"] == count:
        problems.append(f"results and referrals do not match the lines one to one: {checked}")
    if checked["staged"]:
        problems.append(f"{checked['staged']} lines are still staged")
    return problems


def _result(
    ctx: BenchContext,
    count: int,
    timings: dict[str, float],
    copy_s: list[float],
    floors: dict[str, list[float]],
    cpu: dict[str, float | None],
    batch: dict[str, Any],
    checked: dict[str, int],
    csv_bytes: int,
    problems: list[str],
) -> BenchResult:
    rate = count / timings["total_s"]
    copy_rate = count / statistics.median(copy_s)
    metrics: dict[str, float] = {
        "rows_per_s": rate,
        "copy_rows_per_s": copy_rate,
        "ratio_to_copy": rate / copy_rate,
        "upload_rows_per_s": count / timings["upload_s"],
        "processing_rows_per_s": count / timings["processing_s"],
        **timings,
        "copy_median_s": statistics.median(copy_s),
    }
    ceiling = ctx.ratio_to("ceiling_copy", "rows_per_s", rate)
    if ceiling is not None:
        metrics["ratio_to_ceiling_copy"] = ceiling
    for name, durations in floors.items():  # floor_*, index_floor_*
        floor_rate = count / statistics.median(durations)
        metrics[f"{name}_rows_per_s"] = floor_rate
        metrics[f"{name}_ratio_to_copy"] = floor_rate / copy_rate
        to_ceiling = ctx.ratio_to("ceiling_copy", "rows_per_s", floor_rate)
        if to_ceiling is not None:
            metrics[f"{name}_ratio_to_ceiling_copy"] = to_ceiling
        metrics[f"ratio_to_{name}"] = rate / floor_rate
    for side, seconds in cpu.items():
        if seconds is not None:
            metrics[f"{side}_cpu_s_per_1k_rows"] = seconds * 1000 / count
    if all(seconds is not None for seconds in cpu.values()):
        metrics["cpu_s_per_1k_rows"] = sum(seconds or 0.0 for seconds in cpu.values()) * 1000 / count
    floor_rate = metrics["floor_rows_per_s"]
    notes = list(problems)
    if rate < TARGET_FLOOR_RATIO * floor_rate:
        notes.append(f"below {TARGET_FLOOR_RATIO:.0%} of the floor ({floor_rate:,.0f} rows/s)")
    if rate < TARGET_ROWS_PER_S or rate / copy_rate < TARGET_COPY_RATIO:
        notes.append(
            f"below the targets ({TARGET_ROWS_PER_S:,} rows/s, {TARGET_COPY_RATIO:.0%} of COPY): "
            "see bench/referral_batch.py"
        )
    return BenchResult(
        name=NAME,
        status="failed" if problems else "ok",
        headline=f"{rate:,.0f} rows/s end to end ({rate / copy_rate:.1%} of COPY, {rate / floor_rate:.0%} of floor)",
        metrics=metrics,
        params={
            "rows": count,
            "csv_bytes": csv_bytes,
            "mix": MIX,
            "server": "alliance serve --workers 1",
            "worker": f"alliance worker ({WORKERS} process{'es' if WORKERS > 1 else ''}, poll {POLL_S}s)",
            "counts": batch["counts"],
            "checked": checked,
            "copy_table": "plain, logged, no index, the CSV's 20 columns as text",
            "floor_table": "LIKE referrals INCLUDING ALL, its foreign keys and triggers; the batch's finished rows",
            "index_floor_table": "LIKE referrals INCLUDING ALL (its indexes only), the batch's finished rows",
            "cpu": "from the upload's first byte to the batch completed: the workers, the server, every process of "
            "the database server (its own CPU only when it runs on this machine)",
            "seed": referral_gen.DEFAULT_SEED,
        },
        note="; ".join(notes),
    )
