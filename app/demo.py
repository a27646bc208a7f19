"""The demo alliance that ``make run`` loads: a bank, an insurer and a corporate, a back-office feed and one
staff account per role (development and test only).

Loading is idempotent: rows have fixed ids and are created only when missing. Secrets are shown only by the run
that creates them, or after ``reset_secrets``, which gives every demo client a new one at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import OAuthClient
from app.auth.scopes import PrincipalKind, StaffRole
from app.catalog import service as catalog_service
from app.catalog.models import BundledProduct, Partner, PartnerKind, Program, ProgramChannel
from app.catalog.schemas import (
    BundleFee,
    Caps,
    Component,
    FeeRules,
    FeeScheduleCreate,
    FundedBounty,
    PartnerCreate,
    ProductCreate,
    ProgramCreate,
    RevenueShare,
    TierAmounts,
)
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.identifiers import credit_code_check_character
from app.people.demo_accounts import ensure_demo_people

ACTOR = Actor.system("demo")
DEMO_START = date(2026, 1, 1)


def _credit_code(first17: str) -> str:
    return first17 + credit_code_check_character(first17)


PARTNERS = (
    (
        "ptn_demo_bank",
        PartnerKind.bank,
        "哈尔滨示范银行股份有限公司",
        "Harbin Demo Bank",
        _credit_code("91230100MA1BNK001"),
    ),
    (
        "ptn_demo_insurer",
        PartnerKind.insurer,
        "北方示范人寿保险股份有限公司",
        "Northern Demo Life",
        _credit_code("91230100MA1LFE002"),
    ),
    (
        "ptn_demo_corporate",
        PartnerKind.corporate,
        "黑土地示范农业集团有限公司",
        "Black Soil Demo Agriculture",
        _credit_code("91230100MA1AGR003"),
    ),
)

PRODUCTS = (
    ProductCreate(
        code="BANK_WM_PLUS_EQUITY",
        name="银行理财 + 证券投资组合",
        components=[
            Component(kind="bank_wealth_product", name="Bank wealth-management product"),
            Component(kind="securities_portfolio", name="Securities investment portfolio"),
        ],
        allowed_partner_kinds=[PartnerKind.bank],
    ),
    ProductCreate(
        code="LIFE_PLUS_FUND_SIP",
        name="寿险 + 基金定投",
        components=[
            Component(kind="life_insurance", name="Life insurance policy"),
            Component(kind="fund_sip", name="Fund systematic investment plan"),
        ],
        allowed_partner_kinds=[PartnerKind.insurer],
    ),
    ProductCreate(
        code="EMPLOYEE_WEALTH_PLAN",
        name="员工专属财富计划",
        components=[Component(kind="employee_wealth_plan", name="Employee exclusive wealth plan")],
        allowed_partner_kinds=[PartnerKind.corporate],
    ),
    ProductCreate(
        code="ENTERPRISE_IB_AM",
        name="企业投行与资管服务",
        components=[
            Component(kind="investment_banking", name="Investment-banking services"),
            Component(kind="asset_management", name="Asset-management mandate"),
        ],
        allowed_partner_kinds=[PartnerKind.corporate],
    ),
)

_BOUNTY = FundedBounty(min_assets_fen=1_000_000, by_tier=TierAmounts(retail=20_000, hnw=150_000, institutional=500_000))
PROGRAMS = (
    (
        "prg_demo_bank_vip",
        ProgramCreate(
            partner_id="ptn_demo_bank",
            name="哈尔滨示范银行 VIP 银证合作",
            channel=ProgramChannel.vip_referral,
            effective_from=DEMO_START,
            product_codes=["BANK_WM_PLUS_EQUITY"],
        ),
        FeeRules(
            funded_bounty=_BOUNTY,
            bundle_fees=[BundleFee(product_code="BANK_WM_PLUS_EQUITY", flat_fen=10_000, bps=30, max_fen=500_000)],
            revenue_share=RevenueShare(bps=1_000, months=12),
            caps=Caps(per_referral_fen=2_000_000, per_partner_month_fen=50_000_000),
        ),
    ),
    (
        "prg_demo_insurer_bundle",
        ProgramCreate(
            partner_id="ptn_demo_insurer",
            name="北方示范人寿 保证合作",
            channel=ProgramChannel.insurance_bundle,
            effective_from=DEMO_START,
            product_codes=["LIFE_PLUS_FUND_SIP"],
        ),
        FeeRules(
            funded_bounty=_BOUNTY,
            bundle_fees=[BundleFee(product_code="LIFE_PLUS_FUND_SIP", bps=50, min_fen=5_000, max_fen=300_000)],
            caps=Caps(per_referral_fen=1_000_000),
        ),
    ),
    (
        "prg_demo_corporate_employees",
        ProgramCreate(
            partner_id="ptn_demo_corporate",
            name="黑土地示范农业 员工专属财富计划",
            channel=ProgramChannel.employee_plan,
            effective_from=DEMO_START,
            product_codes=["EMPLOYEE_WEALTH_PLAN"],
        ),
        FeeRules(
            funded_bounty=FundedBounty(
                min_assets_fen=500_000, by_tier=TierAmounts(retail=10_000, hnw=100_000, institutional=300_000)
            ),
            bundle_fees=[BundleFee(product_code="EMPLOYEE_WEALTH_PLAN", flat_fen=5_000)],
        ),
    ),
    (
        "prg_demo_corporate_enterprise",
        ProgramCreate(
            partner_id="ptn_demo_corporate",
            name="黑土地示范农业 企业综合金融服务",
            channel=ProgramChannel.enterprise_services,
            effective_from=DEMO_START,
            product_codes=["ENTERPRISE_IB_AM"],
            attribution_window_days=180,
        ),
        FeeRules(
            bundle_fees=[BundleFee(product_code="ENTERPRISE_IB_AM", bps=20, min_fen=100_000, max_fen=5_000_000)],
            revenue_share=RevenueShare(bps=500, months=24),
        ),
    ),
)


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    name: str
    kind: PrincipalKind
    partner_id: str | None = None
    role: StaffRole | None = None


CLIENTS = (
    *(
        DemoClient(f"cli_demo_{pid[9:]}", f"{name} integration", PrincipalKind.partner, partner_id=pid)
        for pid, _, _, name, _ in PARTNERS
    ),
    DemoClient("cli_demo_back_office", "Back-office conversion feed", PrincipalKind.back_office),
    *(DemoClient(f"cli_demo_{role.value}", f"Demo {role.value}", PrincipalKind.staff, role=role) for role in StaffRole),
)


class DemoRefused(Exception):
    pass


async def _ensure_catalog(session: AsyncSession) -> None:
    for partner_id, kind, legal_name, display_name, credit_code in PARTNERS:
        if await session.get(Partner, partner_id) is None:
            data = PartnerCreate(kind=kind, legal_name=legal_name, display_name=display_name, credit_code=credit_code)
            await catalog_service.create_partner(session, ACTOR, data, partner_id=partner_id)
    existing = set((await session.scalars(select(BundledProduct.code))).all())
    for product in PRODUCTS:
        if product.code not in existing:
            await catalog_service.create_product(session, ACTOR, product)
    for program_id, program, rules in PROGRAMS:
        if await session.get(Program, program_id) is None:
            await catalog_service.create_program(session, ACTOR, program, program_id=program_id)
            schedule = await catalog_service.create_fee_schedule(
                session, ACTOR, FeeScheduleCreate(program_id=program_id, effective_from=DEMO_START, rules=rules)
            )
            await catalog_service.activate_fee_schedule(session, ACTOR, schedule.id)


async def _ensure_clients(session: AsyncSession, reset_secrets: bool) -> dict[str, str]:
    """Create missing clients; returns the secrets created or reset by this run."""
    secrets: dict[str, str] = {}
    for demo in CLIENTS:
        if await session.get(OAuthClient, demo.client_id) is None:
            created = await auth_service.create_client(
                session,
                ACTOR,
                name=demo.name,
                kind=demo.kind,
                role=demo.role,
                partner_id=demo.partner_id,
                client_id=demo.client_id,
            )
            secrets[demo.client_id] = created.secret or ""
        elif reset_secrets:
            _, secret, _ = await auth_service.rotate_client_secret(session, ACTOR, demo.client_id, grace_s=0)
            secrets[demo.client_id] = secret
    return secrets


async def load_demo(
    database_url: str,
    settings: Settings,
    *,
    reset_secrets: bool = False,
    staff_users: list[dict[str, str | None]] | None = None,
) -> list[dict[str, str | None]]:
    """Create what is missing of the demo alliance; returns every demo client, with the secrets this run made.
    The demo's people (``app.people.demo``) are added to ``staff_users`` when given, with their passwords and
    TOTP secrets when this run made them."""
    staff_users = [] if staff_users is None else staff_users
    if settings.environment == "production":
        raise DemoRefused("the demo alliance is never loaded in production")
    database = Database(create_engine(database_url, settings))
    try:
        async with database.sessionmaker() as session, session.begin():
            await _ensure_catalog(session)
            secrets = await _ensure_clients(session, reset_secrets)
            staff_users.extend(await ensure_demo_people(session, ACTOR, settings, reset_secrets=reset_secrets))
    finally:
        await database.dispose()
    return [
        {
            "client_id": demo.client_id,
            "client_secret": secrets.get(demo.client_id),
            "kind": demo.kind.value,
            "partner_id": demo.partner_id,
            "role": demo.role.value if demo.role else None,
        }
        for demo in CLIENTS
    ]
