from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import BundledProduct, PartnerKind
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, PartnerCreate, ProductCreate
from app.core.business_time import today as business_today
from tests.conftest import CallerFactory
from tests.factories.referrals import PartnerDesk, make_program

ACTOR = Actor.system("test")
PRODUCT = "BANK_WM_PLUS_EQUITY"
OTHER_PRODUCT = "LIFE_PLUS_FUND_SIP"
RULES: dict[str, Any] = {
    "funded_bounty": {"min_assets_fen": 1_000_000, "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 1}},
    "bundle_fees": [{"product_code": PRODUCT, "flat_fen": 10_000, "bps": 30, "min_fen": 12_000, "max_fen": 500_000}],
    "revenue_share": {"bps": 1_000, "months": 12},
    "caps": {},
}


async def _product(session: AsyncSession, code: str, kind: PartnerKind) -> None:
    if await session.scalar(select(BundledProduct.id).where(BundledProduct.code == code)) is None:
        await catalog.create_product(
            session,
            ACTOR,
            ProductCreate(
                code=code, name=code, components=[Component(kind="k", name="n")], allowed_partner_kinds=[kind]
            ),
        )


@pytest.fixture
async def make_sandbox_desk(session: AsyncSession, caller: CallerFactory):  # type: ignore[no-untyped-def]
    """A bank whose program offers ``PRODUCT`` under ``RULES``, and its token."""

    async def make(name: str = "沙箱测试银行") -> PartnerDesk:
        await _product(session, PRODUCT, PartnerKind.bank)
        await _product(session, OTHER_PRODUCT, PartnerKind.insurer)
        partner = await catalog.create_partner(session, ACTOR, PartnerCreate(kind=PartnerKind.bank, legal_name=name))
        program = await make_program(session, partner, product_codes=[PRODUCT])
        schedule = await catalog.create_fee_schedule(
            session,
            ACTOR,
            FeeScheduleCreate(
                program_id=program.id,
                effective_from=business_today() - timedelta(days=30),
                rules=FeeRules.model_validate(RULES),
            ),
        )
        await catalog.activate_fee_schedule(session, ACTOR, schedule.id)
        return PartnerDesk(await caller("partner", partner=partner), partner, program)

    return make
