"""Two banks referring the same person, the back office, an alliance manager and finance, all through the public
API, on one clock: the harness of the attribution-override tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import BundledProduct, PartnerKind
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, ProductCreate
from app.core import clock
from app.fees.models import FeeAccrual
from app.referrals.models import Referral
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Caller, CallerFactory
from tests.factories.referrals import PartnerDesk, individual
from tests.reconciliation.books import Finance

ACTOR = Actor.system("test")
PRODUCT = "BANK_WM_PLUS_EQUITY"
# Bank A's agreement and bank B's: every fee differs, so a line tells whose schedule made it.
RULES_A = {
    "funded_bounty": {"min_assets_fen": 1_000_000, "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 1}},
    "bundle_fees": [{"product_code": PRODUCT, "flat_fen": 10_000, "bps": 30, "min_fen": 12_000, "max_fen": 500_000}],
    "revenue_share": {"bps": 1_000, "months": 12},
    "caps": {},
}
RULES_B = {
    "funded_bounty": {"min_assets_fen": 1_000_000, "by_tier": {"retail": 35_000, "hnw": 90_000, "institutional": 1}},
    "bundle_fees": [{"product_code": PRODUCT, "flat_fen": 0, "bps": 50, "min_fen": 1_000, "max_fen": 45_000}],
    "revenue_share": {"bps": 500, "months": 12},
    "caps": {},
}
_ids = itertools.count()


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


class Alliance:
    """The parties and one clock that every part of the service reads."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        bank_a: PartnerDesk,
        bank_b: PartnerDesk,
        back_office: Caller,
        manager: Caller,
        finance: list[Finance],
        manual_clock: clock.ManualClock,
    ) -> None:
        self.client, self.session = client, session
        self.bank_a, self.bank_b = bank_a, bank_b
        self.back_office, self.manager, self.finance = back_office, manager, finance
        self.clock = manual_clock
        self.clock.move_to(at(5, 1))

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @now.setter
    def now(self, moment: datetime) -> None:
        self.clock.move_to(moment)

    async def refer(self, desk: PartnerDesk, person: str) -> dict[str, Any]:
        """``desk``'s referral of ``person``."""
        body = individual(desk.program.id, national_id=person)
        body["consent"]["captured_at"] = self.now.isoformat()  # consent is given as the partner refers
        response = await self.client.post("/v1/referrals", json=body, headers=desk.headers())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def received(self, referral_id: str, when: datetime) -> None:
        """The referral as if received at ``when`` (with its window from then)."""
        referral = await self.session.get(Referral, referral_id)
        assert referral is not None
        referral.created_at, referral.window_ends_at = when, when + timedelta(days=90)
        await self.session.flush()

    async def feed(self, when: datetime, *events: dict[str, Any]) -> None:
        """The back office reports ``events`` as they happen: a minute after ``when`` or the latest of them."""
        latest = max([when, *(datetime.fromisoformat(event["occurred_at"]) for event in events)])
        self.now = latest + timedelta(minutes=1)
        response = await self.client.post(
            "/v1/conversion-events", json={"events": list(events)}, headers=self.back_office.headers
        )
        assert response.status_code == 200, response.text
        assert {result["result"] for result in response.json()["results"]} == {"applied"}, response.text

    @staticmethod
    def event(kind: str, client_ref: str, when: datetime, **fields: Any) -> dict[str, Any]:
        return {
            "source_event_id": f"ovr-{next(_ids)}",
            "type": kind,
            "occurred_at": when.isoformat(),
            "client_ref": client_ref,
            **fields,
        }

    async def award(self, referral_id: str, when: datetime, expect: int = 200) -> dict[str, Any]:
        self.now = when
        response = await self.client.post(
            f"/v1/admin/referrals/{referral_id}/award",
            json={"reason": "bank proved the earlier consent"},
            headers=self.manager.headers,
        )
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def status(self, desk: PartnerDesk, referral_id: str) -> str:
        response = await self.client.get(f"/v1/referrals/{referral_id}", headers=desk.caller.headers)
        return str(response.json()["status"])

    async def timeline(self, desk: PartnerDesk, referral_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v1/referrals/{referral_id}/events", headers=desk.caller.headers)
        assert response.status_code == 200, response.text
        return list(response.json())

    async def ledger(self, referral_id: str) -> list[FeeAccrual]:
        rows = await self.session.scalars(
            select(FeeAccrual)
            .where(FeeAccrual.referral_id == referral_id)
            .order_by(FeeAccrual.created_at, FeeAccrual.occurred_at, FeeAccrual.source_key)
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def standing_fen(self, referral_id: str) -> int:
        """What the referral's partner is owed for it: the lines not cancelled."""
        return sum(line.amount_fen for line in await self.ledger(referral_id) if line.status != "reversed")

    async def earned(self, referral_id: str) -> dict[tuple[str, str | None], int]:
        """What the referral still earns per (fee rule, conversion event): lines not cancelled, a reversal counted
        against the line it reverses; what nets to nothing is left out."""
        lines = [line for line in await self.ledger(referral_id) if line.status != "reversed"]
        rule_of = {line.id: str(line.rule) for line in lines}
        totals: dict[tuple[str, str | None], int] = {}
        for line in lines:
            rule = rule_of[line.reverses_id or ""] if line.rule == "attribution_moved" else str(line.rule)
            key = (rule, line.conversion_event_id)
            totals[key] = totals.get(key, 0) + line.amount_fen
        return {key: fen for key, fen in totals.items() if fen}

    async def deliveries(self, partner_id: str) -> list[dict[str, Any]]:
        rows = await self.session.scalars(
            select(WebhookDelivery.payload)
            .where(WebhookDelivery.partner_id == partner_id, WebhookDelivery.event_type == "referral.status_changed")
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
        return [dict(payload["data"]) for payload in rows.all()]


async def _schedule(session: AsyncSession, program_id: str, rules: dict[str, Any]) -> None:
    schedule = await catalog.create_fee_schedule(
        session,
        ACTOR,
        FeeScheduleCreate(program_id=program_id, effective_from=date(2025, 1, 1), rules=FeeRules.model_validate(rules)),
    )
    await catalog.activate_fee_schedule(session, ACTOR, schedule.id)


@pytest.fixture
async def alliance(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, session: AsyncSession, caller: CallerFactory, make_desk, manual_clock
) -> Alliance:
    if await session.scalar(select(BundledProduct.id).where(BundledProduct.code == PRODUCT)) is None:
        await catalog.create_product(
            session,
            ACTOR,
            ProductCreate(
                code=PRODUCT,
                name="银行理财+权益",
                components=[Component(kind="bank_wm", name="理财")],
                allowed_partner_kinds=[PartnerKind.bank],
            ),
        )
    desks = []
    for name, rules in (("甲银行", RULES_A), ("乙银行", RULES_B)):
        desk = await make_desk(name=name, product_codes=[PRODUCT], effective_from=date(2025, 1, 1))
        await _schedule(session, desk.program.id, rules)
        session.add(
            WebhookEndpoint(
                partner_id=desk.partner.id,
                url="https://partner.example/hooks",
                event_types=["referral.status_changed"],
                sealed_secret=b"not used by these tests",
            )
        )
        desks.append(desk)
    await session.flush()
    finance = [Finance(client, await caller("staff", role="finance")) for _ in range(3)]
    return Alliance(
        client,
        session,
        desks[0],
        desks[1],
        await caller("back_office"),
        await caller("staff", role="alliance_manager"),
        finance,
        manual_clock,
    )
