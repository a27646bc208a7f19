"""The demo's people: one local account per role (and a second finance officer, so that four eyes can be shown),
for development and test only. Like the demo's client secrets, passwords and TOTP secrets are shown only by the
run that creates them, or after ``reset_secrets``, which gives every demo person new ones."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit.service import Actor
from app.auth.scopes import StaffRole
from app.core.config import Settings
from app.people import service as people
from app.people.models import Person

DEMO_PEOPLE = (
    ("demo.manager", "王晓明（联盟经理）", StaffRole.alliance_manager),
    ("demo.finance", "李静（财务经办）", StaffRole.finance),
    ("demo.finance.checker", "陈刚（财务复核）", StaffRole.finance),
    ("demo.admin", "张伟（系统管理员）", StaffRole.admin),
    ("demo.auditor", "赵敏（审计员）", StaffRole.auditor),
)


async def ensure_demo_people(
    session: AsyncSession, actor: Actor, settings: Settings, *, reset_secrets: bool = False
) -> list[dict[str, str | None]]:
    """Create the missing demo people; every one is listed, with the password and TOTP secret this run made."""
    existing = set((await session.scalars(select(col(Person.username)))).all())
    listed = []
    for username, display_name, role in DEMO_PEOPLE:
        made = None
        if username not in existing:
            made = await people.create_person(
                session, actor, settings, username=username, display_name=display_name, role=role
            )
        elif reset_secrets:
            made = await people.reset_credentials(session, actor, settings, username)
        listed.append(
            {
                "username": username,
                "display_name": display_name,
                "role": role.value,
                "password": made.password if made else None,
                "totp_secret": made.totp_secret if made else None,
            }
        )
    return listed
