"""The current holder of each identity has its own table keyed by the identity (``identity_holders``): racing
partners leave exactly one row there, and after any mix of submissions, batches, account openings, overrides,
withdrawals and expiries the table says exactly what the referrals say."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import Database
from app.referrals.attribution import expire_stale_holders
from tests.referrals.alliance import Alliance, at
from tests.referrals.conftest import individual, national_id
from tests.referrals.test_race import _desk, race_app, race_database  # noqa: F401

HOLDING = "('eligible', 'account_opened', 'funded', 'converted')"


async def _holders(session: AsyncSession, partner_ids: list[str]) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """(what ``identity_holders`` says, what the referrals say) for the identities the partners sent."""
    identities = "SELECT identity_hash FROM referrals WHERE partner_id = ANY(:partners) AND identity_hash IS NOT NULL"
    table = await session.execute(
        text(
            f"SELECT identity_hash, referral_id, partner_id FROM identity_holders WHERE identity_hash IN ({identities})"
        ),
        {"partners": partner_ids},
    )
    referrals = await session.execute(
        text(
            f"SELECT identity_hash, id, partner_id FROM referrals WHERE status IN {HOLDING} "
            f"AND identity_hash IN ({identities})"
        ),
        {"partners": partner_ids},
    )
    return {tuple(row) for row in table.all()}, {tuple(row) for row in referrals.all()}


async def test_two_partners_racing_for_one_person_leave_exactly_one_holder(
    race_app: tuple[httpx.AsyncClient, Database],  # noqa: F811
) -> None:
    client, database = race_app
    desks = [await _desk(database, client, f"竞争银行{index}") for index in range(2)]
    for round_number in range(6):
        person = national_id()

        async def single(
            desk: tuple[str, dict[str, str]], index: int, person: str = person, round_number: int = round_number
        ) -> str:
            program_id, headers = desk
            body = individual(program_id, f"HOLD-{round_number}-{index}", national_id=person)
            response = await client.post(
                "/v1/referrals", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
            )
            assert response.status_code == 201, response.text
            return str(response.json()["status"])

        async def batch(
            desk: tuple[str, dict[str, str]], index: int, person: str = person, round_number: int = round_number
        ) -> str:
            program_id, headers = desk
            line = json.dumps(individual(program_id, f"HOLD-{round_number}-{index}", national_id=person))
            response = await client.post(
                "/v1/referral-batches",
                content=(line + "\n").encode(),
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/x-ndjson"},
            )
            assert response.status_code in (200, 201, 202), response.text
            counts = response.json()["counts"]
            return "eligible" if counts["eligible"] else "duplicate"

        # Single against single, then a single submission against a batch line (the general path).
        first, second = (single, single) if round_number % 2 == 0 else (single, batch)
        outcomes = await asyncio.gather(first(desks[0], 0), second(desks[1], 1))
        assert sorted(outcomes) == ["duplicate", "eligible"], outcomes
        async with database.sessionmaker() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT h.referral_id, h.partner_id, r.status FROM identity_holders AS h "
                        "JOIN referrals AS r ON r.partner_id = h.partner_id AND r.id = h.referral_id "
                        "WHERE h.identity_hash = (SELECT identity_hash FROM referrals "
                        "WHERE external_ref = :ref LIMIT 1)"
                    ),
                    {"ref": f"HOLD-{round_number}-0"},
                )
            ).all()
            assert len(rows) == 1 and rows[0].status == "eligible", rows
            table, referrals = await _holders(session, [rows[0].partner_id])
            assert table == referrals


async def test_the_holders_agree_with_the_referrals_after_a_mixed_run(alliance: Alliance) -> None:
    a, b = alliance.bank_a, alliance.bank_b
    client, session = alliance.client, alliance.session
    moved, opened, batch_dup, withdrawn, stale, batch_new = (national_id() for _ in range(6))

    # Single submissions: A holds three people, B is a duplicate for one and holds another.
    a_moved = await alliance.refer(a, moved)
    await alliance.refer(a, opened)
    await alliance.refer(a, batch_dup)
    b_moved = await alliance.refer(b, moved)
    assert b_moved["status"] == "duplicate"
    b_withdrawn = await alliance.refer(b, withdrawn)

    # A batch of B: a person A holds (duplicate), two new people.
    lines = [individual(b.program.id, national_id=person) for person in (batch_dup, stale, batch_new)]
    for line in lines:
        line["consent"]["captured_at"] = alliance.now.isoformat()
    upload = await client.post(
        "/v1/referral-batches",
        content="".join(json.dumps(line) + "\n" for line in lines).encode(),
        headers={**b.headers(), "Content-Type": "application/x-ndjson"},
    )
    assert upload.status_code in (200, 201, 202), upload.text
    assert upload.json()["counts"]["eligible"] == 2 and upload.json()["counts"]["duplicate"] == 1

    # An account opens (the holder goes down the funnel), an override moves a holder, B withdraws one.
    await alliance.feed(at(5, 5), Alliance.event("account_opened", "C-HOLD", at(5, 5), national_id=opened))
    award = await alliance.award(b_moved["id"], at(5, 6))
    assert (award["moved"], award["referral"]["status"]) == (True, "eligible"), award
    withdrawal = await client.post(
        f"/v1/referrals/{b_withdrawn['id']}/withdraw", json={"reason": "consent_revoked"}, headers=b.caller.headers
    )
    assert withdrawal.status_code == 200, withdrawal.text
    table, referrals = await _holders(session, [a.partner.id, b.partner.id])
    assert table == referrals and len(table) == 5

    # Past the windows: A's submission of a person B held expires B's referral first (the general path) and takes
    # the person; then the expiry job frees the others still eligible, except the one whose account opened.
    alliance.now = at(5, 1) + timedelta(days=120)
    taken = await alliance.refer(a, stale)
    assert taken["status"] == "eligible"
    assert await expire_stale_holders(session, alliance.now) >= 3
    table, referrals = await _holders(session, [a.partner.id, b.partner.id])
    assert table == referrals
    assert {row[1] for row in table} == {taken["id"], (await _referral_of(session, opened))}
    assert a_moved["id"] not in {row[1] for row in table}


async def _referral_of(session: AsyncSession, person_ref: str) -> str:
    """The referral holding the person whose account opened (found through the feed's client account)."""
    found = await session.scalar(text("SELECT referral_id FROM client_accounts WHERE client_ref = 'C-HOLD'"))
    assert found is not None, person_ref
    return str(found)
