"""``/metrics`` covers every API process: with ``PROMETHEUS_MULTIPROC_DIR`` set (``alliance serve --workers N``
sets it), each process writes its counts to that directory and whichever process answers ``/metrics`` sums them.
Each process here is a real one (prometheus_client chooses its mode when it is first imported)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import Settings

# One API process: the app, in process, serving ``count`` liveness calls and then, if asked, its ``/metrics``.
PROCESS = """
import asyncio, sys
import httpx
from app.core.config import Settings
from app.main import create_app

async def main() -> None:
    settings = Settings(environment="test", database_url=sys.argv[1], _env_file=None)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        for _ in range(int(sys.argv[2])):
            assert (await http.get("/healthz")).status_code == 200
        if sys.argv[3] == "read":
            print((await http.get("/metrics")).text)

asyncio.run(main())
"""
ROOT = Path(__file__).resolve().parents[2]


def _process(directory: Path, settings: Settings, count: int, read: bool = False) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROCESS, str(settings.database_url), str(count), "read" if read else "count"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _healthz_count(body: str) -> float:
    found = re.search(r'^alliance_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', body, re.M)
    assert found, body[-3000:]
    return float(found.group(1))


def test_counts_from_two_processes_are_summed(tmp_path: Path, settings: Settings) -> None:
    _process(tmp_path, settings, 3)
    _process(tmp_path, settings, 5)
    body = _process(tmp_path, settings, 0, read=True)
    assert _healthz_count(body) == 8
    assert 'alliance_http_request_duration_seconds_count{method="GET",route="/healthz"} 8.0' in body
    assert len(list(tmp_path.glob("counter_*.db"))) == 3  # one file per process


def test_serve_with_several_workers_gives_them_a_fresh_metrics_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import _multiprocess_metrics

    # Set (empty: unset for the service) so that monkeypatch puts back what was there, whatever the command sets.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    assert _multiprocess_metrics(1) is None
    assert not os.environ["PROMETHEUS_MULTIPROC_DIR"]
    directory = _multiprocess_metrics(2)
    assert directory is not None and os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert not list(Path(directory).iterdir())
    Path(directory).rmdir()
