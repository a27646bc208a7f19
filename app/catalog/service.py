"""Catalog rules: the partner registry."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner, PartnerKind, PartnerStatus
from app.core.problems import NotFound


async def create_partner(
    session: AsyncSession,
    *,
    kind: PartnerKind,
    legal_name: str,
    display_name: str | None = None,
    partner_id: str | None = None,
) -> Partner:
    """Register a partner; it starts active."""
    partner = Partner(kind=kind, legal_name=legal_name, display_name=display_name or legal_name)
    if partner_id:
        partner.id = partner_id
    session.add(partner)
    await session.flush()
    return partner


async def get_partner(session: AsyncSession, partner_id: str) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("No such partner.")
    return partner


async def set_partner_status(session: AsyncSession, partner_id: str, status: PartnerStatus) -> Partner:
    """Suspend, reactivate or terminate. Tokens are checked against this status on every call."""
    partner = await get_partner(session, partner_id)
    partner.status = status
    session.add(partner)
    await session.flush()
    return partner
