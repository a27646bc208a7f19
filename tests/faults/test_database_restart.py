"""The database crashes and comes back under load: requests fail cleanly (503 problem+json, quickly, never a 500),
the service recovers by itself (no restart of the app), and a client that retries its refused submissions with the
same ``Idempotency-Key`` ends with exactly one referral per key.

The server is a private one (``private_postgres``), stopped with ``pg_ctl -m immediate`` (every backend killed, as in
a crash: the next start runs crash recovery) while four clients keep submitting and reading. Before the fix in
``app.core.database`` (connection refusals while the server starts up flagged as disconnects), those refusals
were answered 500.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.migrations import upgrade_to_head
from app.core.problems import PROBLEM_MEDIA_TYPE, problem_type
from app.main import create_app
from tests.factories.referrals import individual, national_id
from tests.faults.conftest import Desk, PrivatePostgres, make_desk

CLIENTS = 4
REQUEST_TIMEOUT_S = 10.0  # a request that takes longer hangs, which fails the test
DOWN_ANSWER_S = 5.0  # while the database is down, every answer comes within this
RECOVERY_S = 10.0  # after the database is back, requests succeed again within this
DOWN_FOR_S = 1.0


@dataclass
class Answer:
    method: str
    status: int
    content_type: str
    body: dict[str, Any]
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class Traffic:
    down_at: float = float("inf")  # when the database was stopped
    back_at: float = float("inf")  # when it answered again
    answers: list[Answer] = field(default_factory=list)
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)  # Idempotency-Key -> body
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    warm: asyncio.Event = field(default_factory=asyncio.Event)  # set once a few answers came back
    count: int = 0


async def _call(http: httpx.AsyncClient, traffic: Traffic, method: str, url: str, **kwargs: Any) -> Answer:
    started = time.monotonic()
    response = await asyncio.wait_for(http.request(method, url, **kwargs), REQUEST_TIMEOUT_S)
    body = response.json() if response.content else {}
    answer = Answer(
        method=method,
        status=response.status_code,
        content_type=response.headers.get("content-type", ""),
        body=body if isinstance(body, dict) else {"data": body},
        started=started,
        finished=time.monotonic(),
    )
    traffic.answers.append(answer)
    if len(traffic.answers) >= 3 * CLIENTS:
        traffic.warm.set()
    return answer


def _body(desk: Desk, number: int) -> dict[str, Any]:
    born = date(1950, 1, 1) + timedelta(days=number)
    return individual(desk.program_id, external_ref=f"DBR-{number:06d}", national_id=national_id(born=born))


async def _client(http: httpx.AsyncClient, desk: Desk, traffic: Traffic) -> None:
    """Submit one referral, list, read readiness; again, until told to stop."""
    while not traffic.stop.is_set():
        traffic.count += 1
        key = f"dbr-key-{traffic.count:06d}"
        body = traffic.submitted[key] = _body(desk, traffic.count)
        await _call(http, traffic, "POST", "/v1/referrals", json=body, headers={**desk.headers, "Idempotency-Key": key})
        await _call(http, traffic, "GET", "/v1/referrals?limit=5", headers=desk.headers)
        await _call(http, traffic, "GET", "/readyz")
        await asyncio.sleep(0.01)


async def test_a_database_crash_fails_requests_cleanly_and_the_service_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    url = private_postgres.url
    await asyncio.to_thread(upgrade_to_head, url)
    settings = Settings(  # type: ignore[call-arg]
        environment="test",
        database_url=url,
        log_json=True,
        db_connect_timeout_s=2.0,
        db_pool_timeout_s=3.0,
        readiness_timeout_s=2.0,
        _env_file=None,
    )
    database = Database(create_engine(url, settings))
    app = create_app(settings, database)
    desk = await make_desk(database, settings, app.state.keyring)
    traffic = Traffic()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            clients = [asyncio.create_task(_client(http, desk, traffic)) for _ in range(CLIENTS)]
            try:
                # Some traffic served first (the pool holds connections), however slow the machine is today.
                await asyncio.wait_for(traffic.warm.wait(), 30)
                traffic.down_at = time.monotonic()
                await asyncio.to_thread(private_postgres.stop, "immediate")
                await asyncio.sleep(DOWN_FOR_S)
                await asyncio.to_thread(private_postgres.start)
                traffic.back_at = time.monotonic()
                await _until_healthy(traffic)
            finally:
                traffic.stop.set()
                results = await asyncio.gather(*clients, return_exceptions=True)
            assert not [result for result in results if isinstance(result, BaseException)], results

            _check_answers(traffic)

            # The client retries every submission that was not answered 201, with its key and body.
            refused = _refused_keys(traffic)
            for key in refused:
                headers = {**desk.headers, "Idempotency-Key": key}
                retried = await http.post("/v1/referrals", json=traffic.submitted[key], headers=headers)
                assert retried.status_code == 201, retried.text
            async with database.sessionmaker() as session:
                rows = (await session.execute(text("SELECT external_ref FROM referrals"))).scalars().all()
                keys = (await session.execute(text("SELECT count(*) FROM idempotency_records"))).scalar_one()
    finally:
        await database.dispose()
    expected = sorted(body["external_ref"] for body in traffic.submitted.values())
    assert sorted(rows) == expected, "exactly one referral per submitted key"
    assert keys >= len(expected)


async def _until_healthy(traffic: Traffic) -> None:
    """Until ten answers in a row, after the restart, were successes (or RECOVERY_S passed)."""
    while time.monotonic() - traffic.back_at < RECOVERY_S + REQUEST_TIMEOUT_S:
        latest = [answer for answer in traffic.answers if answer.started >= traffic.back_at][-10:]
        if len(latest) == 10 and all(answer.status < 300 for answer in latest):
            return
        await asyncio.sleep(0.1)


def _check_answers(traffic: Traffic) -> None:
    answers = traffic.answers
    before = [answer for answer in answers if answer.finished < traffic.down_at]
    down = [answer for answer in answers if answer.started >= traffic.down_at and answer.finished < traffic.back_at]
    after = [answer for answer in answers if answer.started >= traffic.back_at]
    assert before and all(answer.status in (200, 201) for answer in before)
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {200, 201, 503}, f"only successes and 503s, never a 500: {statuses}"

    assert len([answer for answer in down if answer.status == 503]) >= CLIENTS, statuses
    for answer in answers:
        if answer.status == 503:
            assert answer.content_type == PROBLEM_MEDIA_TYPE
            assert answer.body["type"] == problem_type("service-unavailable"), answer.body
    slowest = max(answer.seconds for answer in answers if answer.finished >= traffic.down_at)
    assert slowest < DOWN_ANSWER_S, f"a request took {slowest:.1f}s around the crash"

    # Recovered without restarting the app: successes again soon after the restart, and the last ones all succeed.
    first_success = min(answer.finished for answer in after if answer.status < 300)
    assert first_success - traffic.back_at < RECOVERY_S
    assert all(answer.status < 300 for answer in after[-10:]), Counter(answer.status for answer in after)


def _refused_keys(traffic: Traffic) -> list[str]:
    """Keys whose POST was not answered 201 (the database was down, or went down while it ran)."""
    posts = [answer for answer in traffic.answers if answer.method == "POST"]
    accepted = {answer.body.get("external_ref") for answer in posts if answer.status == 201}
    return sorted(key for key, body in traffic.submitted.items() if body["external_ref"] not in accepted)
