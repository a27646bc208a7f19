"""What every bench shares: the database server, scratch databases, timing, and writing results."""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
BENCH_PGDATA = ROOT / ".alliance" / "bench-pgdata"

# Server settings that move the ceilings; recorded with every result so that figures can be compared honestly.
_RECORDED_SETTINGS = ("server_version", "synchronous_commit", "fsync", "wal_level", "shared_buffers", "max_wal_size")

Status = Literal["ok", "skipped", "failed"]


# --- The database server ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgTarget:
    """One database on a PostgreSQL server, as a DSN that asyncpg accepts (``postgresql://...``)."""

    dsn: str
    source: str  # "DATABASE_URL" or "embedded"

    @property
    def database(self) -> str:
        return unquote(urlsplit(self.dsn).path.lstrip("/")) or "postgres"

    def with_database(self, name: str) -> PgTarget:
        parts = urlsplit(self.dsn)
        return PgTarget(urlunsplit(parts._replace(path="/" + name)), self.source)

    def describe(self) -> str:
        """Where the server is, without the password: ``user@host:port/database``."""
        parts = urlsplit(self.dsn)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "localhost"])[0]
        port = query.get("port", [str(parts.port or 5432)])[0]
        user = unquote(parts.username or "") or query.get("user", ["?"])[0]
        return f"{user}@{host}:{port}/{self.database} ({self.source})"


def asyncpg_dsn(url: str) -> str:
    """The URL as asyncpg wants it: the SQLAlchemy spellings (``postgresql+asyncpg://``, ...) become ``postgresql://``.

    The embedded server answers ``postgresql+asyncpg://postgres@/postgres?host=/socket/dir``; asyncpg reads the user,
    the database and the ``host`` query parameter (a Unix socket directory) from the plain form of that URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return "postgresql://" + rest


def server_target() -> PgTarget:
    """``DATABASE_URL`` when set, otherwise the embedded server in ``.alliance/bench-pgdata`` (started on demand)."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return PgTarget(asyncpg_dsn(configured), "DATABASE_URL")
    from app.core.embedded_db import start_embedded_postgres

    return PgTarget(asyncpg_dsn(start_embedded_postgres(BENCH_PGDATA)), "embedded")


async def connect(target: PgTarget) -> asyncpg.Connection:
    return await asyncpg.connect(target.dsn)


@asynccontextmanager
async def scratch_database(server: PgTarget, prefix: str = "bench") -> AsyncIterator[PgTarget]:
    """A new, empty database on ``server`` for one bench; dropped afterwards, whatever happens."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    admin = await connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.with_database(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def server_settings(server: PgTarget) -> dict[str, str]:
    connection = await connect(server)
    try:
        rows = await connection.fetch(
            "SELECT name, current_setting(name) AS value FROM unnest($1::text[]) AS name", _RECORDED_SETTINGS
        )
    finally:
        await connection.close()
    return {row["name"]: row["value"] for row in rows}


# --- Running benches ----------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """What one bench measured. ``metrics`` carry their unit in their name (``rows_per_s``, ``latency_p99_ms``)."""

    name: str
    status: Status = "ok"
    headline: str = ""  # the one figure the summary shows
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    seconds: float = 0.0  # wall time of the whole bench, set by the runner


@dataclass
class BenchContext:
    """Shared by the benches of one run. Later benches read the ceilings measured earlier from ``results``."""

    server: PgTarget
    quick: bool
    environment: dict[str, Any]
    results: dict[str, BenchResult] = field(default_factory=dict)

    def metric(self, bench: str, metric: str) -> float | None:
        """A figure measured earlier in this run, or None when that bench did not run or did not succeed."""
        result = self.results.get(bench)
        if result is None or result.status != "ok":
            return None
        return result.metrics.get(metric)

    def ratio_to(self, bench: str, metric: str, value: float) -> float | None:
        """``value`` as a fraction of a ceiling measured in this run (e.g. intake rows/s over COPY rows/s)."""
        ceiling = self.metric(bench, metric)
        return value / ceiling if ceiling else None


BenchFunction = Callable[[BenchContext], Awaitable[BenchResult]]


@dataclass(frozen=True)
class Bench:
    name: str
    run: BenchFunction
    description: str
    needs: tuple[str, ...] = ()  # benches whose results this one reads; run first, even with --only


def skipped(name: str, reason: str) -> BenchResult:
    return BenchResult(name=name, status="skipped", headline="skipped", note=reason)


def failed(name: str, reason: str) -> BenchResult:
    return BenchResult(name=name, status="failed", headline="failed", note=reason)


# --- Timing -------------------------------------------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def summarise_rates(count: int, durations: list[float]) -> dict[str, float]:
    """Throughput over repeated runs of ``count`` items: the median and the best, per second."""
    return {
        "median_per_s": count / statistics.median(durations),
        "best_per_s": count / min(durations),
        "median_s": statistics.median(durations),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Results ------------------------------------------------------------------------------------------------------


def environment(server: PgTarget, settings: dict[str, str], quick: bool) -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "database": server.describe(),
        "postgres": settings,
        "quick": quick,
    }


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return completed.stdout.strip() or None


def write_result(result: BenchResult, env: dict[str, Any]) -> Path:
    """``bench/results/<name>.json``: the result and the environment it was measured in."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{result.name}.json"
    path.write_text(json.dumps({**asdict(result), "environment": env}, indent=2, default=str) + "\n")
    return path


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> None:
    lines = ([header] if header else []) + list(rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))] if lines else []
    print(f"\n{title}")
    for index, line in enumerate(lines):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if header and index == 0:
            print("  " + "  ".join("-" * width for width in widths))
    sys.stdout.flush()


def print_result(result: BenchResult) -> None:
    rows = [(key, format_value(value)) for key, value in result.metrics.items()]
    rows += [(key, str(value)) for key, value in result.params.items()]
    if result.note:
        rows.append(("note", result.note))
    print_table(f"{result.name}: {result.status}", rows or [("(nothing measured)", "")])


@contextmanager
def stage(message: str) -> Iterator[None]:
    """Print what is happening and how long it took, for the slow steps of a bench."""
    print(f"  {message} ...", end="", flush=True)
    with Stopwatch() as watch:
        try:
            yield
        except BaseException:
            print(" failed", flush=True)
            raise
    print(f" {watch.seconds:.2f}s", flush=True)
