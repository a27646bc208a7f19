"""One mobile number on several identities; the same consent evidence on many clients."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import Settings
from app.core.partner_filter import PartnerFilter
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, consent, mobile
from tests.risk.conftest import run_signals, submit, without_personal_data
from tests.risk.outcomes import Books, hold_then_close_case, submit_people


async def test_one_mobile_on_three_identities_of_one_partner(
    manager: Caller,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    shared = mobile()
    people = await submit_people(client, bank, 3, mobile=shared)
    ids = list(people)
    for _ in range(3):  # other mobiles, and another partner's clients each with a number of their own
        await submit(client, bank)
        await submit(client, other_bank)

    found = [
        signal for signal in await run_signals(client, manager, session, settings) if signal.kind == "shared_mobile"
    ]

    assert [(signal.partner_id, signal.referral_ids) for signal in found] == [(bank.partner.id, tuple(ids))]
    evidence = found[0].evidence
    observed = evidence["observed"]
    assert observed["scope"] == "within_partner"
    assert observed["identities"] == observed["identities_at_partner"] == 3 and observed["partners"] == 1
    assert evidence["thresholds"]["identities_per_mobile"] == settings.risk_shared_mobile_identities
    without_personal_data(evidence, shared, shared[:3] + "****" + shared[-4:], shared[-4:] + '"')
    assert await run_signals(client, manager, session, settings) == []  # found again on the next look: the same signal

    await hold_then_close_case(Books(client, session, caller), bank, found[0], "cleared", earn=people)


async def test_one_mobile_across_partners(
    manager: Caller,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    shared = mobile()
    people = await submit_people(client, bank, 2, mobile=shared)
    at_bank = list(people)
    at_other = [(await submit(client, other_bank, mobile=shared))["id"]]
    two_only = mobile()  # two identities on one number: a family's phone, not a signal
    await submit(client, bank, mobile=two_only)
    await submit(client, other_bank, mobile=two_only)

    found = {
        signal.partner_id: signal
        for signal in await run_signals(client, manager, session, settings)
        if signal.kind == "shared_mobile"
    }

    assert set(found) == {bank.partner.id, other_bank.partner.id}
    assert found[bank.partner.id].referral_ids == tuple(at_bank)
    assert found[other_bank.partner.id].referral_ids == tuple(at_other)
    for signal in found.values():
        assert signal.evidence["observed"]["scope"] == "across_partners"
        assert signal.evidence["observed"]["identities"] == 3 and signal.evidence["observed"]["partners"] == 2
    assert found[bank.partner.id].evidence["items"] == found[other_bank.partner.id].evidence["items"]

    await hold_then_close_case(Books(client, session, caller), bank, found[bank.partner.id], "confirmed", earn=people)


async def test_consent_evidence_reused_across_clients(
    manager: Caller,
    client: httpx.AsyncClient,
    caller: CallerFactory,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    settings: Settings,
    manual_clock: clock.ManualClock,
) -> None:
    captured = (clock.now().replace(microsecond=0)).isoformat()
    one_record = consent(evidence_ref="SIG-0001", captured_at=captured)
    people = await submit_people(client, bank, 5, evidence=one_record)
    same_record = list(people)
    # Another partner: one notice, the same capture second, five records: the second betrays a copied form.
    same_second = [
        (await submit(client, other_bank, evidence=consent(evidence_ref=f"SIG-{n}", captured_at=captured)))["id"]
        for n in range(5)
    ]
    for _ in range(4):  # four clients on one record: under the threshold
        await submit(client, bank, evidence=consent(evidence_ref="SIG-0002", captured_at="2026-11-02T09:00:00Z"))

    found = {
        signal.partner_id: signal
        for signal in await run_signals(client, manager, session, settings)
        if signal.kind == "reused_consent"
    }

    assert set(found) == {bank.partner.id, other_bank.partner.id}
    assert found[bank.partner.id].referral_ids == tuple(same_record)
    assert found[bank.partner.id].evidence["observed"]["matched_on"] == ["evidence_ref", "notice_second"]
    assert found[bank.partner.id].evidence["observed"]["clients"] == 5
    assert found[other_bank.partner.id].referral_ids == tuple(same_second)
    assert found[other_bank.partner.id].evidence["observed"]["matched_on"] == ["notice_second"]
    without_personal_data(found[bank.partner.id].evidence, "SIG-0001")

    await hold_then_close_case(Books(client, session, caller), bank, found[bank.partner.id], "cleared", earn=people)


async def test_a_test_clock_s_run_raises_its_own_partner_s_signals_only(
    manager: Caller,
    client: httpx.AsyncClient,
    bank: PartnerDesk,
    other_bank: PartnerDesk,
    session: AsyncSession,
    settings: Settings,
) -> None:
    for desk in (bank, other_bank):  # each partner: one number on three identities
        shared = mobile()
        for _ in range(3):
            await submit(client, desk, mobile=shared)

    # As a sandbox test clock's advance runs the jobs: for its partner alone, with a look of its own.
    just_bank = await run_signals(client, manager, session, settings, partners=PartnerFilter.just(bank.partner.id))
    assert [(signal.kind, signal.partner_id) for signal in just_bank] == [("shared_mobile", bank.partner.id)]
    # The real-time run (every partner without a clock) has not looked yet: it finds the other bank's.
    others = await run_signals(client, manager, session, settings, partners=PartnerFilter.all_but([bank.partner.id]))
    assert [(signal.kind, signal.partner_id) for signal in others] == [("shared_mobile", other_bank.partner.id)]
