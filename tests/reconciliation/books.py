"""Helpers for statement and reconciliation tests: ledger lines booked directly, and finance's calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.core.models import new_id
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Caller

MARCH = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


async def book(
    session: AsyncSession,
    partner_id: str,
    amount_fen: int,
    *,
    rule: FeeRule = FeeRule.funded_bounty,
    ref: str = "REF-1",
    at: datetime = MARCH,
    hold: timedelta = timedelta(days=0),
    status: AccrualStatus = AccrualStatus.payable,
    referral_id: str | None = None,
) -> FeeAccrual:
    """One ledger line as the engine would write it (``hold`` after ``at`` it is due)."""
    line_id = new_id("acr")
    line = FeeAccrual(
        id=line_id,
        source_key=f"test:{line_id}",
        partner_id=partner_id,
        referral_id=referral_id,
        external_ref=ref,
        rule=rule,
        amount_fen=amount_fen,
        status=status,
        occurred_at=at,
        hold_until=at + hold,
        arithmetic={"test": True},
        created_at=at,
        updated_at=at,
    )
    session.add(line)
    await session.flush()
    return line


async def set_vat(session: AsyncSession, partner: Partner, rate_bp: int, inclusive: bool) -> None:
    partner.vat_rate_bp, partner.vat_inclusive = rate_bp, inclusive
    session.add(partner)
    await session.flush()


async def subscribe(session: AsyncSession, partner_id: str) -> WebhookEndpoint:
    """A webhook endpoint of the partner for the finance events."""
    endpoint = WebhookEndpoint(
        partner_id=partner_id,
        url="https://partner.example/hooks",
        event_types=["statement.issued", "reconciliation.completed"],
        sealed_secret=b"not used by these tests",
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def deliveries(session: AsyncSession, partner_id: str, event_type: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(WebhookDelivery.payload)
        .where(WebhookDelivery.partner_id == partner_id, WebhookDelivery.event_type == event_type)
        .order_by(WebhookDelivery.created_at)
    )
    return [dict(payload) for payload in rows.all()]


class Finance:
    """Finance's side of the API."""

    def __init__(self, client: httpx.AsyncClient, caller: Caller) -> None:
        self.client = client
        self.caller = caller

    async def close(self, period: str, expect: int = 200) -> dict[str, Any]:
        response = await self.client.post(f"/v1/finance/periods/{period}/close", headers=self.caller.headers)
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def statement_of(self, period: str, partner_id: str) -> dict[str, Any]:
        closed = await self.close(period)
        return next(item for item in closed["statements"] if item["partner_id"] == partner_id)

    async def act(self, statement_id: str, action: str, expect: int = 200, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/finance/statements/{statement_id}/{action}", json=body or None, headers=self.caller.headers
        )
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def get(self, path: str, expect: int = 200, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.caller.headers)
        assert response.status_code == expect, response.text
        return response.json()
