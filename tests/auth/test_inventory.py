"""What admins review of the credentials: clients with their partner and last rotation, and the signing keys with
how long a retired one still verifies tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.auth import inventory, service
from app.auth.keys import rotate_signing_key
from app.auth.models import ClientStatus
from app.auth.scopes import PrincipalKind, StaffRole
from app.catalog.models import Partner
from app.core.config import Settings

ADMIN = Actor(id="person:li.admin", kind="staff")


async def test_a_page_of_clients_names_the_partner_and_the_last_rotation(
    session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    partner = await make_partner(legal_name="龙江示范银行股份有限公司")
    bank = await service.create_client(session, ADMIN, name="bank", kind=PrincipalKind.partner, partner_id=partner.id)
    feed = await service.create_client(session, ADMIN, name="feed", kind=PrincipalKind.back_office)

    entries, _ = await inventory.client_entries(session, limit=500)
    by_id = {entry.client.id: entry for entry in entries}
    assert by_id[bank.client.id].partner_name == "龙江示范银行股份有限公司"
    assert by_id[feed.client.id].partner_name is None
    assert by_id[bank.client.id].last_rotated_at is None  # its first secret came with it

    await service.rotate_client_secret(session, ADMIN, bank.client.id, grace_s=0)
    entries, _ = await inventory.client_entries(session, limit=500)
    rotated = next(entry for entry in entries if entry.client.id == bank.client.id)
    assert rotated.last_rotated_at is not None and rotated.last_rotated_at >= bank.client.created_at


async def test_clients_filter_by_kind_and_status_and_count_every_match(
    session: AsyncSession, make_partner: Callable[..., Awaitable[Partner]]
) -> None:
    _, staff_before = await inventory.client_entries(session, kind=PrincipalKind.staff)
    _, revoked_before = await inventory.client_entries(session, status=ClientStatus.revoked)
    made = [
        await service.create_client(session, ADMIN, name=f"tool {n}", kind=PrincipalKind.staff, role=StaffRole.finance)
        for n in range(3)
    ]
    await service.revoke_client(session, ADMIN, made[0].client.id)

    first, staff_total = await inventory.client_entries(session, kind=PrincipalKind.staff, limit=2)
    second, _ = await inventory.client_entries(session, kind=PrincipalKind.staff, offset=2, limit=2)
    revoked, revoked_total = await inventory.client_entries(session, status=ClientStatus.revoked)

    assert staff_total == staff_before + 3
    assert revoked_total == revoked_before + 1
    assert made[0].client.id in {entry.client.id for entry in revoked}
    assert len(first) == 2 and {entry.client.kind for entry in first + second} == {PrincipalKind.staff}
    newest_first = [entry.client.id for entry in first]
    assert newest_first[:2] == [made[2].client.id, made[1].client.id]
    assert not {entry.client.id for entry in first} & {entry.client.id for entry in second}


async def test_signing_keys_show_the_one_in_use_and_how_long_the_previous_one_verifies(
    session: AsyncSession, settings: Settings
) -> None:
    _, active = await rotate_signing_key(session, settings)
    _, newest = await rotate_signing_key(session, settings)

    keys = await inventory.signing_key_entries(session, retired_key_publish_s=3600)

    assert keys[0].kid == newest and keys[0].signing and keys[0].still_accepted
    assert keys[0].retired_at is None and keys[0].accepted_until is None
    previous = next(key for key in keys if key.kid == active)
    assert not previous.signing and previous.retired_at is not None
    assert previous.accepted_until == previous.retired_at + timedelta(hours=1)
    assert previous.still_accepted
    assert sum(key.signing for key in keys) == 1
    gone = await inventory.signing_key_entries(session, retired_key_publish_s=0)
    assert not next(key for key in gone if key.kid == active).still_accepted
