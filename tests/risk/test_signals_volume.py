"""A partner's referral rate far above its own trailing baseline; a rejection or existing-client rate far above
its peers' in the same month."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.business_time import month_of
from app.core.config import Settings
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, consent, national_id
from tests.risk.conftest import run_signals, submit
from tests.risk.outcomes import Books, hold_then_close_case, submit_people

BURST: dict[str, Any] = {"risk_burst_min_referrals": 8, "risk_burst_factor": 3.0}


async def test_a_burst_far_above_the_partners_own_busiest_day(
    manager: Caller,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    make_desk: Any,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    now = manual_clock.now()
    manual_clock.move_to(now - timedelta(days=100))  # the partners' first referrals, before the baseline period
    bursting, steady = await make_desk(name="突发银行"), await make_desk(name="平稳银行")
    for desk in (bursting, steady):
        await submit(client, desk)
        manual_clock.move_to(now - timedelta(days=40))
        for _ in range(3):  # its busiest day of the baseline: three
            await submit(client, desk)
        manual_clock.move_to(now - timedelta(days=100))
    manual_clock.move_to(now)
    people = await submit_people(client, bursting, 10)  # more than 3 times 3
    burst = list(people)
    for _ in range(9):  # three times its busiest day: not more
        await submit(client, steady)

    found = [
        signal
        for signal in await run_signals(client, manager, session, settings, **BURST)
        if signal.kind == "referral_burst"
    ]

    assert [(signal.partner_id, set(signal.referral_ids)) for signal in found] == [(bursting.partner.id, set(burst))]
    evidence = found[0].evidence
    assert evidence["observed"]["referrals_in_window"] == 10 and evidence["observed"]["baseline_busiest_window"] == 3
    assert evidence["thresholds"]["factor"] == 3.0 and evidence["thresholds"]["min_referrals"] == 8

    await hold_then_close_case(Books(client, session, caller), bursting, found[0], "confirmed", earn=people)


async def test_a_new_partners_first_intake_is_not_a_burst(
    manager: Caller, client: httpx.AsyncClient, bank: PartnerDesk, session: AsyncSession, settings: Settings
) -> None:
    for _ in range(10):
        await submit(client, bank)
    assert [
        s for s in await run_signals(client, manager, session, settings, **BURST) if s.kind == "referral_burst"
    ] == []


async def test_an_existing_client_rate_far_above_the_peers(
    manager: Caller, client: httpx.AsyncClient, make_desk: Any, feed: Caller, session: AsyncSession, settings: Settings
) -> None:
    known = [national_id() for _ in range(3)]
    registered = await client.post(
        "/v1/client-registry",
        json={"clients": [{"national_id": number, "opened_on": "2020-01-01"} for number in known]},
        headers=feed.headers,
    )
    assert registered.status_code == 200, registered.text
    outlier, peer, other_peer = [await make_desk(name=f"银行{n}") for n in range(3)]
    answers = [await submit(client, outlier, national_id=number) for number in known]
    answers += [await submit(client, outlier) for _ in range(3)]
    assert [answer["status"] for answer in answers].count("existing_client") == 3
    for desk in (peer, other_peer):
        for _ in range(6):
            await submit(client, desk)

    found = [
        signal
        for signal in await run_signals(client, manager, session, settings, risk_outlier_min_referrals=5)
        if signal.kind == "outlier_rates" and signal.partner_id in {outlier.partner.id, peer.partner.id}
    ]

    assert [(signal.partner_id, signal.evidence["observed"]["metric"]) for signal in found] == [
        (outlier.partner.id, "existing_client_rate")
    ]
    observed = found[0].evidence["observed"]
    assert observed["month"] == month_of(clock.now()).name
    assert observed["received"] == 6 and observed["count"] == 3 and observed["rate_bp"] == 5000
    assert observed["peer_rate_bp"] * settings.risk_outlier_factor <= 5000
    assert set(found[0].referral_ids) == {answer["id"] for answer in answers if answer["status"] == "existing_client"}


async def test_a_rejection_rate_far_above_the_peers(
    manager: Caller,
    client: httpx.AsyncClient,
    make_desk: Any,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    # A referral is rejected when a manager confirms a risk case that names it, days after it arrived: the month's
    # referrals were looked at long before their rejections.
    manual_clock.move_to(month_of(clock.now()).start + timedelta(days=10, hours=3))
    outlier, peer, other_peer = [await make_desk(name=f"驳回银行{n}") for n in range(3)]
    one_record = consent(evidence_ref="SIG-REJECT-1", captured_at=(clock.now() - timedelta(minutes=30)).isoformat())
    copied = [(await submit(client, outlier, evidence=one_record))["id"] for _ in range(5)]
    for _ in range(5):
        await submit(client, outlier)
    for desk in (peer, other_peer):
        for _ in range(10):
            await submit(client, desk)
    thresholds = {"risk_outlier_min_referrals": 5}
    manual_clock.advance(timedelta(hours=1))  # the worker's look, after the referrals arrived
    first = [
        signal
        for signal in await run_signals(client, manager, session, settings, **thresholds)
        if signal.partner_id in {outlier.partner.id, peer.partner.id, other_peer.partner.id}
    ]
    [reused] = first
    assert reused.kind == "reused_consent" and set(reused.referral_ids) == set(copied)

    manual_clock.advance(timedelta(days=1))
    closed = await client.post(
        f"/v1/admin/risk-cases/{reused.case_id}/close",
        json={"outcome": "confirmed", "reason": "同一授权凭证用于5名客户"},
        headers={**manager.headers, "Idempotency-Key": "reject-the-copied"},
    )
    assert closed.status_code == 200, closed.text
    for referral_id in copied:
        read = await client.get(f"/v1/referrals/{referral_id}", headers=outlier.headers())
        assert read.status_code == 200 and read.json()["status"] == "rejected", read.text
    manual_clock.advance(timedelta(hours=1))

    found = [
        signal
        for signal in await run_signals(client, manager, session, settings, **thresholds)
        if signal.kind == "outlier_rates"
        and signal.partner_id in {outlier.partner.id, peer.partner.id, other_peer.partner.id}
    ]

    assert [(signal.partner_id, signal.evidence["observed"]["metric"]) for signal in found] == [
        (outlier.partner.id, "rejection_rate")
    ]
    assert set(found[0].referral_ids) == set(copied) and found[0].case_id != reused.case_id
    observed, limits = found[0].evidence["observed"], found[0].evidence["thresholds"]
    assert observed["month"] == month_of(clock.now()).name
    assert (observed["received"], observed["count"], observed["rate_bp"]) == (10, 5, 5000)
    assert (observed["peer_received"], observed["peer_count"], observed["peer_rate_bp"]) == (20, 0, 0)
    assert limits == {
        "factor": settings.risk_outlier_factor,
        "min_rate_bp": settings.risk_outlier_min_rate_bp,
        "min_referrals": 5,
    }
