"""The demo alliance that ``make run`` loads: a bank, an insurer and a corporate, a back-office feed and one
staff account per role (development and test only).

Loading is idempotent: rows have fixed ids and are created only when missing. Secrets are shown only by the run
that creates them, or after ``reset_secrets``, which gives every demo client a new one at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.models import OAuthClient
from app.auth.scopes import PrincipalKind, StaffRole
from app.catalog import service as catalog_service
from app.catalog.models import Partner, PartnerKind
from app.core.config import Settings
from app.core.database import Database, create_engine

ACTOR = Actor.system("demo")

PARTNERS = (
    ("ptn_demo_bank", PartnerKind.bank, "哈尔滨示范银行股份有限公司", "Harbin Demo Bank"),
    ("ptn_demo_insurer", PartnerKind.insurer, "北方示范人寿保险股份有限公司", "Northern Demo Life"),
    ("ptn_demo_corporate", PartnerKind.corporate, "黑土地示范农业集团有限公司", "Black Soil Demo Agriculture"),
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
        for pid, _, _, name in PARTNERS
    ),
    DemoClient("cli_demo_back_office", "Back-office conversion feed", PrincipalKind.back_office),
    *(DemoClient(f"cli_demo_{role.value}", f"Demo {role.value}", PrincipalKind.staff, role=role) for role in StaffRole),
)


class DemoRefused(Exception):
    pass


async def _ensure_partners(session: AsyncSession) -> None:
    for partner_id, kind, legal_name, display_name in PARTNERS:
        if await session.get(Partner, partner_id) is None:
            await catalog_service.create_partner(
                session, kind=kind, legal_name=legal_name, display_name=display_name, partner_id=partner_id
            )


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
    database_url: str, settings: Settings, *, reset_secrets: bool = False
) -> list[dict[str, str | None]]:
    """Create what is missing of the demo alliance; returns every demo client, with the secrets this run made."""
    if settings.environment == "production":
        raise DemoRefused("the demo alliance is never loaded in production")
    database = Database(create_engine(database_url, settings))
    try:
        async with database.sessionmaker() as session, session.begin():
            await _ensure_partners(session)
            secrets = await _ensure_clients(session, reset_secrets)
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
