"""Ceiling: the most write requests per second this machine serves, a bare FastAPI app doing one INSERT per POST.

The app (``bench/ceiling_http_app.py``) runs under uvicorn with one worker on 127.0.0.1, and ``wrk`` loads it with
a JSON POST. Any write endpoint of the service is measured against this figure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from bench import ceiling_http_app as bare
from bench.common import ROOT, BenchContext, BenchResult, PgTarget, connect, free_port, scratch_database, skipped, stage

NAME = "ceiling_http"
WRK_INSTALL_HINT = "install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)"
THREADS, CONNECTIONS = 2, 50
DURATION_S, QUICK_DURATION_S = 10, 3
WARMUP_S = 2
POOL_SIZE = 10
STARTUP_TIMEOUT_S = 20.0

BODY = {"partner_id": "partner-0001", "external_ref": "EXT-0001-000000001", "kind": "referral", "birth_year": 1984}


@dataclass
class WrkReport:
    requests: int
    duration_s: float
    requests_per_s: float
    latency_ms: dict[str, float]  # percentile ("50", "75", "90", "99") -> milliseconds
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)


async def run(ctx: BenchContext) -> BenchResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        message = f"wrk is not installed, so the HTTP ceiling cannot be measured: {WRK_INSTALL_HINT}"
        print(f"  {message}", flush=True)
        return skipped(NAME, message)
    duration = QUICK_DURATION_S if ctx.quick else DURATION_S
    async with scratch_database(ctx.server) as database:
        await _create_table(database)
        async with _serve(database) as url, _lua_script() as script:
            if not ctx.quick:
                with stage(f"warming up for {WARMUP_S}s"):
                    await _wrk(wrk, url, script, WARMUP_S)
            await _truncate(database)
            with stage(f"wrk -t{THREADS} -c{CONNECTIONS} -d{duration}s"):
                report = parse_wrk(await _wrk(wrk, url, script, duration))
        inserted = await _count(database)
    return _result(report, inserted, duration)


def _result(report: WrkReport, inserted: int, duration: int) -> BenchResult:
    errors = report.non_2xx + sum(report.socket_errors.values())
    return BenchResult(
        name=NAME,
        status="ok" if errors == 0 else "failed",
        headline=f"{report.requests_per_s:,.0f} req/s, p99 {report.latency_ms.get('99', float('nan')):.1f} ms",
        metrics={
            "requests_per_s": report.requests_per_s,
            **{f"latency_p{p}_ms": ms for p, ms in report.latency_ms.items()},
            "requests": report.requests,
            "rows_inserted": inserted,
            "errors": errors,
        },
        params={
            "duration_s": duration,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "uvicorn_workers": 1,
            "db_pool_size": POOL_SIZE,
            "event_loop": "uvloop" if _importable("uvloop") else "asyncio",
            "http_parser": "httptools" if _importable("httptools") else "h11",
        },
        note="" if errors == 0 else f"{report.non_2xx} non-2xx responses, socket errors {report.socket_errors}",
    )


# --- The database -------------------------------------------------------------------------------------------------


async def _create_table(database: PgTarget) -> None:
    connection = await connect(database)
    try:
        await connection.execute(bare.CREATE_TABLE)
    finally:
        await connection.close()


async def _truncate(database: PgTarget) -> None:
    connection = await connect(database)
    try:
        await connection.execute(f"TRUNCATE {bare.TABLE}")
    finally:
        await connection.close()


async def _count(database: PgTarget) -> int:
    connection = await connect(database)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {bare.TABLE}"))
    finally:
        await connection.close()


# --- The server ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _serve(database: PgTarget) -> AsyncIterator[str]:
    """Serve the bare app with uvicorn (one worker) on a free port; yields the endpoint's URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.ceiling_http_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, bare.DSN_ENV: database.dsn, bare.POOL_SIZE_ENV: str(POOL_SIZE)}
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}/referrals"
            with stage(f"starting uvicorn on 127.0.0.1:{port}"):
                await _wait_until_serving(process, url, log)
            yield url
        finally:
            await _stop(process)


async def _wait_until_serving(process: asyncio.subprocess.Process, url: str, log: IO[bytes]) -> None:
    """Until one POST succeeds: the server listens only once its lifespan (the pool) is up."""
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5.0) as client:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                break
            try:
                response = await client.post(url, json=BODY)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code != 201:
                raise RuntimeError(f"the bare app answered {response.status_code}: {response.text[:500]}")
            return
    log.seek(0)
    output = log.read().decode(errors="replace")[-2000:]
    if process.returncode is not None:
        raise RuntimeError(f"uvicorn exited with {process.returncode} before serving:\n{output}")
    raise RuntimeError(f"uvicorn did not start serving within {STARTUP_TIMEOUT_S:.0f}s:\n{output}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


# --- wrk ----------------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _lua_script() -> AsyncIterator[Path]:
    """A wrk script that makes every request a JSON POST of ``BODY``."""
    body = json.dumps(BODY).replace("\\", "\\\\").replace("'", "\\'")
    script = f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = '{body}'\n"
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        path = Path(directory) / "post.lua"
        path.write_text(script)
        yield path


async def _wrk(wrk: str, url: str, script: Path, duration_s: int) -> str:
    command = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text}")
    return text


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def parse_wrk(output: str) -> WrkReport:
    """Read the figures of ``wrk --latency`` from its text output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(rf"^\s+(\d+) requests in {_DURATION}", output, re.MULTILINE)
    if rate is None or total is None:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    latency = {
        percent: float(value) * _UNITS_MS[unit]
        for percent, value, unit in re.findall(rf"^\s+(\d+)%\s+{_DURATION}\s*$", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkReport(
        requests=int(total.group(1)),
        duration_s=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        requests_per_s=float(rate.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket
        else {},
    )


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
