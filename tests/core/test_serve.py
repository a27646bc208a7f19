"""``alliance serve`` (what ``make run`` starts) is the whole product: the API and, beside it, the worker that
processes batches and delivers webhooks; they stop together, and no child outlives the command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.config import Settings
from tests.conftest import demo_database_copy
from tests.factories.referrals import individual


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until(probe: Callable[[], object], what: str, timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def serving(database_url: str, log: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``alliance serve --demo`` in a session of its own; anything of it still running at the end is killed."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env["DATABASE_URL"] = database_url
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--demo", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen([*command, *options], env=env, stdout=output, stderr=output, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(healthy, "the API to answer")
        yield process, base
    finally:
        group = process.pid  # the session leader's id is the group's
        for _ in range(2):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                break
        process.wait(10)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def workers_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return [child for child in psutil.Process(process.pid).children(recursive=True) if "worker" in child.cmdline()]


@pytest.fixture
async def demo_database(server_url: str, settings: Settings) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A migrated scratch database with the demo loaded (a copy of the run's demo template, ``tests.conftest``);
    yields its URL and a partner's demo credentials (what loading the demo printed)."""
    async with demo_database_copy(server_url, settings, "alliance_serve") as (url, template):
        partner = next(item for item in template.credentials if item["partner_id"])
        yield url, {key: str(value) for key, value in partner.items()}


def test_serve_runs_the_worker_and_stops_it_with_the_api(
    demo_database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, partner = demo_database
    with serving(url, tmp_path / "serve.log") as (process, base):
        [worker] = workers_of(process)
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(partner["client_id"], partner["client_secret"]),
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        program = httpx.get(f"{base}/v1/programs", headers=headers).json()["data"][0]["id"]
        lines = "\n".join(json.dumps(individual(program), ensure_ascii=False) for _ in range(3))
        submitted = httpx.post(
            f"{base}/v1/referral-batches",
            content=lines.encode(),
            headers={**headers, "Content-Type": "application/x-ndjson", "Idempotency-Key": uuid.uuid4().hex},
        )
        assert submitted.status_code == 202, submitted.text
        batch = submitted.json()["id"]

        def completed() -> object:
            body = httpx.get(f"{base}/v1/referral-batches/{batch}", headers=headers).json()
            return body if body["status"] == "completed" else None

        done = until(completed, "the worker to process the batch", timeout_s=60)
        assert done["counts"]["total"] == 3  # type: ignore[index]

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, "the worker to stop", 10)
        assert not group_alive(process.pid), "a process of `alliance serve` outlived it"


def test_the_worker_stops_when_serve_is_killed_outright(
    demo_database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, _ = demo_database
    with serving(url, tmp_path / "serve.log") as (process, _):
        [worker] = workers_of(process)
        process.kill()
        process.wait(10)
        until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, "the orphaned worker", 15)


def test_no_worker_serves_the_api_alone(demo_database: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, _ = demo_database
    with serving(url, tmp_path / "serve.log", "--no-worker") as (process, _):
        assert workers_of(process) == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
