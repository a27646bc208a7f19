"""A month closed by a test clock's advance leaves out the lines of a referral under a risk review, as a staff
close does, and the advance says so: how many lines, how much, for the partner only — "under review", never the
signal behind it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.conversions.service import ingest_events
from app.core import clock
from tests.conftest import CallerFactory
from tests.factories.referrals import individual, national_id
from tests.fees import conftest as fees_fixtures
from tests.fees.conftest import Ledger, cny
from tests.risk.reviewed import lines_of, review

make_ledger = fees_fixtures.make_ledger  # a bank with a program and an active fee schedule (the fixture)
T0 = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)
PAST_FEBRUARY = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 on 1 March in Beijing: January and February ended


async def test_an_advance_over_a_month_end_says_which_lines_it_left_out_under_review(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_ledger: Any,
    caller: CallerFactory,
    manual_clock: clock.ManualClock,
) -> None:
    manual_clock.move_to(T0 - timedelta(hours=1))
    ledger: Ledger = await make_ledger()
    bank = await caller("partner", partner=await session.get(Partner, ledger.partner_id))
    moved = await client.post("/v1/sandbox/clock/advance", json={"to": T0.isoformat()}, headers=bank.headers)
    assert moved.status_code == 200, moved.text
    referral_ids = {}
    for ref in ("R1", "R2"):  # both open and fund an account at once: a bounty each, held 30 days
        person = national_id()
        body = individual(ledger.program_id, external_ref=ref, national_id=person)
        body["consent"]["captured_at"] = T0.isoformat()
        created = await client.post("/v1/referrals", json=body, headers={**bank.headers, "Idempotency-Key": ref})
        assert created.status_code == 201, created.text
        referral_ids[ref] = created.json()["id"]
        events = [
            Ledger.event("account_opened", f"C-{ref}", T0, national_id=person),
            Ledger.event("account_funded", f"C-{ref}", T0, **cny(20_000)),
        ]
        assert [r.result for r in await ingest_events(session, ledger.keyring.index, events, now=T0)] == [
            "applied",
            "applied",
        ]
    reviewed, other = referral_ids["R1"], referral_ids["R2"]
    case = await review(session, ledger.partner_id, reviewed, f"sandbox-review:{reviewed}", T0)
    await session.flush()

    answer = await client.post(
        "/v1/sandbox/clock/advance", json={"to": PAST_FEBRUARY.isoformat()}, headers=bank.headers
    )

    assert answer.status_code == 200, answer.text
    closes = {close["period"]: close for close in answer.json()["months_closed"]}
    assert list(closes) == ["2027-01", "2027-02"]
    assert closes["2027-01"]["under_review"]["lines"] == 0  # nothing due yet: the bounties are held until February
    held = await lines_of(session, reviewed)
    assert held and all(line.statement_id is None for line in held)
    assert closes["2027-02"]["under_review"] == {
        "lines": len(held),
        "amount_fen": sum(line.amount_fen for line in held),
        "currency": "CNY",
        "partners": 1,
    }
    assert closes["2027-02"]["under_review"]["amount_fen"] > 0
    [statement_id] = closes["2027-02"]["statement_ids"]
    on_it = await lines_of(session, other)
    assert on_it and {line.statement_id for line in on_it} == {statement_id}
    finance = await caller("staff", role="finance")  # a draft: finance reads it
    statement = await client.get(f"/v1/finance/statements/{statement_id}", headers=finance.headers)
    assert statement.status_code == 200, statement.text
    assert statement.json()["line_count"] == len(on_it)
    assert statement.json()["lines_total_fen"] == sum(line.amount_fen for line in on_it)
    lines = await client.get(f"/v1/finance/statements/{statement_id}/lines", headers=finance.headers)
    assert lines.status_code == 200, lines.text
    assert reviewed not in lines.text and other in lines.text
    # The partner learns "under review", never why: neither the case nor the signal.
    said = json.dumps(answer.json())
    assert case.id not in said and "funded_then_emptied" not in said and "risk" not in said
