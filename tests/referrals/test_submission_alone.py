"""A single submission on the wire, on the service served with its own engine (these tests commit): its one
statement runs alone, without BEGIN nor COMMIT (it commits by itself); an insert that loses a race to a concurrent
transaction undoes the whole statement, and the general path settles the submission: one referral, the answer the
rules give, remembered under the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import Database
from app.core.tenancy import Tenant
from app.referrals import service
from app.referrals.models import Referral
from app.referrals.router import referral_out
from app.referrals.schemas import ReferralCreate
from tests.conftest import eventually, migrated_scratch_database
from tests.factories.referrals import individual, national_id
from tests.referrals.served import Desk, Served, partner_desk, served_app
from tests.round_trips import on_the_wire

REFERRALS = "/v1/referrals"


@pytest.fixture(scope="module")
def scratch_url(server_url: str) -> Iterator[str]:
    with migrated_scratch_database(server_url, "alliance_submission_alone") as url:
        yield url


@pytest.fixture
async def served(scratch_url: str, settings: Settings) -> AsyncIterator[Served]:
    async with served_app(scratch_url, settings) as served:
        yield served


async def _submit(served: Served, desk: Desk, body: dict[str, Any], key: str) -> httpx.Response:
    return await served.http.post(REFERRALS, json=body, headers={**desk.headers, "Idempotency-Key": key})


async def _one(engine: AsyncEngine, sql: str, **values: Any) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(text(sql), values)


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    waiting = await _one(
        engine,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return bool(waiting)


async def test_a_submission_runs_alone_once_the_request_has_not_used_the_database(served: Served) -> None:
    desk = await partner_desk(served)
    # A fresh service reads its data keys on the first submission, in the request's transaction: the statement
    # runs in it.
    async with on_the_wire(served.engine) as wire:
        cold = await _submit(served, desk, individual(desk.program_id), "cold")
    assert cold.status_code == 201, cold.text
    assert wire.transaction_control[0].upper().startswith("BEGIN"), wire.queries
    assert wire.transaction_control[-1].upper() == "COMMIT;", wire.queries
    assert sum("INSERT INTO referrals" in query for query in wire.statements) == 1, wire.queries

    async with on_the_wire(served.engine) as wire:
        warm = await _submit(served, desk, individual(desk.program_id), "warm")
    assert warm.status_code == 201, warm.text
    assert wire.transaction_control == [], wire.queries
    assert len(wire.statements) == 1 and "INSERT INTO referrals" in wire.statements[0], wire.queries
    # Committed by itself: another connection reads the referral, and the answer is what it reads as.
    async with Database(served.engine).sessionmaker() as session:
        referral = await session.get(Referral, warm.json()["id"])
    assert referral is not None and warm.json() == referral_out(referral).model_dump(mode="json")

    async with on_the_wire(served.engine) as wire:
        replay = await _submit(served, desk, individual(desk.program_id) | {"external_ref": "other"}, "warm")
    assert replay.status_code == 422 and replay.json()["type"].endswith("idempotency-key-reused"), replay.text
    assert wire.transaction_control == [] and len(wire.statements) == 1, wire.queries


async def test_an_insert_lost_to_a_concurrent_holder_is_undone_and_the_general_path_answers(served: Served) -> None:
    bank, rival_bank = await partner_desk(served, "甲银行"), await partner_desk(served, "乙银行")
    assert (await _submit(served, bank, individual(bank.program_id), "warm")).status_code == 201  # data keys read
    person = national_id()
    body = individual(bank.program_id, "RACED", national_id=person)

    # The other bank's referral of the same person, made and not yet committed when the submission reads who holds
    # the person: the submission decides `eligible`, then its claim of the person waits for the other's, and loses.
    async with on_the_wire(served.engine) as wire:
        held = await _while_uncommitted(
            served, rival_bank, individual(rival_bank.program_id, national_id=person), _submit(served, bank, body, "k")
        )
    answer = held.answer
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "duplicate"  # the person is the other bank's: rule of the first holder
    # The statement failed on purpose (nothing of it kept), then the general path ran in a transaction of its own.
    assert len(wire.failed) == 1 and "INSERT INTO referrals" in wire.failed[0], wire.queries

    referrals = await _one(
        served.engine,
        "SELECT count(*) FROM referrals WHERE partner_id = :partner AND external_ref = 'RACED'",
        partner=bank.partner_id,
    )
    holder = await _one(
        served.engine,
        "SELECT referral_id FROM identity_holders WHERE identity_hash = "
        "(SELECT identity_hash FROM referrals WHERE id = :id)",
        id=answer.json()["id"],
    )
    conflicts = await _one(
        served.engine,
        "SELECT count(*) FROM attribution_conflicts WHERE duplicate_referral_id = :id AND holding_referral_id = :held",
        id=answer.json()["id"],
        held=held.rival_referral_id,
    )
    assert (referrals, holder, conflicts) == (1, held.rival_referral_id, 1)
    async with Database(served.engine).sessionmaker() as session:
        referral = await session.get(Referral, answer.json()["id"])
    assert referral is not None and answer.json() == referral_out(referral).model_dump(mode="json")

    replay = await _submit(served, bank, body, "k")
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    # The general path's answer is rendered by the service, its replay is the stored jsonb: the same JSON.
    assert replay.json() == answer.json()


async def test_an_insert_lost_to_a_concurrent_reference_keeps_nothing(served: Served) -> None:
    bank = await partner_desk(served)
    assert (await _submit(served, bank, individual(bank.program_id), "warm")).status_code == 201  # data keys read
    person = national_id()
    body = individual(bank.program_id, "SAME-REF", national_id=person)

    # The bank's own referral of another person under the same reference, not yet committed: the submission claims
    # its person, then its insert waits for the other's reference, and loses.
    async with on_the_wire(served.engine) as wire:
        held = await _while_uncommitted(
            served, bank, individual(bank.program_id, "SAME-REF"), _submit(served, bank, body, "lost-to-a-reference")
        )
    assert held.answer.status_code == 409, held.answer.text
    assert held.answer.json()["type"].endswith("external-ref-taken")
    assert len(wire.failed) == 1 and "INSERT INTO referrals" in wire.failed[0], wire.queries

    claims = await _one(
        served.engine,
        "SELECT count(*) FROM identity_holders AS h JOIN referrals AS r ON r.id = h.referral_id "
        "WHERE r.partner_id = :partner AND r.external_ref = 'SAME-REF'",
        partner=bank.partner_id,
    )
    all_claims = await _one(served.engine, "SELECT count(*) FROM identity_holders")
    referrals = await _one(
        served.engine,
        "SELECT count(*) FROM referrals WHERE partner_id = :partner",
        partner=bank.partner_id,
    )
    stored = await _one(served.engine, "SELECT count(*) FROM idempotency_records WHERE key = 'lost-to-a-reference'")
    # The warm-up's person and the other referral's hold themselves; this person is claimed by nobody, and the
    # refused request left no answer under its key.
    assert (claims, referrals, stored) == (1, 2, 0)
    assert all_claims == await _one(served.engine, "SELECT count(*) FROM referrals WHERE status = 'eligible'")

    retried = await _submit(served, bank, body, "lost-to-a-reference")
    assert retried.status_code == 409 and "idempotent-replayed" not in retried.headers


class _Raced:
    def __init__(self, rival_referral_id: str, answer: httpx.Response) -> None:
        self.rival_referral_id, self.answer = rival_referral_id, answer


async def _while_uncommitted(
    served: Served, rival: Desk, rival_body: dict[str, Any], submission: Coroutine[Any, Any, httpx.Response]
) -> _Raced:
    """``submission`` sent while ``rival``'s referral of ``rival_body`` is made and not yet committed; committed
    once the submission waits for it. The rival's referral id, and the submission's answer."""
    keyring = served.app.state.data_keyring
    async with Database(served.engine).sessionmaker() as session, session.begin():
        cipher = await keyring.cipher(session)
        data = ReferralCreate.model_validate(rival_body)
        made = await service.submit_referral(session, Tenant(rival.partner_id), data, cipher, keyring.index)
        racing = asyncio.create_task(submission)
        await eventually(lambda: _waiting_on_a_lock(served.engine), "the submission waiting for the rival")
    return _Raced(made.referral.id, await racing)
