"""A single submission's round trips, on a scratch database with the service's own engine (these tests commit):
the one statement, alone (see tests/referrals/test_submission_alone.py); its answer is what the referral reads as,
and its replay is the same bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.core.config import Settings
from app.core.database import Database
from app.referrals.models import Referral
from app.referrals.router import referral_out
from tests.conftest import migrated_scratch_database
from tests.factories.referrals import individual
from tests.referrals.served import Served, partner_desk, served_app
from tests.round_trips import on_the_wire

REFERRALS = "/v1/referrals"


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_one_statement") as url:
        yield url


@pytest.fixture
async def served(scratch_url: str, settings: Settings) -> AsyncIterator[Served]:
    async with served_app(scratch_url, settings) as served:
        yield served


async def test_a_submission_is_one_statement_and_its_replay_the_same_bytes(served: Served) -> None:
    http, desk = served.http, await partner_desk(served)
    headers = desk.headers
    warm = await http.post(REFERRALS, json=individual(desk.program_id), headers={**headers, "Idempotency-Key": "warm"})
    assert warm.status_code == 201, warm.text

    body = individual(desk.program_id)
    async with on_the_wire(served.engine) as wire:
        first = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k1"})
    assert first.status_code == 201, first.text
    assert len(wire.queries) == 1 and "INSERT INTO referrals" in wire.queries[0], wire.queries

    async with on_the_wire(served.engine) as wire:
        again = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert len(wire.queries) == 1, wire.queries

    # The same person under a new key: the referral already sent, 200, in one statement too.
    async with on_the_wire(served.engine) as wire:
        known = await http.post(REFERRALS, json=body, headers={**headers, "Idempotency-Key": "k2"})
    assert known.status_code == 200 and known.json() == first.json()
    assert len(wire.queries) == 1, wire.queries

    async with Database(served.engine).sessionmaker() as session:
        referral = await session.get(Referral, first.json()["id"])
    assert referral is not None
    assert first.json() == referral_out(referral).model_dump(mode="json")
