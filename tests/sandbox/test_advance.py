"""Advancing a partner's test clock runs every job that falls due in between, in time order, for that partner only
(DESIGN.md, "Time"): referral expiry at the window's end, fee hold release at ``hold_until``, erasure of an
unconverted referral's personal data once the retention period has passed, a month close at each month's end.
Advancing day by day and in one step leave the same ledger, statements, timelines and webhook notices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.catalog.models import Partner
from app.conversions.service import ingest_events
from app.core import clock
from app.core.config import Settings
from app.core.database import Database
from app.worker.runner import PassReport, Worker
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import individual, national_id
from tests.fees import conftest as fees_fixtures
from tests.fees.conftest import Ledger, cny

make_ledger = fees_fixtures.make_ledger  # a bank with a program and an active fee schedule (the fixture)
T0 = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
DAYS = 125  # past the window (90 days), the hold (30), the erasure (window + 30)
TARGET = T0 + timedelta(days=DAYS)
E = Ledger.event


@dataclass
class Story:
    """A bank on a test clock: R1 opens and funds an account at once (a bounty held 30 days), R2 never converts
    (it expires at its window's end, then its personal data is erased 30 days later)."""

    ledger: Ledger
    caller: Caller
    refs: dict[str, str]

    @property
    def partner_id(self) -> str:
        return self.ledger.partner_id


async def _story(client: httpx.AsyncClient, session: AsyncSession, make_ledger: Any, caller: CallerFactory) -> Story:
    ledger: Ledger = await make_ledger()
    partner = await session.get(Partner, ledger.partner_id)
    bank = await caller("partner", partner=partner)
    headers = {**bank.headers}
    moved = await client.post("/v1/sandbox/clock/advance", json={"to": T0.isoformat()}, headers=headers)
    assert moved.status_code == 200, moved.text
    endpoint = {"url": "http://127.0.0.1:9/hooks", "event_types": ["referral.status_changed", "referral.expired"]}
    assert (
        await client.post("/v1/webhook-endpoints", json=endpoint, headers={**headers, "Idempotency-Key": "hook"})
    ).status_code == 201
    refs: dict[str, str] = {}
    people: dict[str, str] = {}
    for ref in ("R1", "R2"):
        people[ref] = national_id()
        body = individual(ledger.program_id, external_ref=ref, national_id=people[ref])
        body["consent"]["captured_at"] = T0.isoformat()
        created = await client.post("/v1/referrals", json=body, headers={**headers, "Idempotency-Key": ref})
        assert created.status_code == 201, created.text
        refs[created.json()["id"]] = ref
    client_ref = f"C-{ledger.partner_id}"
    events = [
        E("account_opened", client_ref, T0, national_id=people["R1"]),
        E("account_funded", client_ref, T0, **cny(20_000)),
    ]
    results = await ingest_events(session, ledger.keyring.index, events, now=T0)  # the back office, on the clock
    assert [result.result for result in results] == ["applied", "applied"]
    return Story(ledger, bank, refs)


async def _advance(client: httpx.AsyncClient, story: Story, **body: object) -> dict[str, Any]:
    answer = await client.post("/v1/sandbox/clock/advance", json=body, headers=story.caller.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _rows(session: AsyncSession, sql: str, partner_id: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in (await session.execute(text(sql), {"p": partner_id})).all()]


def _without_ids(value: Any, refs: dict[str, str]) -> Any:
    """A notice's data with the partner's own ids replaced by the story's names (or dropped)."""
    if isinstance(value, dict):
        return {key: _without_ids(item, refs) for key, item in value.items() if key not in ("program_id", "partner_id")}
    if isinstance(value, list):
        return [_without_ids(item, refs) for item in value]
    return refs.get(value, value) if isinstance(value, str) else value


async def _books(session: AsyncSession, story: Story) -> dict[str, Any]:
    """Everything the jobs write for the partner, without its ids."""
    session.expire_all()
    p = story.partner_id
    names = story.refs
    ledger = await _rows(
        session,
        "SELECT r.external_ref, a.rule, a.amount_fen, a.status, a.hold_until, a.updated_at, s.period "
        "FROM fee_accruals a JOIN referrals r ON r.id = a.referral_id LEFT JOIN statements s ON s.id = a.statement_id "
        "WHERE a.partner_id = :p ORDER BY 1, 2, 5",
        p,
    )
    statements = await _rows(
        session,
        "SELECT period, status, lines_total_fen, net_fen, vat_fen, gross_fen, line_count, created_at "
        "FROM statements WHERE partner_id = :p ORDER BY period",
        p,
    )
    referrals = await _rows(
        session,
        "SELECT external_ref, status, outcome_at, erased_at, name_ct IS NULL FROM referrals "
        "WHERE partner_id = :p ORDER BY external_ref",
        p,
    )
    timeline = await _rows(
        session,
        "SELECT r.external_ref, e.from_status, e.to_status, e.cause, e.created_at FROM referral_events e "
        "JOIN referrals r ON r.id = e.referral_id WHERE e.partner_id = :p ORDER BY e.seq",
        p,
    )
    notices = [
        (event_type, _without_ids(payload, names))
        for event_type, payload in await _rows(
            session,
            "SELECT event_type, payload FROM webhook_deliveries WHERE partner_id = :p ORDER BY created_at",
            p,
        )
    ]
    # Notices of one instant are queued by one statement: ordered by what they say, not by their random ids.
    notices.sort(key=lambda notice: (notice[1]["timestamp"], notice[0], json.dumps(notice[1], sort_keys=True)))
    return {
        "ledger": ledger,
        "statements": statements,
        "referrals": referrals,
        "timeline": timeline,
        "notices": notices,
    }


async def test_an_advance_runs_each_job_at_its_instant_in_order(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_ledger: Any,
    caller: CallerFactory,
    manual_clock: clock.ManualClock,
) -> None:
    manual_clock.move_to(T0 - timedelta(hours=1))
    story = await _story(client, session, make_ledger, caller)
    answer = await _advance(client, story, to=TARGET.isoformat())

    held_until = T0 + timedelta(days=30)  # recorded at T0, held 30 days
    window_end = T0 + timedelta(days=90)
    erasure = window_end + timedelta(days=30, microseconds=1)  # once the outcome is older than 30 days
    jobs = [(run["job"], run["at"], run["rows"]) for run in answer["jobs"]]
    assert jobs == [
        ("release_held_fees", "2027-02-04T02:00:00Z", 1),
        ("expire_referrals", "2027-04-05T02:00:00Z", 1),
        ("erase_unconverted", "2027-05-05T02:00:00.000001Z", 1),
    ]
    month_ends = ["2027-01-31T16:00:00Z", "2027-02-28T16:00:00Z", "2027-03-31T16:00:00Z", "2027-04-30T16:00:00Z"]
    closes = [(close["period"], close["at"], close["created_statements"]) for close in answer["months_closed"]]
    assert closes == list(zip(["2027-01", "2027-02", "2027-03", "2027-04"], month_ends, [0, 1, 0, 0], strict=True))
    assert answer["clock"]["now"] == "2027-05-10T02:00:00Z"

    books = await _books(session, story)
    february_end = datetime(2027, 2, 28, 16, 0, tzinfo=UTC)
    assert [(ref, status, hold, period) for ref, _rule, _fen, status, hold, _at, period in books["ledger"]] == [
        ("R1", "statemented", held_until, "2027-02")
    ]
    assert books["ledger"][0][5] == february_end  # put on February's statement as February ended
    assert [(period, count, created) for period, _s, _t, _n, _v, _g, count, created in books["statements"]] == [
        ("2027-02", 1, february_end)
    ]
    r2 = next(row for row in books["referrals"] if row[0] == "R2")
    assert r2[1:] == ("expired", window_end, erasure, True)
    assert ("R2", "eligible", "expired", "window_passed", window_end) in books["timeline"]
    expired = [payload for event_type, payload in books["notices"] if event_type == "referral.expired"]
    assert [notice["timestamp"] for notice in expired] == [window_end.isoformat()]


async def test_small_steps_and_one_big_step_leave_the_same_books(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_ledger: Any,
    caller: CallerFactory,
    manual_clock: clock.ManualClock,
) -> None:
    manual_clock.move_to(T0 - timedelta(hours=1))
    daily = await _story(client, session, make_ledger, caller)
    at_once = await _story(client, session, make_ledger, caller)
    untouched = await _books(session, at_once)

    ran: list[tuple[str, str, int]] = []
    closed: list[str] = []
    for _ in range(DAYS):
        answer = await _advance(client, daily, by_days=1)
        ran += [(run["job"], run["at"], run["rows"]) for run in answer["jobs"]]
        closed += [close["period"] for close in answer["months_closed"]]
    # Advancing one partner moved none of the other's data, nor its clock.
    assert await _books(session, at_once) == untouched
    other = await client.get("/v1/sandbox/clock", headers=at_once.caller.headers)
    assert other.json()["now"] == "2027-01-05T02:00:00Z"

    answer = await _advance(client, at_once, to=TARGET.isoformat())
    assert ran == [(run["job"], run["at"], run["rows"]) for run in answer["jobs"]]
    assert (
        closed == [close["period"] for close in answer["months_closed"]] == ["2027-01", "2027-02", "2027-03", "2027-04"]
    )
    step_by_step, in_one = await _books(session, daily), await _books(session, at_once)
    assert step_by_step == in_one
    assert step_by_step["ledger"] and step_by_step["statements"] and step_by_step["notices"]
    assert len(step_by_step["timeline"]) > 4


async def test_staff_close_a_month_for_real_time_partners_and_leave_clocked_ones_out(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_ledger: Any,
    caller: CallerFactory,
    manual_clock: clock.ManualClock,
) -> None:
    manual_clock.move_to(T0 - timedelta(hours=1))
    story = await _story(client, session, make_ledger, caller)
    manual_clock.move_to(datetime(2027, 3, 2, tzinfo=UTC))  # real time is past February; the partner's clock is not
    finance = await caller("staff", role="finance")
    answer = await client.post("/v1/finance/periods/2027-02/close", headers=finance.headers)
    assert answer.status_code == 200, answer.text
    left_out = {partner["partner_id"]: partner for partner in answer.json()["left_out"]}
    assert left_out[story.partner_id]["reason"] == "clock_before_period_end"
    assert left_out[story.partner_id]["clock_now"] == "2027-01-05T02:00:00Z"
    assert story.partner_id not in {statement["partner_id"] for statement in answer.json()["statements"]}
    statuses = await _rows(session, "SELECT status FROM fee_accruals WHERE partner_id = :p", story.partner_id)
    assert statuses == [("pending",)]


async def test_the_workers_real_time_jobs_leave_clocked_partners_alone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    settings: Settings,
    make_ledger: Any,
    caller: CallerFactory,
    manual_clock: clock.ManualClock,
) -> None:
    manual_clock.move_to(T0 - timedelta(hours=1))
    clocked = await _story(client, session, make_ledger, caller)
    real_time: Ledger = await make_ledger()
    on_real_time, _person = await real_time.referral(T0)
    await session.execute(
        text("UPDATE referrals SET window_ends_at = :end WHERE id = :id"),
        {"end": T0 + timedelta(days=90), "id": on_real_time},
    )
    manual_clock.move_to(T0 + timedelta(days=100))  # real time passes both windows and the bounty's hold
    worker = Worker(Database(connection, join_savepoint=True), settings)
    try:
        await worker.run_jobs(PassReport())
    finally:
        await worker.http.aclose()
    assert await _rows(session, "SELECT status FROM referrals WHERE id = :p", on_real_time) == [("expired",)]
    statuses = await _rows(
        session, "SELECT status FROM referrals WHERE partner_id = :p AND external_ref = 'R2'", clocked.partner_id
    )
    assert statuses == [("eligible",)]  # its window ends on its own clock
    lines = await _rows(session, "SELECT status FROM fee_accruals WHERE partner_id = :p", clocked.partner_id)
    assert lines == [("pending",)]
