"""The ledger side of an attribution move, whatever lines the old holder has: earnings, cap cuts, clawbacks. What
it still earned is reversed (its ledger nets to zero, nothing reversed twice), the monthly cap it used is given
back, and the new holder's lines follow its own schedule, caps and clawbacks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import Tenant
from app.fees.models import FeeRule
from app.referrals.models import Referral
from app.referrals.overrides import move_attribution
from app.referrals.schemas import ReferralCreate
from app.referrals.service import submit_referral
from tests.factories.referrals import individual, national_id
from tests.fees.conftest import ACTOR, RULES, START, Ledger, cny

E = Ledger.event
CAPPED = {**RULES, "caps": {"per_referral_fen": 30_000, "per_partner_month_fen": 45_000}}


async def _claim(ledger: Ledger, person: str) -> str:
    data = ReferralCreate.model_validate(individual(ledger.program_id, national_id=person))
    cipher = await ledger.keyring.cipher(ledger.session)
    submitted = await submit_referral(
        ledger.session, Tenant.of_partner(ledger.partner_id), data, cipher, ledger.keyring.index
    )
    return submitted.referral.id


async def _received_before_start(session: AsyncSession, *referral_ids: str) -> None:
    for referral_id in referral_ids:
        referral = await session.get(Referral, referral_id)
        assert referral is not None
        referral.created_at, referral.window_ends_at = START - timedelta(days=1), START + timedelta(days=90)
    await session.flush()


async def test_capped_and_clawed_lines_move_once_and_give_the_monthly_cap_back(
    make_ledger: Any, session: AsyncSession
) -> None:
    bank_a: Ledger = await make_ledger(CAPPED)
    bank_b: Ledger = await make_ledger(RULES)
    person = national_id()
    holder, later = await _claim(bank_a, person), await _claim(bank_b, person)
    assert (await session.get(Referral, later)).status == "duplicate"  # type: ignore[union-attr]
    await _received_before_start(session, holder, later)
    bundle = {"product_code": "BANK_WM_PLUS_EQUITY", **cny(100_000)}
    assert set(
        await bank_a.events(
            E("account_opened", "C-CAP", START, national_id=person),
            E("account_funded", "C-CAP", START + timedelta(hours=1), **cny(20_000)),
            E("bundle_purchased", "C-CAP", START + timedelta(hours=2), **bundle),
            E("bundle_cancelled", "C-CAP", START + timedelta(hours=3), **bundle),
        )
    ) == {"applied"}
    rules = {str(line.rule) for line in await bank_a.lines(holder)}
    assert {"funded_bounty", "bundle_fee", "cap", "clawback"} <= rules  # 40,000 capped to 10,000, then clawed back

    moved = await move_attribution(session, ACTOR, later, "consent evidence of bank B predates")
    assert moved.moved and moved.previous_holder is not None and moved.previous_holder.id == holder

    lines = await bank_a.lines(holder)
    for line in lines:
        await session.refresh(line)
    assert sum(line.amount_fen for line in lines) == 0
    assert sum(line.amount_fen for line in lines if line.status != "reversed") == 0
    reversals = [line for line in lines if line.rule is FeeRule.attribution_moved]
    by_id = {line.id: line for line in lines}
    # Only the bounty still stood: the capped bundle fee had been clawed back with its cut.
    assert [(by_id[line.reverses_id or ""].rule, line.amount_fen) for line in reversals] == [
        (FeeRule.funded_bounty, -20_000)
    ]
    # B's own schedule, no caps: its bounty and bundle fee, and its own clawback of the cancelled bundle.
    b_lines = await bank_b.lines(later)
    assert sorted((str(line.rule), line.amount_fen) for line in b_lines) == sorted(
        [("funded_bounty", 20_000), ("bundle_fee", 40_000), ("clawback", -40_000)]
    )

    # The moved bounty no longer counts against A's monthly cap: A's next client this month earns in full.
    second = national_id()
    other = await _claim(bank_a, second)
    await _received_before_start(session, other)
    await bank_a.events(
        E("account_opened", "C-CAP-2", START + timedelta(days=1), national_id=second),
        E("account_funded", "C-CAP-2", START + timedelta(days=1, hours=1), **cny(20_000)),
    )
    assert [(str(line.rule), line.amount_fen) for line in await bank_a.lines(other)] == [("funded_bounty", 20_000)]
