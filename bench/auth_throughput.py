"""The service's OAuth figures: access tokens issued per second, and protected requests served per second.

Both are measured against the real service: ``alliance serve`` (one worker) on 127.0.0.1, on a scratch database of
its own. The clients are created with the CLI, as an operator would. ``wrk`` then loads

* ``POST /oauth/token`` (client credentials, ``client_secret_basic``) with a back-office client, and
* ``GET /v1/admin/audit-events?limit=1`` with one bearer token of a staff admin client, and
* ``GET /v1/programs`` (the demo bank's programs, their products and fees in force) with a partner's token: the
  call partners make most. The demo alliance is loaded for it (``alliance demo``), and the bank's own limit raised.

The per-client API rate limit (a token bucket, ``ALLIANCE_RATE_LIMIT_PER_SECOND``, 50/s by default) would cap the
second figure at the limiter's rate, so the server runs with it raised to ``RATE_LIMIT_PER_SECOND``: the figure is
the service's throughput, not the limiter's. Both figures are also given as a ratio to ``ceiling_http``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx

from bench.ceiling_http import WRK_INSTALL_HINT, WrkReport, parse_wrk
from bench.common import (
    ROOT,
    BenchContext,
    BenchResult,
    PgTarget,
    connect,
    free_port,
    scratch_database,
    skipped,
    stage,
)

NAME = "auth_throughput"
THREADS = 2
TOKEN_CONNECTIONS = 16  # token issuance is argon2-bound: a few connections saturate it
API_CONNECTIONS = 50  # as ceiling_http
DURATION_S, QUICK_DURATION_S = 10, 3
WARMUP_S = 1
# wrk's default (2 s) would count queued token requests as timeouts; a response slower than this is an error.
WRK_TIMEOUT_S = 10
RATE_LIMIT_PER_SECOND = 1_000_000
API_PATH = "/v1/admin/audit-events?limit=1"
PROGRAMS_PATH = "/v1/programs"
PARTNER_CLIENT_ID = "cli_demo_bank"
STARTUP_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 120.0
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        """``Authorization: Basic ...``; RFC 6749 section 2.3.1 form-encodes both parts first."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode()


@dataclass
class Load:
    """One wrk run and the HTTP statuses its responses carried (counted by the Lua script)."""

    report: WrkReport
    statuses: dict[str, int]

    @property
    def socket_errors(self) -> int:
        return sum(self.report.socket_errors.values())

    @property
    def errors(self) -> int:
        return self.report.non_2xx + self.socket_errors


async def run(ctx: BenchContext) -> BenchResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        message = f"wrk is not installed, so the service cannot be loaded: {WRK_INSTALL_HINT}"
        print(f"  {message}", flush=True)
        return skipped(NAME, message)
    duration = QUICK_DURATION_S if ctx.quick else DURATION_S
    async with scratch_database(ctx.server) as database:
        env = _service_env(database)
        with stage("creating a back-office and a staff admin client (CLI)"):
            # The first command migrates the empty database; the second then finds it at head.
            back_office = await _cli(env, "clients", "create", "--name", "bench", "--back-office", "--json")
            admin = await _cli(env, "staff", "create", "--role", "admin", "--json")
        with stage("loading the demo alliance (alliance demo --json)"):
            bank = await _demo_bank(env)
        await _lift_client_rate(database, bank.client_id)
        async with _serve(env) as (base_url, server_log):
            token = await _access_token(base_url, admin)
            partner_token = await _access_token(base_url, bank)
            async with _scripts(back_office, token, partner_token) as (token_script, api_script, programs_script):
                token_url, api_url = f"{base_url}/oauth/token", base_url + API_PATH
                programs_url = base_url + PROGRAMS_PATH
                if not ctx.quick:
                    with stage(f"warming up for {WARMUP_S}s + {WARMUP_S}s + {WARMUP_S}s"):
                        await _wrk(wrk, token_url, token_script, TOKEN_CONNECTIONS, WARMUP_S)
                        await _wrk(wrk, api_url, api_script, API_CONNECTIONS, WARMUP_S)
                        await _wrk(wrk, programs_url, programs_script, API_CONNECTIONS, WARMUP_S)
                with stage(f"POST /oauth/token: wrk -t{THREADS} -c{TOKEN_CONNECTIONS} -d{duration}s"):
                    tokens = await _wrk(wrk, token_url, token_script, TOKEN_CONNECTIONS, duration)
                with stage(f"GET {API_PATH}: wrk -t{THREADS} -c{API_CONNECTIONS} -d{duration}s"):
                    api = await _wrk(wrk, api_url, api_script, API_CONNECTIONS, duration)
                with stage(f"GET {PROGRAMS_PATH} (partner): wrk -t{THREADS} -c{API_CONNECTIONS} -d{duration}s"):
                    programs = await _wrk(wrk, programs_url, programs_script, API_CONNECTIONS, duration)
            errors = tokens.errors or api.errors or programs.errors
            log_tail = _tail(server_log) if errors else ""
    if log_tail:
        print(f"  the server's log ends with:\n{log_tail}", flush=True)
    return _result(ctx, tokens, api, programs, duration, log_tail)


