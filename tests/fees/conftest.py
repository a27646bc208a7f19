from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import BundledProduct, PartnerKind
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, PartnerCreate, ProductCreate, ProgramCreate
from app.conversions.service import ingest_events
from app.core import clock
from app.core.tenancy import Tenant
from app.fees.engine import release_held
from app.fees.models import FeeAccrual
from app.privacy.service import DataKeyring
from app.referrals.schemas import ReferralCreate
from app.referrals.service import submit_referral
from tests.factories.referrals import individual, national_id

ACTOR = Actor.system("test")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULES = {
    "funded_bounty": {
        "min_assets_fen": 1_000_000,
        "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 500_000},
    },
    "bundle_fees": [
        {"product_code": "BANK_WM_PLUS_EQUITY", "flat_fen": 10_000, "bps": 30, "min_fen": 12_000, "max_fen": 500_000}
    ],
    "revenue_share": {"bps": 1_000, "months": 12},
    "caps": {},
}
_ids = itertools.count()


def cny(yuan: int) -> dict[str, Any]:
    return {"amount": yuan * 100, "currency": "CNY"}


class Ledger:
    """A bank with a program and fee schedule, referrals, and the back office's events, driven in-process."""

    def __init__(self, session: AsyncSession, keyring: DataKeyring, program_id: str, partner_id: str) -> None:
        self.session = session
        self.keyring = keyring
        self.program_id = program_id
        self.partner_id = partner_id

    async def referral(self, when: datetime = START) -> tuple[str, str]:
        """A new eligible referral; returns (referral id, the person's national id)."""
        person = national_id()
        body = individual(self.program_id, national_id=person)
        body["consent"]["captured_at"] = clock.now().isoformat()  # consent is given as the partner refers
        data = ReferralCreate.model_validate(body)
        submitted = await submit_referral(
            self.session,
            Tenant.of_partner(self.partner_id),
            data,
            await self.keyring.cipher(self.session),
            self.keyring.index,
        )
        submitted.referral.created_at = when - timedelta(days=1)
        submitted.referral.window_ends_at = when + timedelta(days=90)
        await self.session.flush()
        return submitted.referral.id, person

    async def events(self, *events: dict[str, Any], now: datetime | None = None) -> list[str]:
        """Report events; by default as they happen (recorded a minute after the latest), so that their fee
        lines are held from then."""
        if now is None:
            now = max(datetime.fromisoformat(event["occurred_at"]) for event in events) + timedelta(minutes=1)
        results = await ingest_events(self.session, self.keyring.index, list(events), now=now)
        return [result.result for result in results]

    async def release(self, at: datetime) -> int:
        """The daily job, run at ``at``: lines whose hold ended become payable."""
        return await release_held(self.session, at)

    @staticmethod
    def event(kind: str, client_ref: str, at: datetime, **fields: Any) -> dict[str, Any]:
        return {
            "source_event_id": f"ev-{next(_ids)}",
            "type": kind,
            "occurred_at": at.isoformat(),
            "client_ref": client_ref,
            **fields,
        }

    async def lines(self, referral_id: str) -> list[FeeAccrual]:
        rows = await self.session.scalars(
            select(FeeAccrual)
            .where(FeeAccrual.referral_id == referral_id)
            .order_by(FeeAccrual.occurred_at, FeeAccrual.source_key)
        )
        return [line for line in rows.all()]

    async def summary(self, referral_id: str) -> list[tuple[str, int, str]]:
        for line in await self.lines(referral_id):
            await self.session.refresh(line)
        return [(str(line.rule), line.amount_fen, str(line.status)) for line in await self.lines(referral_id)]


@pytest.fixture
async def make_ledger(app, session: AsyncSession) -> Callable[..., Awaitable[Ledger]]:  # type: ignore[no-untyped-def]
    async def make(rules: dict[str, Any] | None = None, **program: Any) -> Ledger:
        partner = await catalog.create_partner(
            session, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name="账本银行")
        )
        if await session.scalar(select(BundledProduct.id).where(BundledProduct.code == "BANK_WM_PLUS_EQUITY")) is None:
            product = ProductCreate(
                code="BANK_WM_PLUS_EQUITY",
                name="x",
                components=[Component(kind="k", name="n")],
                allowed_partner_kinds=[PartnerKind.bank],
            )
            await catalog.create_product(session, ACTOR, product)
        created = await catalog.create_program(
            session,
            ACTOR,
            ProgramCreate(
                partner_id=partner.id,
                name="VIP",
                channel="vip_referral",
                effective_from=date(2025, 1, 1),
                product_codes=["BANK_WM_PLUS_EQUITY"],
                **program,
            ),
        )
        schedule = await catalog.create_fee_schedule(
            session,
            ACTOR,
            FeeScheduleCreate(
                program_id=created.id, effective_from=date(2025, 1, 1), rules=FeeRules.model_validate(rules or RULES)
            ),
        )
        await catalog.activate_fee_schedule(session, ACTOR, schedule.id)
        return Ledger(session, app.state.data_keyring, created.id, partner.id)

    return make
