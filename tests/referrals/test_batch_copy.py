"""A batch chunk's referrals are COPYed into the table (from ``COPY_FROM`` rows), or inserted row by row with
``ON CONFLICT DO NOTHING`` when a concurrent submission took one of their references meanwhile: either way every
line gets the outcome it gets when the chunk is inserted, and the attribution race is settled as it always was."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import bulk
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.main import create_app
from app.referrals import attribution
from tests.conftest import CallerFactory, migrated_scratch_database
from tests.referrals.conftest import PartnerDesk, individual, national_id
from tests.worker.conftest import Desk, open_desk

BATCHES = "/v1/referral-batches"
JSONL = {"Content-Type": "application/x-ndjson"}
NEW_PEOPLE = 70  # with the lines below, a chunk well over COPY_FROM
TAKEN = "external_ref already used for another referral"
PATHS = ("copy", "insert")
CREATED = ("eligible", "existing_client", "duplicate")


def _person() -> str:
    return national_id(born=date(1960, 1, 1) + timedelta(days=random.randrange(15_000)))


def _jsonl(lines: list[Any]) -> bytes:
    return "".join(
        (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
    ).encode()


@dataclass
class Writes:
    path: str
    copies: list[tuple[str, int, str]]  # each COPY the attribution sent: table, rows, how it ended

    def into_referrals(self) -> list[tuple[int, str]]:
        return [(rows, ended) for table, rows, ended in self.copies if table == "referrals"]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Writes:
    """The path under test: ``copy`` as shipped, or ``insert`` (COPY never tried); the COPYs sent are counted."""
    if request.param == "insert":
        monkeypatch.setattr(bulk, "COPY_FROM", 10**9)
    writes = Writes(request.param, [])
    real = bulk.copy_records

    async def counted(session: AsyncSession, table: str, columns: Any, records: list[Any]) -> None:
        try:
            await real(session, table, columns, records)
        except Exception as error:
            writes.copies.append((table, len(records), type(error).__name__))
            raise
        writes.copies.append((table, len(records), "ok"))

    monkeypatch.setattr(bulk, "copy_records", counted)
    return writes


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], lines: list[Any]) -> dict[str, Any]:
    response = await client.post(BATCHES, content=_jsonl(lines), headers={**headers, **JSONL})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "completed"  # a small batch is processed in the request
    return dict(response.json())


async def _lines_of(client: httpx.AsyncClient, headers: dict[str, str], batch_id: str) -> dict[int, dict[str, Any]]:
    page = await client.get(f"{BATCHES}/{batch_id}/results", params={"limit": 500}, headers=headers)
    assert page.status_code == 200 and page.json()["next_cursor"] is None
    return {item["line"]: item for item in page.json()["data"]}


@pytest.mark.parametrize("writes", PATHS, indirect=True)
async def test_a_chunk_gets_the_same_outcomes_and_rows_copied_or_inserted(
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    caller: CallerFactory,
    session: AsyncSession,
    writes: Writes,
) -> None:
    program = bank.program.id
    registered, sent_before, held_elsewhere, twice = _person(), _person(), _person(), _person()
    feed = await caller("back_office")
    await client.post(
        "/v1/client-registry",
        json={"clients": [{"national_id": registered, "opened_on": "2020-03-01"}]},
        headers=feed.headers,
    )
    before = await client.post(
        "/v1/referrals", json=individual(program, "BEFORE-1", national_id=sent_before), headers=bank.headers()
    )
    holder = await client.post(
        "/v1/referrals",
        json=individual(other_bank.program.id, national_id=held_elsewhere),
        headers=other_bank.headers(),
    )
    assert before.status_code == holder.status_code == 201
    lines: list[Any] = [individual(program, f"NEW-{n}", national_id=_person()) for n in range(NEW_PEOPLE)]
    lines += [
        individual(program, "REGISTERED", national_id=registered),  # line 71
        individual(program, "AGAIN", national_id=sent_before),  # 72
        individual(program, "HELD", national_id=held_elsewhere),  # 73
        individual(program, "BEFORE-1", national_id=_person()),  # 74: the reference, for someone else
        individual(program, "TWICE-1", national_id=twice),  # 75
        individual(program, "TWICE-2", national_id=twice),  # 76
        '{"program_id": "nope"}',  # 77
    ]
    batch = await _upload(client, bank.headers(), lines)
    results = await _lines_of(client, bank.caller.headers, batch["id"])

    assert [results[n]["outcome"] for n in range(1, NEW_PEOPLE + 1)] == ["eligible"] * NEW_PEOPLE
    assert results[71]["outcome"] == "existing_client"
    assert results[72]["outcome"] == "returned_existing" and results[72]["referral_id"] == before.json()["id"]
    assert results[73]["outcome"] == "duplicate"
    assert results[74]["outcome"] == "error" and results[74]["errors"][0]["message"] == TAKEN
    assert results[75]["outcome"] == "eligible"
    assert results[76]["outcome"] == "returned_existing" and results[76]["referral_id"] == results[75]["referral_id"]
    assert results[77]["outcome"] == "error"
    assert batch["counts"] == {
        "total": 77,
        "processed": 77,
        "eligible": NEW_PEOPLE + 1,
        "existing_client": 1,
        "duplicate": 1,
        "returned_existing": 2,
        "error": 2,
    }

    created = {line["referral_id"]: line for line in results.values() if line["outcome"] in CREATED}
    rows = (
        await session.execute(
            text(
                "SELECT r.id, r.external_ref, r.status, r.batch_id, r.partner_id, r.program_id, r.outcome_at,"
                " r.window_ends_at - r.created_at AS window, r.consent->>'channel' AS channel,"
                " (SELECT count(*) FROM referral_events e WHERE e.referral_id = r.id) AS events,"
                " (SELECT count(*) FROM report_changes q WHERE q.referral_id = r.id) AS queued,"
                " EXISTS (SELECT FROM identity_holders h WHERE h.referral_id = r.id) AS holds"
                " FROM referrals r WHERE r.batch_id = :batch"
            ),
            {"batch": batch["id"]},
        )
    ).all()
    assert {row.id for row in rows} == set(created)
    for row in rows:
        line = created[row.id]
        assert (row.external_ref, row.status) == (line["external_ref"], line["referral_status"])
        assert (row.partner_id, row.program_id, row.channel) == (bank.partner.id, program, "mobile_app")
        assert row.window == timedelta(days=bank.program.attribution_window_days)
        assert (row.outcome_at is None) == (row.status == "eligible") == row.holds
        assert row.events == 2 and row.queued >= 1  # the timeline, and the report queue's trigger fired
    conflicts = await session.scalar(
        text(
            "SELECT count(*) FROM attribution_conflicts"
            " WHERE holding_referral_id = :id AND duplicate_referral_id = :dup"
        ),
        {"id": holder.json()["id"], "dup": results[73]["referral_id"]},
    )
    assert conflicts == 1

    # The new people and line 75 in one COPY; the few others (existing client, duplicate) inserted.
    assert writes.into_referrals() == ([(NEW_PEOPLE + 1, "ok")] if writes.path == "copy" else [])


# --- a concurrent submission during the batch ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def copy_database(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_batch_copy") as url:
        yield url


@pytest.fixture
async def committed(copy_database: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    scratch = settings.model_copy(update={"database_url": copy_database})
    database = Database(create_engine(copy_database, scratch))
    app = create_app(scratch, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, database
    await database.dispose()


async def _desk(client: httpx.AsyncClient, database: Database, name: str) -> Desk:
    app = client._transport.app  # type: ignore[attr-defined]
    return await open_desk(database, app.state.settings, app.state.keyring, name, rate_limit_per_second=1000)


@pytest.mark.parametrize("writes", PATHS, indirect=True)
async def test_submissions_made_while_a_chunk_is_attributed_are_settled_as_ever(
    committed: tuple[httpx.AsyncClient, Database],
    monkeypatch: pytest.MonkeyPatch,
    writes: Writes,
) -> None:
    client, database = committed
    bank, other = await _desk(client, database, "批量银行"), await _desk(client, database, "同时银行")
    people = [_person() for _ in range(NEW_PEOPLE + 10)]
    lines = [individual(bank.program_id, f"LINE-{n}", national_id=person) for n, person in enumerate(people, 1)]
    claimed_elsewhere, claimed_by_itself, its_reference = people[2], people[4], lines[6]["external_ref"]
    meanwhile: dict[str, httpx.Response] = {}
    real = attribution._registered_identities

    async def submissions_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # After the chunk has read what its partner sent before, before it claims its people: committed at once.
        if not meanwhile:
            for key, desk, body in (
                ("elsewhere", other, individual(other.program_id, national_id=claimed_elsewhere)),
                ("itself", bank, individual(bank.program_id, "SINGLE-5", national_id=claimed_by_itself)),
                ("reference", bank, individual(bank.program_id, its_reference, national_id=_person())),
            ):
                meanwhile[key] = await client.post("/v1/referrals", json=body, headers=desk.with_key())
        return await real(*args, **kwargs)

    monkeypatch.setattr(attribution, "_registered_identities", submissions_meanwhile)
    batch = await _upload(client, bank.with_key(), lines)
    assert {key: response.status_code for key, response in meanwhile.items()} == dict.fromkeys(meanwhile, 201)
    results = await _lines_of(client, bank.headers, batch["id"])

    assert results[3]["outcome"] == "duplicate"
    assert results[5]["outcome"] == "returned_existing"
    assert results[5]["referral_id"] == meanwhile["itself"].json()["id"]
    assert results[7]["outcome"] == "error" and results[7]["errors"][0]["message"] == TAKEN
    others = [results[n]["outcome"] for n in results if n not in (3, 5, 7)]
    assert others == ["eligible"] * (len(lines) - 3)

    async with database.sessionmaker() as session:
        holders = dict(
            (
                await session.execute(
                    text(
                        "SELECT h.identity_hash, h.referral_id FROM identity_holders h"
                        " JOIN referrals r ON r.id = h.referral_id WHERE r.partner_id IN (:bank, :other)"
                    ),
                    {"bank": bank.partner_id, "other": other.partner_id},
                )
            ).all()
        )
        conflict = await session.scalar(
            text("SELECT holding_referral_id FROM attribution_conflicts WHERE duplicate_referral_id = :id"),
            {"id": results[3]["referral_id"]},
        )
        batch_referrals = await session.scalar(
            text("SELECT count(*) FROM referrals WHERE batch_id = :id"), {"id": batch["id"]}
        )
    assert conflict == meanwhile["elsewhere"].json()["id"]
    # Each person held once: the batch's eligible lines, and the three made meanwhile (line 7's person is no one's).
    assert sorted(holders.values()) == sorted(
        [results[n]["referral_id"] for n in results if results[n]["outcome"] == "eligible"]
        + [response.json()["id"] for response in meanwhile.values()]
    )
    assert batch_referrals == len(lines) - 2  # all but the line returned and the line refused

    # The COPY met the reference taken meanwhile, rolled back to its savepoint, and the rows were inserted.
    expected = [(len(lines) - 2, "UniqueViolationError")] if writes.path == "copy" else []
    assert writes.into_referrals() == expected
