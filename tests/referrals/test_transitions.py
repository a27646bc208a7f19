"""The referral funnel's transitions (DESIGN.md, "Referral funnel", "Attribution rules" 3-5, "Attribution override
after conversion" and "Risk"): the table of what may follow what, and the one function that applies changes.

The expectations below are written from DESIGN.md, not read from ``app.referrals.transitions``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import app
from app.core import clock
from app.referrals.attribution import expire_stale_holders
from app.referrals.models import Referral, ReferralEvent, ReferralStatus
from app.referrals.transitions import InvalidReferralTransition, StatusChange, check, transition
from app.webhooks.models import WebhookDelivery
from tests.factories.referrals import PartnerDesk, individual

S = ReferralStatus
FUNNEL = [S.received, S.eligible, S.account_opened, S.funded, S.converted]
HOLDING = {S.eligible, S.account_opened, S.funded, S.converted}
# Where a client account can be linked: a tier rise of that account is on the timeline without a status change.
WITH_ACCOUNT = {S.account_opened, S.funded, S.converted, S.withdrawn, S.rejected}

EXPECTED: set[tuple[ReferralStatus | None, ReferralStatus]] = {
    (None, S.received),  # every referral is first received
    # "received → eligible → account_opened → funded → converted"
    (S.received, S.eligible),
    (S.eligible, S.account_opened),
    (S.account_opened, S.funded),
    (S.funded, S.converted),
    # converted = bought a bundled product of its program: funded or not yet
    (S.account_opened, S.converted),
    # rule 2: in the registry → existing_client; the account opened before the referral, too
    (S.received, S.existing_client),
    (S.eligible, S.existing_client),
    # rule 3: another partner holds the person → duplicate
    (S.received, S.duplicate),
    # rule 4: no account opened inside the window → expired
    (S.eligible, S.expired),
    # rule 5 and the override after conversion: an attribution moves at any stage; the old holder becomes
    # duplicate, the new one (a duplicate) holds again and follows its account's events down the funnel
    *((holding, S.duplicate) for holding in HOLDING),
    (S.duplicate, S.eligible),
    # rejected: invalid (on receipt) or fraudulent (a confirmed risk case rejects referrals that earned fees)
    (S.received, S.rejected),
    *((holding, S.rejected) for holding in HOLDING),
    # withdrawn: the partner withdrew it or consent was revoked, whatever its status
    *((status, S.withdrawn) for status in S if status is not S.withdrawn),
    # events that change no status: a tier rise of a linked account
    *((status, status) for status in WITH_ACCOUNT),
}


def test_the_table_allows_exactly_the_funnel_of_the_design() -> None:
    for from_status, to_status in product([None, *S], S):
        if (from_status, to_status) in EXPECTED:
            check(from_status, to_status)
        else:
            with pytest.raises(InvalidReferralTransition):
                check(from_status, to_status)


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [
        (S.eligible, S.funded),  # skips the account opening
        (S.converted, S.funded),  # the funnel never goes back
        (S.expired, S.eligible),  # an expired referral stays expired; the identity is free for a new one
        (S.existing_client, S.eligible),
        (S.duplicate, S.account_opened),  # a duplicate holds again first
        (S.withdrawn, S.eligible),  # withdrawal is final
        (None, S.eligible),  # a new referral is received first
        (S.eligible, S.eligible),  # an eligible referral has no account whose events could be noted
    ],
)
def test_a_sample_of_refused_transitions(from_status: ReferralStatus | None, to_status: ReferralStatus) -> None:
    with pytest.raises(InvalidReferralTransition):
        check(from_status, to_status)


async def _endpoint(client: httpx.AsyncClient, desk: PartnerDesk) -> None:
    body = {"url": "http://127.0.0.1:9/hooks", "event_types": ["referral.status_changed", "referral.expired"]}
    assert (await client.post("/v1/webhook-endpoints", json=body, headers=desk.caller.headers)).status_code == 201


async def _referral(client: httpx.AsyncClient, desk: PartnerDesk, session: AsyncSession) -> Referral:
    created = await client.post("/v1/referrals", json=individual(desk.program.id), headers=desk.headers())
    assert created.status_code == 201, created.text
    referral = await session.get(Referral, created.json()["id"])
    assert referral is not None and referral.status is S.eligible
    return referral


async def _state(session: AsyncSession, referral_id: str) -> dict[str, Any]:
    row = (
        await session.execute(
            select(Referral.status, Referral.outcome_at, Referral.client_ref).where(Referral.id == referral_id)
        )
    ).one()
    timeline = (
        await session.execute(
            select(ReferralEvent.from_status, ReferralEvent.to_status, ReferralEvent.cause)
            .where(ReferralEvent.referral_id == referral_id)
            .order_by(ReferralEvent.seq)
        )
    ).all()
    notices = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.payload["data"]["referral_id"].astext == referral_id)
    )
    return {"row": tuple(row), "timeline": [tuple(entry) for entry in timeline], "notices": notices}


def _change(referral: Referral, from_status: S, to_status: S, **fields: Any) -> StatusChange:
    return StatusChange(referral.id, referral.partner_id, from_status, to_status, "test", **fields)


@pytest.mark.parametrize(
    "changes",
    [
        [(S.eligible, S.funded)],  # not in the table
        [(S.eligible, S.account_opened)],  # an account opens only with the client account
        [(S.account_opened, S.funded)],  # allowed, but the referral is eligible: stale
        [(S.eligible, S.expired), (S.eligible, S.withdrawn)],  # the second step does not follow the first
        [(S.eligible, S.duplicate), (S.duplicate, S.account_opened)],  # a refused step inside a chain
    ],
)
async def test_a_refused_change_raises_and_writes_nothing(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, changes: list[tuple[S, S]]
) -> None:
    await _endpoint(client, bank)
    referral = await _referral(client, bank, session)
    before = await _state(session, referral.id)
    with pytest.raises(InvalidReferralTransition):
        await transition(session, [_change(referral, old, new) for old, new in changes], clock.now())
    assert await _state(session, referral.id) == before
    assert referral.status is S.eligible


async def test_a_chain_of_changes_is_written_with_its_timeline_and_notices(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    await _endpoint(client, bank)
    referral = await _referral(client, bank, session)
    opened_at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    now = clock.now()
    await transition(
        session,
        [
            _change(referral, S.eligible, S.account_opened, client_ref="C-77", at=opened_at),
            _change(referral, S.account_opened, S.funded),
            _change(referral, S.funded, S.funded),  # a tier rise: on the timeline, announced to nobody
            _change(referral, S.funded, S.converted),
        ],
        now,
    )
    state = await _state(session, referral.id)
    # Down the funnel a referral holds its person: no outcome yet, and it is linked to the client account.
    assert state["row"] == (S.converted, None, "C-77")
    assert state["timeline"][2:] == [
        (S.eligible, S.account_opened, "test"),
        (S.account_opened, S.funded, "test"),
        (S.funded, S.funded, "test"),
        (S.funded, S.converted, "test"),
    ]
    assert state["notices"] == 1 + 3  # received → eligible at intake, then the three status changes
    assert (referral.status, referral.client_ref) == (S.converted, "C-77")  # the session's object shows it

    later = now + timedelta(minutes=5)
    await transition(session, [_change(referral, S.converted, S.duplicate)], later)
    # The attribution moved away: the outcome is dated, and the account went with the attribution.
    assert (await _state(session, referral.id))["row"] == (S.duplicate, later, None)


async def test_an_outcome_is_dated_when_it_happened_and_expiry_is_announced_twice(
    client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession
) -> None:
    await _endpoint(client, bank)
    referral, other = await _referral(client, bank, session), await _referral(client, bank, session)
    happened = datetime(2026, 3, 2, 9, tzinfo=UTC)
    await transition(session, [_change(referral, S.eligible, S.existing_client, at=happened)], clock.now())
    assert (await _state(session, referral.id))["row"] == (S.existing_client, happened, None)

    assert other.identity_hash is not None
    far = clock.now() + timedelta(days=3650)
    assert await expire_stale_holders(session, far, [other.identity_hash]) == 1
    state = await _state(session, other.id)
    assert state["row"] == (S.expired, far, None)
    assert state["timeline"][-1] == (S.eligible, S.expired, "window_passed")
    assert state["notices"] == 1 + 2  # intake, then referral.status_changed and referral.expired


# Writes of a referral's status columns: SQL updates of the table, and assignments to a loaded row's columns.
_STATUS_WRITES = (
    re.compile(r"UPDATE\s+referrals\b", re.I),
    re.compile(r"Referral\.__table__[^\n]*\.update\(\)"),
    re.compile(r"update\(Referral\)(?:(?!\n\n).)*?\.values\([^)]*\b(?:status|outcome_at|client_ref)=", re.S),
    re.compile(
        r"^\s*(?:[\w.]+\s*,\s*)*\w*(?:referral|holder|target)\w*\.(?:status|outcome_at|client_ref)\b"
        r"(?:\s*,\s*[\w.]+)*\s*=(?!=)",
        re.M,
    ),
)


def test_only_the_transition_function_writes_a_referral_status() -> None:
    package = Path(app.__file__).parent
    writers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(pattern.search(path.read_text()) for pattern in _STATUS_WRITES)
    )
    assert writers == ["referrals/transitions.py"]