def _result(
    ctx: BenchContext, tokens: Load, api: Load, programs: Load, duration: int, log_tail: str = ""
) -> BenchResult:
    token_rate, api_rate = tokens.report.requests_per_s, api.report.requests_per_s
    programs_rate = programs.report.requests_per_s
    token_ratio = ctx.ratio_to("ceiling_http", "requests_per_s", token_rate)
    api_ratio = ctx.ratio_to("ceiling_http", "requests_per_s", api_rate)
    programs_ratio = ctx.ratio_to("ceiling_http", "requests_per_s", programs_rate)
    metrics: dict[str, float] = {}
    loads = (("tokens", tokens, token_ratio), ("protected", api, api_ratio), ("programs", programs, programs_ratio))
    for prefix, load, ratio in loads:
        metrics[f"{prefix}_per_s" if prefix == "tokens" else f"{prefix}_requests_per_s"] = load.report.requests_per_s
        if ratio is not None:
            metrics[f"{prefix}_ratio_to_ceiling_http"] = ratio
        for percentile in ("50", "99"):
            if percentile in load.report.latency_ms:
                metrics[f"{prefix}_latency_p{percentile}_ms"] = load.report.latency_ms[percentile]
        metrics[f"{prefix}_requests"] = load.report.requests
        metrics[f"{prefix}_non_2xx"] = load.report.non_2xx
        metrics[f"{prefix}_socket_errors"] = load.socket_errors

    notes = [
        f"the server ran with ALLIANCE_RATE_LIMIT_PER_SECOND={RATE_LIMIT_PER_SECOND} (default 50/s per client), "
        "so the protected figure measures the service, not the rate limiter"
    ]
    if api_ratio is None:
        notes.append("no ratio: ceiling_http did not run or did not succeed")
    for label, load in (("tokens", tokens), ("protected", api), ("programs", programs)):
        if load.errors:
            notes.append(
                f"{label}: {load.report.non_2xx} non-2xx responses (statuses {load.statuses}), "
                f"socket errors {load.report.socket_errors}"
            )
    if log_tail:
        notes.append(f"the server's log ends with: {log_tail[-LOG_TAIL_CHARS // 2 :]}")
    share = f" ({api_ratio:.0%} of ceiling_http)" if api_ratio is not None else ""
    programs_share = f" ({programs_ratio:.0%})" if programs_ratio is not None else ""
    return BenchResult(
        name=NAME,
        status="ok" if tokens.errors == 0 and api.errors == 0 and programs.errors == 0 else "failed",
        headline=(
            f"{token_rate:,.0f} tokens/s, {api_rate:,.0f} protected req/s{share}, "
            f"partner GET {PROGRAMS_PATH} {programs_rate:,.0f} req/s{programs_share}"
        ),
        metrics=metrics,
        params={
            "duration_s": duration,
            "threads": THREADS,
            "token_connections": TOKEN_CONNECTIONS,
            "protected_connections": API_CONNECTIONS,
            "token_request": "POST /oauth/token grant_type=client_credentials, client_secret_basic, back-office client",
            "protected_request": f"GET {API_PATH}, Bearer token of a staff admin client",
            "programs_request": f"GET {PROGRAMS_PATH}, Bearer token of {PARTNER_CLIENT_ID} (the demo bank)",
            "programs_statuses": programs.statuses,
            "token_statuses": tokens.statuses,
            "protected_statuses": api.statuses,
            "rate_limit_per_second": RATE_LIMIT_PER_SECOND,
            "server": "alliance serve --workers 1",
            "secret_hash": _secret_hash(),
        },
        note="; ".join(notes),
    )


