"""Browser tests: the real service (``alliance serve`` on a free port, a scratch database with the demo loaded)
driven by the system's Chromium through Playwright (headless, ``/usr/bin/chromium``, no browser download).

Every test under ``tests/e2e`` is marked ``e2e``: deselected by ``make test``, run by ``make e2e``. Sign in as a
demo person with ``sign_in(page, served.person("finance"))``; ``served.url("/console")`` is a full URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import migrated_scratch_database
from tests.core.test_serve import free_port, until

CHROMIUM = "/usr/bin/chromium"
E2E = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class DemoPerson:
    username: str
    password: str
    totp_secret: str
    role: str
    display_name: str


@dataclass(frozen=True)
class Served:
    base_url: str
    database_url: str
    people: tuple[DemoPerson, ...]
    clients: tuple[dict[str, str | None], ...]

    def url(self, path: str) -> str:
        return self.base_url + path

    def person(self, role: str, index: int = 0) -> DemoPerson:
        """The demo's ``index``-th person of ``role`` (finance has two: maker and checker)."""
        return [person for person in self.people if person.role == role][index]


def _demo(database_url: str) -> dict[str, list[dict[str, str | None]]]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
    env |= {"DATABASE_URL": database_url, "ALLIANCE_ENVIRONMENT": "development", "ALLIANCE_LOG_LEVEL": "WARNING"}
    loaded = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    text = loaded.stdout
    demo: dict[str, list[dict[str, str | None]]] = json.loads(text[text.index("\n{") + 1 if "\n{" in text else 0 :])
    return demo


@contextmanager
def _outside_the_event_loop(context: AbstractContextManager[str]) -> Iterator[str]:
    """Enter and leave ``context`` in a thread of its own: the suite's session event loop may be running in this
    one, and the scratch database is made with ``asyncio.run``."""
    with ThreadPoolExecutor(1) as thread:
        value = thread.submit(context.__enter__).result()
        try:
            yield value
        finally:
            thread.submit(context.__exit__, None, None, None).result()


@pytest.fixture(scope="session")
def served(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service with the demo loaded, as ``make run`` serves it (development: cookies without ``Secure`` on
    plain http://127.0.0.1), without the background worker."""
    with _outside_the_event_loop(migrated_scratch_database(server_url, "alliance_e2e")) as database_url:
        demo = _demo(database_url)
        people = tuple(
            DemoPerson(
                str(item["username"]),
                str(item["password"]),
                str(item["totp_secret"]),
                str(item["role"]),
                str(item["display_name"]),
            )
            for item in demo["staff_users"]
        )
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
        env |= {"DATABASE_URL": database_url, "ALLIANCE_ENVIRONMENT": "development", "ALLIANCE_LOG_LEVEL": "WARNING"}
        log = tmp_path_factory.mktemp("e2e") / "serve.log"
        command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--no-migrate", "--no-worker"]
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*command, "--port", str(port)], env=env, stdout=output, stderr=output, start_new_session=True
            )
        base = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            until(healthy, "the service to answer")
            yield Served(base, database_url, people, tuple(demo["clients"]))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"the browser tests need Chromium at {CHROMIUM} (`make e2e` installs it as root)"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page, in Chinese (the console's default)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


_last_step: dict[str, int] = {}


def one_time_code(person: DemoPerson) -> str:
    """The person's current TOTP code; waits for the next 30-second step when this one was used already (a code is
    good once)."""
    step = int(time.time()) // 30
    if _last_step.get(person.username) == step:
        time.sleep(30 - time.time() % 30 + 0.5)
        step = int(time.time()) // 30
    _last_step[person.username] = step
    return pyotp.TOTP(person.totp_secret).at(step * 30)


def sign_in(page: Page, served: Served, person: DemoPerson, next_path: str = "/console") -> None:
    """Sign ``person`` in through the sign-in form (password and one-time code); ends on the page of ``next_path``."""
    page.goto(served.url(f"/console/sign-in?next={next_path}"))
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.fill("#code", one_time_code(person))
    page.click("button[value=password]")
    page.wait_for_load_state()
    assert "/console/sign-in" not in page.url, f"{person.username} was not signed in: {page.inner_text('body')[:300]}"
