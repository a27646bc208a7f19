from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import Partner, PartnerKind, Program, ProgramChannel
from app.catalog.schemas import PartnerCreate, ProgramCreate
from app.core.business_time import today as business_today
from app.core.identifiers import credit_code_check_character, national_id_check_character
from tests.conftest import Caller, CallerFactory

ACTOR = Actor.system("test")
_random = random.Random(20261125)


def national_id(born: date | None = None, region: str = "230102") -> str:
    """A valid number; unless ``born`` is given, of someone born on a random day of 1993: in the 25-35 age band, and
    drawn from 365,000 numbers, not 1,000 (with one birth date, a test making seven people met the same person twice
    once in forty runs)."""
    born = born or date(1993, 1, 1) + timedelta(days=_random.randrange(365))
    first17 = f"{region}{born:%Y%m%d}{_random.randint(0, 999):03d}"
    return first17 + national_id_check_character(first17)


def mobile() -> str:
    return f"13{_random.randint(0, 9)}{_random.randint(0, 99_999_999):08d}"


def credit_code() -> str:
    first17 = f"91230100MA{_random.randint(0, 9_999_999):07d}"
    return first17 + credit_code_check_character(first17)


def consent(**overrides: Any) -> dict[str, Any]:
    return {
        "captured_at": "2026-11-01T10:00:00+08:00",
        "channel": "mobile_app",
        "notice_version": "2026-10",
        "notice_sha256": hashlib.sha256(b"notice text v2026-10").hexdigest(),
        "recipient_name": "示范证券股份有限公司",
        "purpose": "证券开户推荐",
        "data_categories": ["name", "mobile", "national_id"],
        "retention_days": 365,
        "separate_consent": True,
        "evidence_ref": "sig-2026-000123",
        **overrides,
    }


def individual(program_id: str, external_ref: str | None = None, **subject: Any) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "external_ref": external_ref or f"REF-{_random.randint(0, 10**12)}",
        "kind": "vip",
        "subject": {"name": "张三丰", "mobile": mobile(), "national_id": national_id(), **subject},
        "consent": consent(),
    }


def enterprise(program_id: str, external_ref: str | None = None, **subject: Any) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "external_ref": external_ref or f"ENT-{_random.randint(0, 10**12)}",
        "kind": "enterprise",
        "subject": {"name": "黑土地农业有限公司", "credit_code": credit_code(), **subject},
    }


async def make_program(session: AsyncSession, partner: Partner, **fields: Any) -> Program:
    data = ProgramCreate(
        **{
            "partner_id": partner.id,
            "name": "VIP 银证合作",
            "channel": ProgramChannel.vip_referral,
            "effective_from": business_today() - timedelta(days=30),
            **fields,
        }
    )
    return await catalog.create_program(session, ACTOR, data)


class PartnerDesk:
    """A partner with a program and a token, as its integration would see the API."""

    def __init__(self, caller: Caller, partner: Partner, program: Program) -> None:
        self.caller = caller
        self.partner = partner
        self.program = program
        self._keys = 0

    def headers(self, key: str | None = None) -> dict[str, str]:
        self._keys += 1
        return {**self.caller.headers, "Idempotency-Key": key or f"key-{self.partner.id}-{self._keys}"}


@pytest.fixture
async def make_desk(session: AsyncSession, caller: CallerFactory):  # type: ignore[no-untyped-def]
    async def make(
        kind: PartnerKind = PartnerKind.bank, name: str = "哈尔滨测试银行", **program_fields: Any
    ) -> PartnerDesk:
        partner = await catalog.create_partner(session, ACTOR, PartnerCreate(kind=kind, legal_name=name))
        program = await make_program(session, partner, **program_fields)
        return PartnerDesk(await caller("partner", partner=partner), partner, program)

    return make


@pytest.fixture
async def bank(make_desk) -> PartnerDesk:  # type: ignore[no-untyped-def]
    return await make_desk()


@pytest.fixture
async def other_bank(make_desk) -> PartnerDesk:  # type: ignore[no-untyped-def]
    return await make_desk(name="别家银行")
