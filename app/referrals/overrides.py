"""Attribution overrides (DESIGN.md, rule 5 and "Attribution override after conversion (clarified)"): an alliance
manager moves the attribution of a person to another partner's referral, at any stage of the funnel, with a reason.

One transaction, locks taken in the conversion feed's order (the client account, then the referrals), so that a
move and the feed never deadlock:
- the old holder becomes ``duplicate``; the new one takes the client account and its events over, and its status
  follows those events (opened, funded, converted by a bundle of its own program);
- fees follow: the old holder's lines are reversed by ``attribution_moved`` lines, the new holder accrues from the
  same events under its own schedule (``app.fees.moves``);
- both timelines (and so both partners' webhooks) record the move with the cause ``attribution_moved``; the losing
  partner learns only "duplicate", never who holds the person now; the audit log has the person and the reason.
Moving to a referral that already holds is a no-op, and moving back and forth never counts a fee twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog.service import program_products
from app.conversions.accounts import hand_over_account, hand_over_events, lock_account_held_by
from app.conversions.lifecycle import stages_reached
from app.conversions.models import ClientAccount, ConversionEvent
from app.core import clock
from app.core.models import new_id
from app.core.problems import Conflict, NotFound
from app.fees.moves import NO_CHANGE, LedgerChange, move_fees
from app.referrals.models import (
    HOLDING_STATUSES,
    AttributionConflict,
    ConflictStatus,
    IdentityHolder,
    Referral,
    ReferralStatus,
)
from app.referrals.transitions import StatusChange, transition

CAUSE = "attribution_moved"


class AttributionNotMovable(Conflict):
    slug, title = "attribution-not-movable", "Attribution cannot be moved"


class AttributionChanged(Conflict):
    slug, title = "attribution-changed", "Attribution changed meanwhile"


@dataclass(frozen=True)
class AttributionMove:
    """What a move did: ``moved`` is False when the referral already held the attribution."""

    referral: Referral
    moved: bool
    move_id: str | None = None
    previous_holder: Referral | None = None
    reversed: LedgerChange = NO_CHANGE
    accrued: LedgerChange = NO_CHANGE


async def move_attribution(
    session: AsyncSession, actor: Actor, referral_id: str, reason: str, *, conflict_id: str | None = None
) -> AttributionMove:
    """Give the attribution of ``referral_id``'s person to that referral (a ``duplicate``), taking it from the
    referral that holds it, whatever its stage. Raises ``AttributionNotMovable`` (409) when that cannot be."""
    target = await session.get(Referral, referral_id)
    if target is None:
        raise NotFound("No such referral.")
    if target.status in HOLDING_STATUSES:
        return AttributionMove(target, moved=False)
    holder = await _current_holder(session, target)
    account = await lock_account_held_by(session, holder.id)
    await session.execute(
        select(Referral)
        .where(col(Referral.id).in_(sorted({holder.id, target.id})))
        .order_by(col(Referral.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if target.status in HOLDING_STATUSES:  # a concurrent move gave it the attribution meanwhile
        return AttributionMove(target, moved=False)
    opened = holder.status is not ReferralStatus.eligible
    if (
        holder.status not in HOLDING_STATUSES
        or target.status is not ReferralStatus.duplicate
        or opened != (account is not None)
    ):
        raise AttributionChanged("The referrals changed while the attribution was being moved; try again.")

    now = clock.now()
    move_id = new_id("mov")
    events = await hand_over_events(session, account, holder.id, target.id, target.partner_id) if account else []
    codes = frozenset(
        product.code for product in (await program_products(session, [target.program_id]))[target.program_id]
    )
    stages = stages_reached(events, codes)
    held_as = holder.status
    details: dict[str, Any] = {"move_id": move_id, **({"conflict_id": conflict_id} if conflict_id else {})}
    changes = [StatusChange(holder.id, holder.partner_id, held_as, ReferralStatus.duplicate, CAUSE, details)]
    changes += _taking_over(target, account, stages, details)
    await transition(session, changes, now)
    if account is not None:
        hand_over_account(account, target.id, target.partner_id, now)
    await session.flush()

    reversed_, accrued = await move_fees(session, holder, target, account, events, move_id, now)
    if conflict_id is None:
        await _resolve_open_conflicts(session, actor, target.id, reason, now)
    await audit.record(
        session,
        actor,
        "attribution.moved",
        object_type="referral",
        object_id=target.id,
        reason=reason,
        move_id=move_id,
        conflict_id=conflict_id,
        from_referral_id=holder.id,
        from_partner_id=holder.partner_id,
        from_status=held_as.value,
        to_partner_id=target.partner_id,
        to_status=target.status.value,
        client_ref=account.client_ref if account else None,
        reversed_lines=reversed_.lines,
        reversed_fen=reversed_.net_fen,
        accrued_lines=accrued.lines,
        accrued_fen=accrued.net_fen,
    )
    return AttributionMove(target, True, move_id, holder, reversed_, accrued)


def _taking_over(
    target: Referral,
    account: ClientAccount | None,
    stages: list[tuple[ReferralStatus, ConversionEvent]],
    details: dict[str, Any],
) -> list[StatusChange]:
    """The new holder's changes: eligible again, taking the client account over, then each stage the account's
    events reached, with its event."""
    client_ref = account.client_ref if account else None
    changes = [
        StatusChange(
            target.id,
            target.partner_id,
            ReferralStatus.duplicate,
            ReferralStatus.eligible,
            CAUSE,
            details,
            client_ref=client_ref,
        )
    ]
    previous = ReferralStatus.eligible
    for stage, event in stages:
        reached = {**details, "source_event_id": event.source_event_id}
        changes.append(
            StatusChange(target.id, target.partner_id, previous, stage, CAUSE, reached, client_ref=client_ref)
        )
        previous = stage
    return changes


async def _current_holder(session: AsyncSession, target: Referral) -> Referral:
    if target.status is not ReferralStatus.duplicate:
        raise AttributionNotMovable(
            f"A referral in status {target.status.value} cannot take an attribution over; only a duplicate can."
        )
    if target.identity_hash is None:
        raise AttributionNotMovable("The referral's personal data is erased: it can no longer be matched to anyone.")
    held = (
        await session.execute(
            select(col(IdentityHolder.referral_id), col(IdentityHolder.partner_id)).where(
                col(IdentityHolder.identity_hash) == target.identity_hash
            )
        )
    ).one_or_none()
    holder = None
    if held is not None:
        holder = await session.scalar(
            select(Referral).where(
                col(Referral.partner_id) == held.partner_id,
                col(Referral.id) == held.referral_id,
                col(Referral.status).in_(HOLDING_STATUSES),
            )
        )
    if holder is None:
        raise AttributionNotMovable("No referral holds this person now: there is no attribution to move.")
    return holder


async def _resolve_open_conflicts(
    session: AsyncSession, actor: Actor, referral_id: str, reason: str, now: datetime
) -> None:
    """The open conflict in which the new holder was the duplicate is settled by the move."""
    await session.execute(
        update(AttributionConflict)
        .where(
            col(AttributionConflict.duplicate_referral_id) == referral_id,
            col(AttributionConflict.status) == ConflictStatus.open,
        )
        .values(
            status=ConflictStatus.resolved,
            resolution="award_duplicate",
            reason=reason,
            resolved_by=actor.id,
            resolved_at=now,
        )
    )
