"""A small alliance with a known history, driven through the real services, for reports to be checked by hand.

Three partners (a bank, an insurer, a corporate); ten referrals received in January and February 2026 (Asia/
Shanghai), one in December 2025; organic clients; the figures every report should show are worked out in the
tests from the story told here.

    bank (哈尔滨银行), program "VIP 银证合作", product BANK_WM_PLUS_EQUITY, fee lines payable after 30 days
      R1  01-05  age 30   opened +3 d, funded +5 d 2,000,000 CNY (hnw), bought the bundle +15 d (100,000 CNY),
                          revenue 500 CNY on 02-01 and 300 CNY on 03-01
      R2  01-10  age 50   opened +10 d, funded +11 d 50,000 CNY (retail)
      R3  01-15  age 28   never opened: expired
      R4  01-20  age 40   withdrawn
      R6  02-03  age 60   already a client of the firm: existing_client
      R7  02-10  age 33   opened +2 d, funded +3 d 6,000,000 CNY (institutional), bought the bundle +19 d
      R11 2025-12-20      opened two days later (outside the period)
    insurer (中国平安人寿), program "保险+基金定投", product LIFE_PLUS_FUND_SIP, fee lines held 10 years (pending)
      R5  01-25  R1's person again: duplicate
      R8  01-06  age 22   opened +1 d, funded +3 d 20,000 CNY (retail), bought the bundle +10 d; revenue 200 CNY
      R9  02-02  age 29   opened +26 d 10 h, never funded
    corporate (黑土地农业集团), program "员工专属财富计划", no fee schedule
      R10 01-12  an enterprise: opened +2 d, funded +3 d 100,000 CNY (institutional by being an enterprise)
    organic clients: O1 01-18 3,000,000 CNY (hnw), O2 01-25 10,000 CNY (retail), O3 02-05 200,000 CNY (retail),
      O4 02-20 not funded, O5 2025-12-28 (outside)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.catalog import service as catalog
from app.catalog.models import Partner, PartnerKind, Program
from app.catalog.schemas import Component, FeeRules, FeeScheduleCreate, PartnerCreate, ProductCreate, ProgramCreate
from app.conversions.service import ingest_events
from app.core import clock
from app.core.tenancy import Tenant
from app.fees.engine import release_held
from app.privacy.service import DataKeyring
from app.referrals.attribution import expire_stale_holders
from app.referrals.registry import RegisteredClient, upsert_existing_clients
from app.referrals.schemas import ReferralCreate
from app.referrals.service import submit_referral, withdraw_referral
from tests.factories.referrals import credit_code, enterprise, individual, national_id

ACTOR = Actor.system("test")
CST = timezone(timedelta(hours=8))
_events = itertools.count()

BANK_RULES = {
    "funded_bounty": {
        "min_assets_fen": 1_000_000,
        "by_tier": {"retail": 20_000, "hnw": 150_000, "institutional": 500_000},
    },
    "bundle_fees": [
        {"product_code": "BANK_WM_PLUS_EQUITY", "flat_fen": 10_000, "bps": 30, "min_fen": 12_000, "max_fen": 500_000}
    ],
    "revenue_share": {"bps": 1_000, "months": 12},
}
INSURER_RULES = {
    "funded_bounty": {
        "min_assets_fen": 500_000,
        "by_tier": {"retail": 10_000, "hnw": 100_000, "institutional": 300_000},
    },
    "bundle_fees": [{"product_code": "LIFE_PLUS_FUND_SIP", "flat_fen": 5_000}],
}


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in Shanghai: ``at("2026-01-05")`` is 10:00 on that day."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=CST)


def born(age: int) -> date:
    """A birth date that makes a person ``age`` this year, whatever year the tests run in."""
    return date(clock.now().year - age, 5, 17)


def cny(yuan: int) -> dict[str, Any]:
    return {"amount": yuan * 100, "currency": "CNY"}


def event(kind: str, client_ref: str, when: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "source_event_id": f"rpt-{next(_events)}",
        "type": kind,
        "occurred_at": when.isoformat(),
        "client_ref": client_ref,
        **fields,
    }


@dataclass
class Book:
    """The alliance above: partner, program and referral ids by their names in the story."""

    partners: dict[str, Partner] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)
    referrals: dict[str, str] = field(default_factory=dict)


class BookWriter:
    def __init__(self, session: AsyncSession, keyring: DataKeyring) -> None:
        self.session = session
        self.keyring = keyring
        self.book = Book()

    async def product(self, code: str, kind: PartnerKind) -> None:
        data = ProductCreate(
            code=code, name=f"{code} 组合", components=[Component(kind="k", name="n")], allowed_partner_kinds=[kind]
        )
        await catalog.create_product(self.session, ACTOR, data)

    async def partner(
        self, name: str, kind: PartnerKind, legal_name: str, program: str, channel: str, **terms: Any
    ) -> None:
        rules = terms.pop("rules", None)
        partner = await catalog.create_partner(self.session, ACTOR, PartnerCreate(kind=kind, legal_name=legal_name))
        created = await catalog.create_program(
            self.session,
            ACTOR,
            ProgramCreate(
                partner_id=partner.id, name=program, channel=channel, effective_from=date(2025, 1, 1), **terms
            ),
        )
        if rules is not None:
            schedule = await catalog.create_fee_schedule(
                self.session,
                ACTOR,
                FeeScheduleCreate(
                    program_id=created.id, effective_from=date(2025, 1, 1), rules=FeeRules.model_validate(rules)
                ),
            )
            await catalog.activate_fee_schedule(self.session, ACTOR, schedule.id)
        self.book.partners[name] = partner
        self.book.programs[name] = created

    async def referral(
        self, name: str, partner: str, received: datetime, body: dict[str, Any], window_days: int = 3650
    ) -> str:
        """Submit, then date it back to ``received``. Windows are long (nothing expires by accident when the
        same person is referred again later) unless the story says otherwise."""
        data = ReferralCreate.model_validate(body)
        submitted = await submit_referral(
            self.session,
            Tenant.of_partner(self.book.partners[partner].id),
            data,
            await self.keyring.cipher(self.session),
            self.keyring.index,
        )
        submitted.referral.created_at = received.astimezone(UTC)
        submitted.referral.window_ends_at = received.astimezone(UTC) + timedelta(days=window_days)
        await self.session.flush()
        self.book.referrals[name] = submitted.referral.id
        return submitted.referral.id

    def person(self, partner: str, age: int, person: str | None = None) -> dict[str, Any]:
        return individual(self.book.programs[partner].id, national_id=person or national_id(born(age)))

    async def events(self, *events: dict[str, Any]) -> None:
        """Report events as they happen: recorded a minute after the latest (fee holds run from then)."""
        recorded = max(datetime.fromisoformat(event["occurred_at"]) for event in events) + timedelta(minutes=1)
        results = await ingest_events(self.session, self.keyring.index, list(events), now=recorded)
        assert all(result.result == "applied" for result in results), results


async def write_book(session: AsyncSession, keyring: DataKeyring) -> Book:
    writer = BookWriter(session, keyring)
    await writer.product("BANK_WM_PLUS_EQUITY", PartnerKind.bank)
    await writer.product("LIFE_PLUS_FUND_SIP", PartnerKind.insurer)
    await writer.partner(
        "bank", PartnerKind.bank, "哈尔滨银行股份有限公司", "VIP 银证合作", "vip_referral",
        product_codes=["BANK_WM_PLUS_EQUITY"], rules=BANK_RULES,
    )  # fmt: skip
    await writer.partner(
        "insurer", PartnerKind.insurer, "中国平安人寿保险股份有限公司", "保险+基金定投", "insurance_bundle",
        product_codes=["LIFE_PLUS_FUND_SIP"], rules=INSURER_RULES, hold_period_days=3650,
    )  # fmt: skip
    await writer.partner(
        "corporate", PartnerKind.corporate, "黑土地农业集团有限公司", "员工专属财富计划", "employee_plan"
    )

    p1, p2, p7, p8, p9, p11 = (national_id(born(age)) for age in (30, 50, 33, 22, 29, 45))
    p6 = national_id(born(60))
    company = credit_code()
    await upsert_existing_clients(
        session, keyring.index, [RegisteredClient(national_id=p6, opened_on=date(2020, 1, 1))]
    )
    await writer.referral("R11", "bank", at("2025-12-20"), writer.person("bank", 45, p11))
    await writer.referral("R1", "bank", at("2026-01-05"), writer.person("bank", 30, p1))
    await writer.referral("R2", "bank", at("2026-01-10"), writer.person("bank", 50, p2))
    await writer.referral("R3", "bank", at("2026-01-15"), writer.person("bank", 28), window_days=90)
    await writer.referral("R4", "bank", at("2026-01-20"), writer.person("bank", 40))
    await writer.referral("R6", "bank", at("2026-02-03"), writer.person("bank", 60, p6))
    await writer.referral("R7", "bank", at("2026-02-10"), writer.person("bank", 33, p7))
    await writer.referral("R5", "insurer", at("2026-01-25"), writer.person("insurer", 30, p1))
    await writer.referral("R8", "insurer", at("2026-01-06"), writer.person("insurer", 22, p8))
    await writer.referral("R9", "insurer", at("2026-02-02"), writer.person("insurer", 29, p9))
    await writer.referral(
        "R10", "corporate", at("2026-01-12"), enterprise(writer.book.programs["corporate"].id, credit_code=company)
    )

    await writer.events(
        event("account_opened", "C-R11", at("2025-12-22"), national_id=p11),
        event("account_opened", "C-R1", at("2026-01-08"), national_id=p1),
        event("account_funded", "C-R1", at("2026-01-10"), **cny(2_000_000)),
        event("bundle_purchased", "C-R1", at("2026-01-20"), product_code="BANK_WM_PLUS_EQUITY", **cny(100_000)),
        event("revenue_recorded", "C-R1", at("2026-02-01"), **cny(500)),
        event("revenue_recorded", "C-R1", at("2026-03-01"), **cny(300)),
        event("account_opened", "C-R2", at("2026-01-20"), national_id=p2),
        event("account_funded", "C-R2", at("2026-01-21"), **cny(50_000)),
        event("account_opened", "C-R7", at("2026-02-12"), national_id=p7),
        event("account_funded", "C-R7", at("2026-02-13"), **cny(6_000_000)),
        event("bundle_purchased", "C-R7", at("2026-03-01"), product_code="BANK_WM_PLUS_EQUITY", **cny(5_000_000)),
        event("account_opened", "C-R8", at("2026-01-07"), national_id=p8),
        event("account_funded", "C-R8", at("2026-01-09"), **cny(20_000)),
        event("bundle_purchased", "C-R8", at("2026-01-16"), product_code="LIFE_PLUS_FUND_SIP", **cny(10_000)),
        event("revenue_recorded", "C-R8", at("2026-02-15"), **cny(200)),
        event("account_opened", "C-R9", at("2026-02-28", hour=20), national_id=p9),
        event("account_opened", "C-R10", at("2026-01-14"), credit_code=company),
        event("account_funded", "C-R10", at("2026-01-15"), **cny(100_000)),
        event("account_opened", "C-O1", at("2026-01-18"), national_id=national_id(born(41))),
        event("account_funded", "C-O1", at("2026-01-19"), **cny(3_000_000)),
        event("account_opened", "C-O2", at("2026-01-25"), national_id=national_id(born(27))),
        event("account_funded", "C-O2", at("2026-01-26"), **cny(10_000)),
        event("account_opened", "C-O3", at("2026-02-05"), national_id=national_id(born(31))),
        event("account_funded", "C-O3", at("2026-02-06"), **cny(200_000)),
        event("account_opened", "C-O4", at("2026-02-20"), national_id=national_id(born(52))),
        event("account_opened", "C-O5", at("2025-12-28"), national_id=national_id(born(35))),
        event("account_funded", "C-O5", at("2025-12-29"), **cny(9_000_000)),
    )
    referrals = writer.book.referrals
    await withdraw_referral(
        session, Tenant.everyone(Actor.system("test")), ACTOR, referrals["R4"], "consent_revoked", None
    )
    await expire_stale_holders(session, clock.now())
    await release_held(session, clock.now())  # the daily job has run since: the bank's 30-day holds are over
    # Finance's side: R1's bounty is paid, its bundle fee is on a statement.
    await session.execute(
        text("UPDATE fee_accruals SET status = 'paid' WHERE referral_id = :id AND rule = 'funded_bounty'"),
        {"id": referrals["R1"]},
    )
    await session.execute(
        text("UPDATE fee_accruals SET status = 'statemented' WHERE referral_id = :id AND rule = 'bundle_fee'"),
        {"id": referrals["R1"]},
    )
    return writer.book


@pytest.fixture
async def book(app, session: AsyncSession) -> Book:  # type: ignore[no-untyped-def]
    return await write_book(session, app.state.data_keyring)
