"""The ledger side of an attribution move (DESIGN.md, "Attribution override after conversion"): what the old
holder accrued is reversed by ``attribution_moved`` lines, the new holder accrues from the same events under its
own program's schedule. Nothing is edited: a line still in its hold period is cancelled with its reversal (both
``reversed``, as a clawback inside the hold); any other line keeps its status and its reversal is payable, on the
same statement as the line when the line is on none yet, else on the partner's next one. Finance's adjustments
are decisions of their own and stay; a later adjustment corrects them if need be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.conversions.models import ClientAccount, ConversionEvent
from app.core.models import new_ids
from app.fees.engine import EARNING_RULES, accrue, lock_cap_months, standing
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule
from app.referrals.models import Referral

_LEDGER = FeeAccrual.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LedgerChange:
    """Lines written for one side of a move: how many and their net amount (fen)."""

    lines: int
    net_fen: int


NO_CHANGE = LedgerChange(0, 0)


def _to_reverse(lines: list[FeeAccrual]) -> list[FeeAccrual]:
    """The lines that make up what the referral still earns: earnings neither cancelled nor clawed back, and the
    cap cuts of those earnings. A clawed-back earning already nets to nothing with its clawback and cuts."""
    live = [line for line in standing(lines) if line.status is not AccrualStatus.reversed]
    clawed = {line.reverses_id for line in live if line.rule is FeeRule.clawback}
    earnings = {line.id for line in live if line.rule in EARNING_RULES and line.id not in clawed}
    return [line for line in live if line.id in earnings or (line.rule is FeeRule.cap and line.reverses_id in earnings)]


async def move_fees(
    session: AsyncSession,
    holder: Referral,
    target: Referral,
    account: ClientAccount | None,
    events: Sequence[ConversionEvent],
    move_id: str,
    now: datetime,
) -> tuple[LedgerChange, LedgerChange]:
    """Reverse what ``holder`` accrued and accrue the account's ``events`` (already ``target``'s, in the order the
    feed applies them) for ``target``; returns both sides' changes. The monthly-cap locks of both partners are
    taken first, together, in the feed's order."""
    lines = list(
        (
            await session.scalars(
                select(FeeAccrual)
                .where(col(FeeAccrual.referral_id) == holder.id)
                .order_by(col(FeeAccrual.occurred_at), col(FeeAccrual.id))
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    targets = _to_reverse(lines)
    await lock_cap_months(
        session,
        [(holder.partner_id, line.occurred_at) for line in targets]
        + [(target.partner_id, event.occurred_at) for event in events],
    )
    reversed_ = await _reverse(session, targets, move_id, now)
    if account is None or not events:
        return reversed_, NO_CHANGE
    prefix = f"{move_id}:"
    await accrue(session, events, {account.client_ref: account}, {target.id: target}, now, key_prefix=prefix)
    count, net = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(FeeAccrual.amount_fen), 0)).where(
                col(FeeAccrual.referral_id) == target.id, col(FeeAccrual.source_key).startswith(prefix, autoescape=True)
            )
        )
    ).one()
    return reversed_, LedgerChange(int(count), int(net))


async def reverse_referrals(
    session: AsyncSession, referral_ids: Sequence[str], key: str, rule: FeeRule, now: datetime
) -> LedgerChange:
    """Reverse what the referrals still earn with ``rule`` lines, as a move reverses the old holder's (a line in
    its hold period is cancelled with its reversal); ``key`` names the decision (``source_key``: exactly once).
    Lines an earlier decision of the same rule reversed are not reversed again."""
    if not referral_ids:
        return NO_CHANGE
    lines = list(
        (
            await session.scalars(
                select(FeeAccrual)
                .where(col(FeeAccrual.referral_id).in_(list(referral_ids)))
                .order_by(col(FeeAccrual.occurred_at), col(FeeAccrual.id))
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    done = {line.reverses_id for line in lines if line.rule is rule}
    live = [line for line in lines if line.rule is not rule and line.id not in done]
    targets = _to_reverse(live)
    await lock_cap_months(session, [(line.partner_id, line.occurred_at) for line in targets])
    return await _reverse(session, targets, key, now, rule)


async def _reverse(
    session: AsyncSession,
    targets: list[FeeAccrual],
    move_id: str,
    now: datetime,
    rule: FeeRule = FeeRule.attribution_moved,
) -> LedgerChange:
    if not targets:
        return NO_CHANGE
    rows = [
        {
            "id": line_id,
            "source_key": f"{move_id}:{rule.value}:{line.id}",
            "partner_id": line.partner_id,
            "referral_id": line.referral_id,
            "external_ref": line.external_ref,
            "conversion_event_id": line.conversion_event_id,
            "fee_schedule_id": line.fee_schedule_id,
            "rule": rule,
            "amount_fen": -line.amount_fen,
            "currency": line.currency,
            "status": AccrualStatus.reversed if line.status is AccrualStatus.pending else AccrualStatus.payable,
            # The line's month, so that the monthly cap it used is given back where it was used.
            "occurred_at": line.occurred_at,
            "hold_until": line.hold_until if line.statement_id is None else max(line.hold_until, now),
            "reverses_id": line.id,
            "arithmetic": {"reason": rule.value, "reverses_rule": line.rule.value, "move_id": move_id},
            "created_at": now,
            "updated_at": now,
        }
        for line_id, line in zip(new_ids("acr", len(targets)), targets, strict=True)
    ]
    await session.execute(insert(_LEDGER), rows)
    held = [line.id for line in targets if line.status is AccrualStatus.pending]
    if held:
        await session.execute(
            update(FeeAccrual)
            .where(col(FeeAccrual.id).in_(held), col(FeeAccrual.status) == AccrualStatus.pending)
            .values(status=AccrualStatus.reversed, updated_at=now)
        )
    return LedgerChange(len(targets), -sum(line.amount_fen for line in targets))