def _secret_hash() -> str:
    """The argon2 profile that verifies client secrets: what bounds the token rate."""
    try:
        from app.auth.service import SECRET_HASHER

        return f"argon2id t={SECRET_HASHER.time_cost} m={SECRET_HASHER.memory_cost}KiB p={SECRET_HASHER.parallelism}"
    except (ImportError, AttributeError):
        return "?"


# --- The service --------------------------------------------------------------------------------------------------


def _service_env(database: PgTarget) -> dict[str, str]:
    """The environment of the CLI and the server: the scratch database, quiet logs, the limiter out of the way."""
    return {
        **os.environ,
        # ALLIANCE_DATABASE_URL wins over DATABASE_URL in the settings: set both, so neither can point elsewhere.
        "DATABASE_URL": database.dsn,
        "ALLIANCE_DATABASE_URL": database.dsn,
        "ALLIANCE_LOG_LEVEL": "WARNING",
        "ALLIANCE_RATE_LIMIT_PER_SECOND": str(RATE_LIMIT_PER_SECOND),
        # The `alliance` command imports the package the venv was installed from; the bench measures this tree.
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }


def _alliance() -> str:
    """The ``alliance`` command of this environment (the venv the harness runs in)."""
    beside = Path(sys.executable).with_name("alliance")
    if beside.exists():
        return str(beside)
    found = shutil.which("alliance")
    if found is None:
        raise RuntimeError("the `alliance` command is not installed: run `make install`")
    return found


