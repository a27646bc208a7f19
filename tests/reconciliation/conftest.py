from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.fees.models import FeeRule
from app.referrals.models import Referral, ReferralKind, ReferralStatus
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import make_program
from tests.reconciliation.books import MARCH, Finance, book, subscribe

FEBRUARY = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)


@dataclass
class Desk:
    """A partner with an issued March statement, its token, and finance's: ``finance`` issued it, ``checker`` (a
    second finance client) approves it (four eyes)."""

    client: httpx.AsyncClient
    partner: Partner
    caller: Caller
    finance: Finance
    checker: Finance
    statement_id: str
    referrals: dict[str, Referral]

    async def upload(
        self,
        lines: list[dict[str, Any]] | str,
        expect: int = 201,
        statement_id: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        path = f"/v1/statements/{statement_id or self.statement_id}/claims"
        if isinstance(lines, str):
            headers = {**self.caller.headers, "Content-Type": "text/csv"}
            response = await self.client.post(path, content=lines.encode(), headers=headers, params=params)
        else:
            response = await self.client.post(path, json={"lines": lines}, headers=self.caller.headers, params=params)
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def reconciliation(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/statements/{self.statement_id}/reconciliation", params=params, headers=self.caller.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        page = await self.reconciliation(limit=500)
        return {(item["external_ref"], item["fee_type"]): item for item in page["data"]}

    async def dispute(self, reasons: dict[str, str], expect: int = 200) -> dict[str, Any]:
        body = {"items": [{"item_id": item_id, "reason": reason} for item_id, reason in reasons.items()]}
        response = await self.client.post(
            f"/v1/statements/{self.statement_id}/disputes", json=body, headers=self.caller.headers
        )
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def resolve(self, item_id: str, resolution: str, note: str = "checked", expect: int = 200) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/finance/reconciliation-items/{item_id}/resolve",
            json={"resolution": resolution, "note": note},
            headers=self.finance.caller.headers,
        )
        assert response.status_code == expect, response.text
        return dict(response.json())


# (reference, status): the partner's referrals; the statement's lines are booked on some of them.
REFERRALS = {
    "M-1": ReferralStatus.funded,
    "M-2": ReferralStatus.funded,
    "M-3": ReferralStatus.converted,
    "M-4": ReferralStatus.funded,
    "M-5": ReferralStatus.funded,
    "M-6": ReferralStatus.funded,
    "X-EXP": ReferralStatus.expired,
    "X-DUP": ReferralStatus.duplicate,
    "X-EXIST": ReferralStatus.existing_client,
    "X-REJ": ReferralStatus.rejected,
    "X-WD": ReferralStatus.withdrawn,
    "X-NEW": ReferralStatus.received,
    "X-HELD": ReferralStatus.funded,
    "X-PREV": ReferralStatus.funded,
    "X-NOFEE": ReferralStatus.converted,
}
# Our March lines: (reference, rule, amount).
LINES = [
    ("M-1", FeeRule.funded_bounty, 20_000),
    ("M-2", FeeRule.funded_bounty, 150_000),
    ("M-3", FeeRule.bundle_fee, 40_000),
    ("M-4", FeeRule.revenue_share, 1_235),
    ("M-5", FeeRule.funded_bounty, 20_000),
    ("M-5", FeeRule.cap, -5_000),
    ("M-6", FeeRule.revenue_share, 100),
    ("M-6", FeeRule.revenue_share, 200),
]


async def add_referrals(
    session: AsyncSession, partner: Partner, statuses: dict[str, ReferralStatus]
) -> dict[str, Referral]:
    program = await make_program(session, partner)
    referrals = {
        ref: Referral(
            partner_id=partner.id,
            program_id=program.id,
            external_ref=ref,
            kind=ReferralKind.vip,
            status=status,
            window_ends_at=MARCH + timedelta(days=90),
        )
        for ref, status in statuses.items()
    }
    session.add_all(referrals.values())
    await session.flush()
    return referrals


@pytest.fixture
async def desk(client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_partner: Any) -> Desk:
    partner = await make_partner()
    await subscribe(session, partner.id)
    referrals = await add_referrals(session, partner, REFERRALS)
    finance = Finance(client, await caller("staff", role="finance"))
    # February: X-PREV's bounty, on February's statement.
    await book(session, partner.id, 20_000, ref="X-PREV", at=FEBRUARY, referral_id=referrals["X-PREV"].id)
    february = await finance.statement_of("2026-02", partner.id)
    await finance.act(february["id"], "issue")
    for ref, rule, amount in LINES:
        await book(session, partner.id, amount, rule=rule, ref=ref, referral_id=referrals[ref].id)
    # X-HELD's bounty is still in its hold period at the end of March.
    await book(
        session,
        partner.id,
        20_000,
        ref="X-HELD",
        hold=timedelta(days=40),
        status="pending",
        referral_id=referrals["X-HELD"].id,
    )
    march = await finance.statement_of("2026-03", partner.id)
    await finance.act(march["id"], "issue")
    checker = Finance(client, await caller("staff", role="finance"))
    return Desk(client, partner, await caller("partner", partner=partner), finance, checker, march["id"], referrals)


EXACT_CLAIM = [
    {"external_ref": ref, "fee_type": rule.value, "amount_fen": amount}
    for ref, rule, amount in [
        ("M-1", FeeRule.funded_bounty, 20_000),
        ("M-2", FeeRule.funded_bounty, 150_000),
        ("M-3", FeeRule.bundle_fee, 40_000),
        ("M-4", FeeRule.revenue_share, 1_235),
        ("M-5", FeeRule.funded_bounty, 20_000),
        ("M-5", FeeRule.cap, -5_000),
        ("M-6", FeeRule.revenue_share, 300),
    ]
]
