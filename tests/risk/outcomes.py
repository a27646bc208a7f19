"""After a signal opens its case: the fee lines of the referrals it names stay out of the next month close, and
closing the case does what its outcome says in the ledger (DESIGN.md, "Risk") — ``cleared`` puts the lines on the
partner's next statement; ``confirmed`` reverses each by a ``risk_confirmed`` line and rejects the referrals.

Driven as the people would: the back office reports through the feed, finance closes the months, an alliance
manager closes the case, the partner reads its statements and referrals. The clock moves forward past each month's
end, so a month is closed once it has ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.schemas import FeeRules, FeeScheduleCreate
from app.core import clock
from app.core.business_time import Month, month_of
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, national_id
from tests.fees.conftest import RULES
from tests.risk.conftest import Raised, cny, event, report, submit

Outcome = Literal["cleared", "confirmed"]
FUNDING_YUAN = 200_000  # above the bounty's minimum assets: one funded bounty per account


@dataclass(frozen=True)
class Books:
    """The test's app, database session and principals' factory."""

    client: httpx.AsyncClient
    session: AsyncSession
    caller: CallerFactory


async def submit_people(client: httpx.AsyncClient, desk: PartnerDesk, count: int, **fields: Any) -> dict[str, str]:
    """``count`` referrals of new people (``fields`` as ``submit`` takes them): referral id → national id, in order."""
    people = {}
    for _ in range(count):
        person = national_id()
        people[(await submit(client, desk, national_id=person, **fields))["id"]] = person
    return people


async def pay_fees(session: AsyncSession, desk: PartnerDesk) -> None:
    """Give the desk's program a fee schedule in force (a funded bounty; no bundle fees), unless it has one."""
    if desk.program.id in await catalog.schedules_in_force(session, [desk.program.id]):
        return
    actor = Actor.system("test")
    schedule = await catalog.create_fee_schedule(
        session,
        actor,
        FeeScheduleCreate(
            program_id=desk.program.id,
            effective_from=desk.program.effective_from,
            rules=FeeRules.model_validate({**RULES, "bundle_fees": []}),
        ),
    )
    await catalog.activate_fee_schedule(session, actor, schedule.id)


async def _earn(books: Books, desk: PartnerDesk, people: Mapping[str, str]) -> None:
    """Each referral's person opens an account and funds it, through the feed: one funded bounty each."""
    await pay_fees(books.session, desk)
    manual = clock.current()
    assert isinstance(manual, clock.ManualClock)
    manual.advance(timedelta(minutes=1))  # the accounts open after the referrals
    events = []
    for referral_id, person in people.items():
        events += [
            event("account_opened", f"EARN-{referral_id}", national_id=person),
            event("account_funded", f"EARN-{referral_id}", **cny(FUNDING_YUAN)),
        ]
    await report(books.client, await books.caller("back_office"), *events)


async def _close(books: Books, month: Month) -> dict[str, Any]:
    """Finance closes ``month`` just after it ended."""
    manual = clock.current()
    assert isinstance(manual, clock.ManualClock)
    manual.move_to(month.end + timedelta(minutes=1))
    finance = await books.caller("staff", role="finance")
    closed = await books.client.post(f"/v1/finance/periods/{month.name}/close", headers=finance.headers)
    assert closed.status_code == 200, closed.text
    return dict(closed.json())


async def _statement_lines(books: Books, desk: PartnerDesk, closed: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines on the partner's (draft) statements of the close, as finance reads them."""
    finance = await books.caller("staff", role="finance")
    lines = []
    for statement in closed["statements"]:
        if statement["partner_id"] == desk.partner.id:
            read = await books.client.get(
                f"/v1/finance/statements/{statement['id']}/lines", params={"limit": "200"}, headers=finance.headers
            )
            assert read.status_code == 200, read.text
            assert read.json()["next_cursor"] is None
            lines += read.json()["data"]
    return lines


def _of(lines: list[dict[str, Any]], referral_ids: tuple[str, ...]) -> set[str]:
    return {line["id"] for line in lines if line["referral_id"] in referral_ids}


async def hold_then_close_case(
    books: Books, desk: PartnerDesk, raised: Raised, outcome: Outcome, *, earn: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The signal's referrals (each with a fee line due: ``earn`` maps those still without one to their person's
    national id, whose account the feed then opens and funds) are held out of the close of the month their lines
    fall due in; then the case is closed with ``outcome``, and the ledger does what it says. Returns what that
    first close answered."""
    assert raised.partner_id == desk.partner.id
    named = raised.referral_ids
    if earn:
        assert set(earn) <= set(named)
        await _earn(books, desk, earn)
    due = [line for line in await _ledger(books.session, named) if _still_due(line)]
    assert {line.referral_id for line in due} == set(named), "every named referral has a line due"
    for referral_id in earn or {}:
        assert [line.rule for line in due if line.referral_id == referral_id] == [FeeRule.funded_bounty]
    due_ids = {line.id for line in due}
    # A line is recorded by now and due a hold period later: inside this month.
    month = month_of(clock.now() + timedelta(days=desk.program.hold_period_days))

    held = await _close(books, month)
    assert held["under_review"]["lines"] == len(due)
    assert held["under_review"]["amount_fen"] == sum(line.amount_fen for line in due)
    assert _of(await _statement_lines(books, desk, held), named) == set()

    manager = await books.caller("staff", role="alliance_manager")
    closing = await books.client.post(
        f"/v1/admin/risk-cases/{raised.case_id}/close",
        json={"outcome": outcome, "reason": f"Reviewed: {outcome}"},
        headers={**manager.headers, "Idempotency-Key": f"close-{raised.case_id}"},
    )
    assert closing.status_code == 200, closing.text
    assert (closing.json()["status"], closing.json()["outcome"]) == ("closed", outcome)

    if outcome == "confirmed":
        lines = await _ledger(books.session, named)
        reversals = {(line.reverses_id, line.amount_fen) for line in lines if line.rule is FeeRule.risk_confirmed}
        assert reversals == {(line.id, -line.amount_fen) for line in due}
        assert len([line for line in lines if line.rule is FeeRule.risk_confirmed]) == len(due)
        for referral_id in named:
            read = await books.client.get(f"/v1/referrals/{referral_id}", headers=desk.caller.headers)
            assert read.status_code == 200, read.text
            assert read.json()["status"] == "rejected"

    after = await _close(books, month_of(month.end))
    assert after["under_review"]["lines"] == 0
    on_statement = _of(await _statement_lines(books, desk, after), named)
    assert on_statement == (due_ids if outcome == "cleared" else set())
    return held


async def _ledger(session: AsyncSession, referral_ids: tuple[str, ...]) -> list[FeeAccrual]:
    """Every ledger line of these referrals, as stored (held lines and their reversals reach no statement)."""
    query = select(FeeAccrual).where(col(FeeAccrual.referral_id).in_(referral_ids)).order_by(col(FeeAccrual.id))
    return list((await session.scalars(query.execution_options(populate_existing=True))).all())


def _still_due(line: FeeAccrual) -> bool:
    return line.status is not AccrualStatus.reversed and line.statement_id is None