async def _cli(env: dict[str, str], *args: str) -> Credentials:
    """Run ``alliance <args>`` (in ``--json`` mode) and read the credentials it prints."""
    process = await asyncio.create_subprocess_exec(
        _alliance(), *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    finally:
        await _stop(process)
    command = "alliance " + " ".join(args)
    if process.returncode != 0:
        raise RuntimeError(f"`{command}` exited with {process.returncode}:\n{stderr.decode(errors='replace')[-2000:]}")
    # The JSON is the last line; anything before it (a migration notice) is not ours to parse.
    lines = stdout.decode().strip().splitlines()
    try:
        created = json.loads(lines[-1])
        return Credentials(str(created["client_id"]), str(created["client_secret"]))
    except (IndexError, ValueError, KeyError, TypeError):
        raise RuntimeError(f"`{command}` printed no credentials:\n{stdout.decode(errors='replace')[-2000:]}") from None


@asynccontextmanager
async def _serve(env: dict[str, str]) -> AsyncIterator[tuple[str, IO[bytes]]]:
    """``alliance serve`` (one worker) on a free port, until it answers ``/readyz``; yields its URL and its log."""
    port = free_port()
    command = [_alliance(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-worker"]
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            with stage(f"starting `alliance serve` on 127.0.0.1:{port}"):
                await _wait_until_ready(process, base_url, log)
            yield base_url, log
        finally:
            await _stop(process)


async def _wait_until_ready(process: asyncio.subprocess.Process, base_url: str, log: IO[bytes]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5.0) as client:
        while loop.time() < deadline and process.returncode is None:
            try:
                response = await client.get(f"{base_url}/readyz")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 200:
                return
            await asyncio.sleep(0.1)
    output = _tail(log)
    if process.returncode is not None:
        raise RuntimeError(f"`alliance serve` exited with {process.returncode} before serving:\n{output}")
    raise RuntimeError(f"`alliance serve` was not ready within {STARTUP_TIMEOUT_S:.0f}s:\n{output}")


def _tail(log: IO[bytes]) -> str:
    """The end of the server's log (warnings and errors only: it runs with ``ALLIANCE_LOG_LEVEL=WARNING``)."""
    # pread leaves the file offset alone: the server shares it, and keeps writing at it.
    size = os.fstat(log.fileno()).st_size
    start = max(0, size - LOG_TAIL_CHARS)
    return os.pread(log.fileno(), size - start, start).decode(errors="replace").strip()


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL after 10 s; nothing when it has exited already."""
    if process.returncode is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=10)
    except ProcessLookupError:
        pass
    except TimeoutError:
        process.kill()
        await process.wait()


async def _access_token(base_url: str, client: Credentials) -> str:
    async with httpx.AsyncClient(timeout=30.0) as http:
        response = await http.post(
            f"{base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": client.basic},
        )
    if response.status_code != 200:
        raise RuntimeError(f"POST /oauth/token answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["access_token"])


# --- The demo alliance --------------------------------------------------------------------------------------------


async def _demo_bank(env: dict[str, str]) -> Credentials:
    """Load the demo alliance into the scratch database; the demo bank's credentials."""
    clients = await _demo(env)
    bank = clients.get(PARTNER_CLIENT_ID)
    if bank is not None and not bank.client_secret:
        # Only the run that creates a client shows its secret: ask for new ones.
        bank = (await _demo(env, "--reset-secrets")).get(PARTNER_CLIENT_ID)
    if bank is None or not bank.client_secret:
        raise RuntimeError(f"`alliance demo` gave no secret for {PARTNER_CLIENT_ID}")
    return bank


async def _demo(env: dict[str, str], *options: str) -> dict[str, Credentials]:
    args = ["demo", "--json", *options]
    process = await asyncio.create_subprocess_exec(
        _alliance(), *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    finally:
        await _stop(process)
    command = "alliance " + " ".join(args)
    if process.returncode != 0:
        raise RuntimeError(f"`{command}` exited with {process.returncode}:\n{stderr.decode(errors='replace')[-2000:]}")
    text = stdout.decode()
    # The JSON object is printed indented: it starts at a line of its own, "{".
    start = re.search(r"^\{$", text, re.MULTILINE)
    try:
        listed = json.loads(text[start.start() :])["clients"] if start else None
        return {
            str(item["client_id"]): Credentials(str(item["client_id"]), str(item["client_secret"] or ""))
            for item in listed or []
        }
    except (ValueError, KeyError, TypeError):
        raise RuntimeError(f"`{command}` printed no credentials:\n{text[-2000:]}") from None


async def _lift_client_rate(database: PgTarget, client_id: str) -> bool:
    """Give the client a rate limit of its own, ``RATE_LIMIT_PER_SECOND``: a partner's client is otherwise limited
    by its partner's tier (``standard``, 50/s), whatever ``ALLIANCE_RATE_LIMIT_PER_SECOND`` says. False when the
    schema has no per-client limit (then the setting is the only limit)."""
    connection = await connect(database)
    try:
        has_column = await connection.fetchval(
            "SELECT EXISTS (SELECT FROM information_schema.columns "
            "WHERE table_name = 'oauth_clients' AND column_name = 'rate_limit_per_second')"
        )
        if not has_column:
            return False
        updated = await connection.execute(
            "UPDATE oauth_clients SET rate_limit_per_second = $1 WHERE id = $2", RATE_LIMIT_PER_SECOND, client_id
        )
    finally:
        await connection.close()
    if updated != "UPDATE 1":
        raise RuntimeError(f"no client {client_id} to lift the rate limit of")
    return True


# --- wrk ----------------------------------------------------------------------------------------------------------

# Each thread counts the statuses of its responses; ``done`` prints the counts of every thread, one per line.
_COUNT_STATUSES = """
statuses = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do io.write(string.format("STATUS %d %d\\n", status, count)) end
  end
end
"""


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@asynccontextmanager
async def _scripts(back_office: Credentials, token: str, partner_token: str) -> AsyncIterator[tuple[Path, Path, Path]]:
    """The wrk scripts: a token request of ``back_office``, a GET with the bearer ``token``, and one with the
    partner's."""
    token_request = (
        "wrk.method = 'POST'\n"
        "wrk.body = 'grant_type=client_credentials'\n"
        "wrk.headers['Content-Type'] = 'application/x-www-form-urlencoded'\n"
        f"wrk.headers['Authorization'] = {_lua_string(back_office.basic)}\n"
    )
    api_request = f"wrk.method = 'GET'\nwrk.headers['Authorization'] = {_lua_string('Bearer ' + token)}\n"
    programs_request = f"wrk.method = 'GET'\nwrk.headers['Authorization'] = {_lua_string('Bearer ' + partner_token)}\n"
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        token_script, api_script = Path(directory) / "token.lua", Path(directory) / "api.lua"
        programs_script = Path(directory) / "programs.lua"
        token_script.write_text(token_request + _COUNT_STATUSES)
        api_script.write_text(api_request + _COUNT_STATUSES)
        programs_script.write_text(programs_request + _COUNT_STATUSES)
        yield token_script, api_script, programs_script


async def _wrk(wrk: str, url: str, script: Path, connections: int, duration_s: int) -> Load:
    command = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{duration_s}s", f"--timeout={WRK_TIMEOUT_S}s"]
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
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text}")
    statuses: dict[str, int] = {}
    for status, count in re.findall(r"^STATUS (\d+) (\d+)$", text, re.MULTILINE):
        statuses[status] = statuses.get(status, 0) + int(count)
    return Load(parse_wrk(text), dict(sorted(statuses.items())))
