"""Client accounts changing hands: when an alliance manager moves an attribution, the account and its applied
events follow the new holder. Conversions owns these tables; the attribution move (``app.referrals.overrides``)
asks for this."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.conversions.models import SAME_TIME_ORDER, ClientAccount, ConversionEvent, EventStatus


async def lock_account_held_by(session: AsyncSession, referral_id: str) -> ClientAccount | None:
    """The client account the referral holds (none before opening), locked first, as the feed locks it."""
    return await session.scalar(
        select(ClientAccount)
        .where(col(ClientAccount.referral_id) == referral_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def hand_over_events(
    session: AsyncSession, account: ClientAccount, from_referral_id: str, to_referral_id: str, to_partner_id: str
) -> list[ConversionEvent]:
    """The account's events, now the new holder's (one statement); its applied ones in the order the feed applies
    them, so that the new holder's stages and fees are replayed as they happened."""
    await session.execute(
        update(ConversionEvent)
        .where(
            col(ConversionEvent.client_ref) == account.client_ref, col(ConversionEvent.referral_id) == from_referral_id
        )
        .values(referral_id=to_referral_id, partner_id=to_partner_id)
    )
    events = (
        await session.scalars(
            select(ConversionEvent)
            .where(
                col(ConversionEvent.client_ref) == account.client_ref,
                col(ConversionEvent.referral_id) == to_referral_id,
                col(ConversionEvent.status) == EventStatus.applied,
            )
            .execution_options(populate_existing=True)
        )
    ).all()
    return sorted(events, key=lambda event: (event.occurred_at, SAME_TIME_ORDER[event.type], event.source_event_id))


def hand_over_account(account: ClientAccount, to_referral_id: str, to_partner_id: str, now: datetime) -> None:
    """The account now belongs to the new holder (written with the session's next flush)."""
    account.referral_id, account.partner_id, account.updated_at = to_referral_id, to_partner_id, now
