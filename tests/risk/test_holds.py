"""While a case is open its referrals' fee lines stay off statements — those written before the signal and those
accrued after — and the close says so; cleared, they go into the next close; confirmed, they are reversed
(``risk_confirmed``) and the referrals rejected, on their timelines, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.models import AuditEvent
from app.catalog.models import Partner
from app.core import clock
from app.core.business_time import month_named
from app.fees import finance_views, statements
from app.fees.engine import release_held
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from app.referrals.models import Referral, ReferralEvent, ReferralStatus
from app.risk import service as risk
from app.risk.schemas import CaseOutcome, CaseStatus, Signal, SignalKind
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.fees.conftest import ACTOR, START, Ledger, cny
from tests.risk.reviewed import funded, lines_of

E = Ledger.event
FEB_CLOSE = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # after February ended, Beijing time
MAR_CLOSE = datetime(2026, 4, 2, 2, 0, tzinfo=UTC)
MANAGER = type(ACTOR)(id="person:li.manager", kind="staff")


async def _under_review(ledger: Ledger, session: AsyncSession) -> tuple[str, str, str]:
    """Two funded referrals; a signal names the first, then it buys a bundle (a line accrued while the case is
    open); February closes. Returns (case id, the reviewed referral, the other)."""
    reviewed, other = await funded(ledger, "C-R1"), await funded(ledger, "C-R2")
    with clock.scoped(clock.FrozenClock(START + timedelta(days=1))):
        case = await risk.raise_signal(
            session,
            Signal(
                kind=SignalKind.funded_then_emptied,
                partner_id=ledger.partner_id,
                referral_ids=(reviewed,),
                evidence={"thresholds": {"days": 30}, "observed": {"days": 2}, "items": [reviewed]},
                fingerprint=f"fte:{reviewed}",
            ),
        )
    bundle = {"product_code": "BANK_WM_PLUS_EQUITY", **cny(100_000)}
    assert await ledger.events(E("bundle_purchased", "C-R1", START + timedelta(days=2), **bundle)) == ["applied"]
    closed = await statements.close_period(session, ACTOR, "2026-02", FEB_CLOSE)
    held = await lines_of(session, reviewed)
    assert {line.rule for line in held} == {FeeRule.funded_bounty, FeeRule.bundle_fee}
    assert all(line.statement_id is None and line.status is AccrualStatus.pending for line in held)  # on hold
    assert (closed.under_review.lines, closed.under_review.amount_fen) == (2, sum(line.amount_fen for line in held))
    [statement] = closed.statements
    assert statement.line_count == 1  # the other referral's bounty only
    assert all(line.statement_id == statement.id for line in await lines_of(session, other))
    return case.id, reviewed, other


async def test_an_open_case_keeps_its_lines_off_the_close_and_clearing_releases_them(
    make_ledger: Any, session: AsyncSession
) -> None:
    ledger: Ledger = await make_ledger()
    case_id, reviewed, _ = await _under_review(ledger, session)
    file = await risk.case_file(session, case_id)
    assert file.lines_held_fen == sum(line.amount_fen for line in file.lines) > 0

    with clock.scoped(clock.FrozenClock(FEB_CLOSE + timedelta(days=1))):
        closing = await risk.close_case(session, MANAGER, case_id, CaseOutcome.cleared, "Client confirmed by phone")
    assert closing.case.status is CaseStatus.closed and closing.case.outcome is CaseOutcome.cleared
    march = await statements.close_period(session, ACTOR, "2026-03", MAR_CLOSE)
    assert march.under_review.lines == 0
    [statement] = march.statements
    assert {line.statement_id for line in await lines_of(session, reviewed)} == {statement.id}
    referral = await session.get(Referral, reviewed, populate_existing=True)
    assert referral is not None and referral.status is not ReferralStatus.rejected


async def test_confirming_reverses_the_lines_and_rejects_the_referrals(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    case_id, reviewed, other = await _under_review(ledger, session)
    endpoint = WebhookEndpoint(
        partner_id=ledger.partner_id,
        url="https://partner.example/hooks",
        event_types=["referral.status_changed"],
        sealed_secret=b"not used by this test",
    )
    session.add(endpoint)
    await session.flush()

    with clock.scoped(clock.FrozenClock(FEB_CLOSE + timedelta(days=1))):
        closing = await risk.close_case(session, MANAGER, case_id, CaseOutcome.confirmed, "Accounts emptied at once")
    lines = await lines_of(session, reviewed)
    reversals = [line for line in lines if line.rule is FeeRule.risk_confirmed]
    assert len(reversals) == 2 and closing.reversed_lines == 2
    assert sum(line.amount_fen for line in lines) == 0 and closing.reversed_fen < 0
    assert {line.status for line in lines} == {AccrualStatus.reversed}  # never paid: cancelled with its reversal
    assert closing.rejected_referrals == [reviewed]
    referral = await session.get(Referral, reviewed, populate_existing=True)
    assert referral is not None and referral.status is ReferralStatus.rejected
    causes = (
        await session.scalars(select(col(ReferralEvent.cause)).where(col(ReferralEvent.referral_id) == reviewed))
    ).all()
    assert causes[-1] == "risk_confirmed"
    notices: Any = (
        await session.scalars(
            select(col(WebhookDelivery.payload)).where(
                col(WebhookDelivery.partner_id) == ledger.partner_id,
                col(WebhookDelivery.event_type) == "referral.status_changed",
            )
        )
    ).all()
    rejected_notice = [payload for payload in notices if "rejected" in str(payload)]
    assert len(rejected_notice) == 1 and "risk_confirmed" in str(rejected_notice[0])
    assert "funded_then_emptied" not in str(rejected_notice[0]) and "emptied" not in str(rejected_notice[0])
    audit = (
        await session.scalars(
            select(AuditEvent).where(col(AuditEvent.object_id) == case_id, col(AuditEvent.action) == "risk_case.closed")
        )
    ).one()
    assert audit.actor_id == MANAGER.id and audit.details["outcome"] == "confirmed"
    assert audit.details["reason"] == "Accounts emptied at once"

    march = await statements.close_period(session, ACTOR, "2026-03", MAR_CLOSE)
    assert march.statements == [] or all(s.line_count == 0 for s in march.statements)
    other_referral = await session.get(Referral, other, populate_existing=True)
    assert other_referral is not None and other_referral.status is not ReferralStatus.rejected


async def test_a_closed_case_cannot_be_closed_again(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    case_id, _, _ = await _under_review(ledger, session)
    await risk.close_case(session, MANAGER, case_id, CaseOutcome.cleared, "fine")
    try:
        await risk.close_case(session, MANAGER, case_id, CaseOutcome.confirmed, "changed my mind")
    except risk.CaseClosed:
        pass
    else:
        raise AssertionError("a closed case was closed again")


async def test_the_partner_learns_only_that_lines_are_under_review(
    make_ledger: Any, session: AsyncSession, client: Any, caller: Any
) -> None:
    ledger: Ledger = await make_ledger()
    await _under_review(ledger, session)
    [february] = (await statements.close_period(session, ACTOR, "2026-02", FEB_CLOSE)).statements
    await statements.issue(session, ACTOR, february.id, FEB_CLOSE)
    await session.flush()
    partner = await caller("partner", partner=await session.get(Partner, ledger.partner_id))
    read = await client.get(f"/v1/statements/{february.id}", headers=partner.headers)
    assert read.status_code == 200
    under_review = read.json()["under_review"]
    assert under_review["lines"] == 2 and under_review["amount_fen"] > 0 and under_review["currency"] == "CNY"
    assert "funded_then_emptied" not in read.text and "signal" not in read.text and "rsk_" not in read.text


async def test_the_close_preview_counts_the_lines_under_review_apart(make_ledger: Any, session: AsyncSession) -> None:
    ledger: Ledger = await make_ledger()
    reviewed, other = await funded(ledger, "C-P1"), await funded(ledger, "C-P2")
    await statements.create_adjustment(
        session,
        ACTOR,
        partner_id=ledger.partner_id,
        amount_fen=500,
        external_ref="ADJ-1",
        reason="goodwill",
        now=START + timedelta(days=2),
    )
    await risk.raise_signal(
        session,
        Signal(kind=SignalKind.shared_mobile, partner_id=ledger.partner_id, referral_ids=(reviewed,), fingerprint="p"),
    )
    month = month_named("2026-02")
    assert month is not None
    preview = await finance_views.close_preview(session, month)
    bounty = sum(line.amount_fen for line in await lines_of(session, other))
    [mine] = [partner for partner in preview.partners if partner.partner_id == ledger.partner_id]
    assert (mine.lines, mine.amount_fen) == (2, bounty + 500)  # the other referral's bounty and the adjustment
    held = sum(line.amount_fen for line in await lines_of(session, reviewed))
    assert (preview.under_review_count, preview.under_review_fen) == (1, held)


async def test_a_held_line_stays_on_hold_past_its_hold_period_until_the_case_is_cleared(
    make_ledger: Any, session: AsyncSession
) -> None:
    ledger: Ledger = await make_ledger()
    reviewed, other = await funded(ledger, "C-H1"), await funded(ledger, "C-H2")
    with clock.scoped(clock.FrozenClock(START + timedelta(days=1))):
        case = await risk.raise_signal(
            session,
            Signal(
                kind=SignalKind.shared_mobile, partner_id=ledger.partner_id, referral_ids=(reviewed,), fingerprint="h"
            ),
        )
    [held_line] = await lines_of(session, reviewed)
    [free_line] = await lines_of(session, other)
    long_after = max(held_line.hold_until, free_line.hold_until) + timedelta(days=1)

    released = await release_held(session, long_after)
    assert released >= 1
    assert (await _status(session, free_line.id), await _status(session, held_line.id)) == (
        AccrualStatus.payable,
        AccrualStatus.pending,  # its hold period is over, but the case is open
    )

    with clock.scoped(clock.FrozenClock(long_after)):
        await risk.close_case(session, MANAGER, case.id, CaseOutcome.cleared, "Checked with the branch")
    await release_held(session, long_after + timedelta(minutes=1))
    assert await _status(session, held_line.id) is AccrualStatus.payable


async def _status(session: AsyncSession, line_id: str) -> AccrualStatus:
    line = await session.get(FeeAccrual, line_id, populate_existing=True)
    assert line is not None
    return line.status
