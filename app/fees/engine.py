"""The accrual engine (DESIGN.md, "Fee rules"): conversion events become ledger lines under the fee-schedule
version in force on the day the event occurred.

Every line has a ``source_key`` (event and rule): replaying events or re-running accrual inserts nothing new.
What a cap cuts is its own negative ``cap`` line; a clawback is a negative line reversing an earlier one, and
cancels it outright (both ``reversed``) while the earlier line is still in its hold period.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.models import FeeSchedule, FeeScheduleStatus, Program
from app.catalog.schemas import FeeRules
from app.conversions.lifecycle import Account, AnyReferral, Event
from app.conversions.models import EventStatus, EventType
from app.core.business_time import business_day, business_month
from app.core.models import new_ids
from app.core.money import basis_points_of, clamp
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.fees.cap_usage import (
    CAPPED_RULES,
    EARNING_RULES,
    UsageBounds,
    add_cap_usage_within,
    lock_cap_usage,
    partner_months,
    read_cap_usage,
)
from app.fees.ledger_writes import LedgerLine, Line, lock_earlier_lines, planned_usage, write_lines
from app.fees.models import AccrualStatus, FeeAccrual, FeeReviewHold, FeeRule

_LEDGER = FeeAccrual.__table__  # type: ignore[attr-defined]  # bulk inserts through the table, not the ORM
__all__ = ["CAPPED_RULES", "EARNING_RULES", "accrue", "lock_cap_months", "release_held", "standing"]
_TIER_ORDER = ("retail", "hnw", "institutional")
_AnyLine = TypeVar("_AnyLine", FeeAccrual, LedgerLine)


def months_after(start: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


@dataclass
class _Context:
    """What accrual needs to know beyond the events, loaded in a few queries."""

    programs: dict[str, Program]
    schedules: dict[str, list[FeeSchedule]]
    rules: dict[str, FeeRules]
    lines_by_referral: dict[str, list[LedgerLine]]
    used_by_referral: dict[str, int]
    used_by_partner_month: dict[tuple[str, str], int]

    def schedule_on(self, program_id: str, moment: datetime) -> FeeSchedule | None:
        day = business_day(moment)
        for schedule in self.schedules.get(program_id, []):
            if schedule.effective_from <= day and (schedule.effective_to is None or day < schedule.effective_to):
                return schedule
        return None


async def _load_context(
    session: AsyncSession, referrals: dict[str, AnyReferral], events: Sequence[Event], *, lock_caps: bool = True
) -> _Context:
    program_ids = sorted({referral.program_id for referral in referrals.values()})
    programs = {p.id: p for p in await session.scalars(select(Program).where(col(Program.id).in_(program_ids)))}
    schedules: dict[str, list[FeeSchedule]] = defaultdict(list)
    for schedule in await session.scalars(
        select(FeeSchedule).where(
            col(FeeSchedule.program_id).in_(program_ids), col(FeeSchedule.status) == FeeScheduleStatus.active
        )
    ):
        schedules[schedule.program_id].append(schedule)
    rules = {schedule.id: FeeRules.model_validate(schedule.rules) for group in schedules.values() for schedule in group}
    earlier = await lock_earlier_lines(session, referrals)
    lines_by_referral = defaultdict(list, {key: standing(lines) for key, lines in earlier.items()})
    used_by_referral = {
        referral_id: sum(
            line.amount_fen for line in lines if line.rule in CAPPED_RULES and line.status is not AccrualStatus.reversed
        )
        for referral_id, lines in lines_by_referral.items()
    }
    # The months the call's lines fall in, and those of the earlier lines a clawback may cancel: locked at once.
    moments = [(referrals[event.referral_id or ""].partner_id, event.occurred_at) for event in events]
    moments += [
        (line.partner_id, line.occurred_at)
        for lines in lines_by_referral.values()
        for line in lines
        if line.status is AccrualStatus.pending
    ]
    if lock_caps:
        used_by_partner_month = await lock_cap_months(session, moments)
    else:
        used_by_partner_month = await read_cap_usage(session, partner_months(moments))
    return _Context(programs, dict(schedules), rules, lines_by_referral, used_by_referral, used_by_partner_month)


async def lock_cap_months(session: AsyncSession, moments: Iterable[tuple[str, datetime]]) -> dict[tuple[str, str], int]:
    """Serialise the calls touching these (partner, moment)s' months (a monthly cap is shared), in one order for
    all so that calls taking several never deadlock: a caller touching two partners takes all at once, first.
    Returns what each (partner, month) already uses of its cap."""
    return await lock_cap_usage(session, partner_months(moments))


def standing(lines: list[_AnyLine]) -> list[_AnyLine]:
    """A referral's lines but those an attribution move took away and the lines that took them: to the referral's
    history (tier paid, what a clawback can reverse, cap usage) they net to nothing, whoever holds it now."""
    moved = {line.reverses_id for line in lines if line.rule is FeeRule.attribution_moved}
    return [line for line in lines if line.rule is not FeeRule.attribution_moved and line.id not in moved]


@dataclass
class Accrual:
    """Turns one call's applied events into lines, keeping cap usage and earlier lines up to date as it goes."""

    context: _Context
    accounts: Mapping[str, Account]
    now: datetime
    lines: list[Line] = field(default_factory=list)
    cancelled_ids: set[str] = field(default_factory=set)
    bounds: UsageBounds | None = None  # with the usage read unlocked: what the decisions assumed of it
    _new_by_referral: dict[str, list[Line]] = field(default_factory=lambda: defaultdict(list))
    _ids: list[str] = field(default_factory=list)

    def _new_id(self) -> str:
        # Ids drawn from the system's random source a thousand at a time, not one call per line.
        if not self._ids:
            self._ids = new_ids("acr", 1024)
        return self._ids.pop()

    def _append(self, line: Line) -> None:
        self.lines.append(line)
        self._new_by_referral[line.referral.id].append(line)

    def on_event(self, event: Event, referral: AnyReferral) -> None:
        program = self.context.programs[referral.program_id]
        schedule = self.context.schedule_on(program.id, event.occurred_at)
        account = self.accounts[event.client_ref]
        if schedule is not None:
            rules = self.context.rules[schedule.id]
            self._earn(event, referral, account, program, schedule, rules)
            self._claw_back(event, referral, account, program, rules)

    # --- earning -----------------------------------------------------------------------------------------------

    def _earn(
        self,
        event: Event,
        referral: AnyReferral,
        account: Account,
        program: Program,
        schedule: FeeSchedule,
        rules: FeeRules,
    ) -> None:
        if rules.funded_bounty and event.type in (EventType.account_funded, EventType.assets_snapshot):
            self._bounty(event, referral, account, program, schedule, rules)
        if event.type is EventType.bundle_purchased:
            fee = next((fee for fee in rules.bundle_fees if fee.product_code == event.product_code), None)
            if fee is not None:
                amount = event.amount_fen or 0
                raw = (fee.flat_fen or 0) + (basis_points_of(amount, fee.bps) if fee.bps else 0)
                value = clamp(raw, fee.min_fen, fee.max_fen)
                arithmetic = {
                    "purchase_fen": amount,
                    "flat_fen": fee.flat_fen,
                    "bps": fee.bps,
                    "min_fen": fee.min_fen,
                    "max_fen": fee.max_fen,
                    "product_code": fee.product_code,
                }
                self._add(event, referral, program, schedule, rules, FeeRule.bundle_fee, value, arithmetic)
        if event.type is EventType.revenue_recorded and rules.revenue_share and account.opened_at is not None:
            share = rules.revenue_share
            if event.occurred_at < months_after(account.opened_at, share.months):
                value = basis_points_of(event.amount_fen or 0, share.bps)
                arithmetic = {"revenue_fen": event.amount_fen, "bps": share.bps, "months": share.months}
                self._add(event, referral, program, schedule, rules, FeeRule.revenue_share, value, arithmetic)

    def _bounty(
        self,
        event: Event,
        referral: AnyReferral,
        account: Account,
        program: Program,
        schedule: FeeSchedule,
        rules: FeeRules,
    ) -> None:
        # The account as it stood right after this event (recorded by the lifecycle), not at the end of the call.
        bounty = rules.funded_bounty
        assert bounty is not None and account.opened_at is not None
        tier, assets = event.effects.get("tier"), int(event.effects.get("assets_fen", 0))
        if tier is None or assets < bounty.min_assets_fen:
            return
        qualifying = event.occurred_at <= account.opened_at + timedelta(days=program.qualification_period_days)
        paid = self._paid_tier(referral.id)
        by_tier = vars(bounty.by_tier)  # read only: a model_dump per event would copy it each time
        arithmetic: dict[str, Any]
        if paid is None:
            if qualifying:
                arithmetic = {"tier": tier, "assets_fen": assets, "min_assets_fen": bounty.min_assets_fen}
                self._add(event, referral, program, schedule, rules, FeeRule.funded_bounty, by_tier[tier], arithmetic)
        elif qualifying and _TIER_ORDER.index(tier) > _TIER_ORDER.index(paid):
            value = by_tier[tier] - by_tier[paid]
            arithmetic = {"from_tier": paid, "to_tier": tier, "difference_of": [by_tier[tier], by_tier[paid]]}
            self._add(event, referral, program, schedule, rules, FeeRule.tier_top_up, value, arithmetic)

    def _paid_tier(self, referral_id: str) -> str | None:
        tier = None
        for rule, arithmetic, reversed_ in self._history(referral_id):
            if reversed_:
                continue
            if rule is FeeRule.funded_bounty:
                tier = arithmetic["tier"]
            elif rule is FeeRule.tier_top_up:
                tier = arithmetic["to_tier"]
        return tier

    def _lines_of(self, referral_id: str) -> list[LedgerLine | Line]:
        """The referral's lines: those already in the ledger, then those this call is adding."""
        earlier: list[LedgerLine | Line] = list(self.context.lines_by_referral.get(referral_id, []))
        return earlier + self._new_by_referral.get(referral_id, [])

    def _is_reversed(self, line: LedgerLine | Line) -> bool:
        return line.status is AccrualStatus.reversed or line.id in self.cancelled_ids

    def _history(self, referral_id: str) -> Iterable[tuple[FeeRule, dict[str, Any], bool]]:
        earlier: Iterable[LedgerLine | Line] = self.context.lines_by_referral.get(referral_id, ())
        added: Iterable[LedgerLine | Line] = self._new_by_referral.get(referral_id, ())
        for line in chain(earlier, added):  # as ``_lines_of`` lists them, without copying both per event
            yield line.rule, line.arithmetic, self._is_reversed(line)

    def _add(
        self,
        event: Event,
        referral: AnyReferral,
        program: Program,
        schedule: FeeSchedule,
        rules: FeeRules,
        rule: FeeRule,
        value: int,
        arithmetic: dict[str, Any],
    ) -> None:
        if value <= 0:
            return
        # The hold runs from when the platform records the line, never from an earlier occurred_at: a funding
        # reported seven weeks late still waits its full hold (DESIGN.md, "Time").
        hold_until = max(event.occurred_at, self.now) + timedelta(days=program.hold_period_days)
        status = AccrualStatus.pending if hold_until > self.now else AccrualStatus.payable
        line = Line(
            f"{event.id}:{rule.value}",
            referral,
            event,
            schedule.id,
            rule,
            value,
            event.occurred_at,
            hold_until,
            status,
            arithmetic,
            id=self._new_id(),
        )
        self._append(line)
        month = business_month(event.occurred_at)
        key = (referral.partner_id, month)
        used_by_referral, used_by_month = self.context.used_by_referral, self.context.used_by_partner_month
        used_before = used_by_month.get(key, 0)
        # What each cap leaves of room (None: no such cap); the line is allowed what the tighter one leaves.
        caps = rules.caps
        referral_room = (
            None if caps.per_referral_fen is None else caps.per_referral_fen - used_by_referral.get(referral.id, 0)
        )
        month_room = None if caps.per_partner_month_fen is None else caps.per_partner_month_fen - used_before
        other = value if referral_room is None else min(value, referral_room)
        allowed = max(0, other if month_room is None else min(other, month_room))
        used_by_referral[referral.id] = used_by_referral.get(referral.id, 0) + allowed
        used_by_month[key] = used_before + allowed
        which = None
        if allowed < value:
            # The cap left with the least room once this line's allowed part is counted (the referral's on a tie).
            if referral_room is not None and (month_room is None or referral_room <= month_room):
                which = "per_referral"
            else:
                which = "per_partner_month"
        if self.bounds is not None and caps.per_partner_month_fen is not None:
            self.bounds.note(
                key,
                caps.per_partner_month_fen,
                used_before - self.bounds.assumed.get(key, 0),
                other,
                allowed,
                None if referral_room is None else referral_room - allowed,
                None if which is None else which == "per_referral",
            )
        if which is not None:
            self._append(
                Line(
                    f"{event.id}:{rule.value}:cap",
                    referral,
                    event,
                    schedule.id,
                    FeeRule.cap,
                    -(value - allowed),
                    event.occurred_at,
                    hold_until,
                    status,
                    {"cap": which, "line_fen": value, "allowed_fen": allowed},
                    reverses_id=line.id,
                    id=self._new_id(),
                )
            )

    # --- clawback ----------------------------------------------------------------------------------------------

    def _claw_back(
        self, event: Event, referral: AnyReferral, account: Account, program: Program, rules: FeeRules
    ) -> None:
        targets: tuple[FeeRule, ...]
        if event.type is EventType.account_closed:
            targets = EARNING_RULES
        elif (
            event.type is EventType.assets_snapshot
            and rules.funded_bounty
            and int(event.effects.get("assets_fen", 0)) < rules.funded_bounty.min_assets_fen
        ):
            targets = (FeeRule.funded_bounty, FeeRule.tier_top_up)
        elif event.type is EventType.bundle_cancelled:
            targets = (FeeRule.bundle_fee,)
        else:
            return
        horizon = event.occurred_at - timedelta(days=program.clawback_period_days)
        lines = self._lines_of(referral.id)
        candidates = [line for line in lines if line.rule in targets and line.occurred_at <= event.occurred_at]
        if event.type is EventType.bundle_cancelled:
            candidates = [
                line
                for line in candidates
                if line.arithmetic.get("product_code") == event.product_code and not self._clawed(lines, line.id)
            ][-1:]
        for original in candidates:
            if original.occurred_at < horizon or self._is_reversed(original) or self._clawed(lines, original.id):
                continue
            cuts = [line for line in lines if line.rule is FeeRule.cap and line.reverses_id == original.id]
            net = original.amount_fen + sum(line.amount_fen for line in cuts)
            in_hold = original.status is AccrualStatus.pending
            if in_hold:
                for cancelled in (original, *cuts):
                    if isinstance(cancelled, Line):
                        cancelled.status = AccrualStatus.reversed
                    else:
                        self.cancelled_ids.add(cancelled.id)
            self._append(
                Line(
                    f"{event.id}:{FeeRule.clawback.value}:{original.source_key}",
                    referral,
                    event,
                    original.fee_schedule_id,
                    FeeRule.clawback,
                    -net,
                    event.occurred_at,
                    max(event.occurred_at, self.now),  # due at once, from when it is recorded
                    AccrualStatus.reversed if in_hold else AccrualStatus.payable,
                    {
                        "reverses_rule": original.rule.value,
                        "trigger": event.type.value,
                        "within_days": program.clawback_period_days,
                    },
                    reverses_id=original.id,
                    id=self._new_id(),
                )
            )

    @staticmethod
    def _clawed(lines: list[LedgerLine | Line], line_id: str) -> bool:
        return any(line.rule is FeeRule.clawback and line.reverses_id == line_id for line in lines)


async def accrue(
    session: AsyncSession,
    events: Sequence[Event],
    accounts: Mapping[str, Account],
    referrals: Mapping[str, AnyReferral],
    now: datetime,
    *,
    key_prefix: str = "",
    caps_checked_at_end: bool = False,
) -> int:
    """Accrue the applied, attributed ``events`` (in time order); returns how many lines were written.

    ``key_prefix`` accrues events again, for a referral an attribution move gave them to: the lines' source keys
    carry the move, so that the lines they made for the earlier holder stay what they are.

    ``caps_checked_at_end`` (the feed): the monthly caps' usage is read unlocked and checked when it is added, at
    the end (``app.fees.cap_usage``); the lines are decided again under the locks if a concurrent writer changed
    it. Otherwise the months are locked before anything is decided."""
    attributed = [event for event in events if event.status is EventStatus.applied and event.referral_id in referrals]
    if not attributed:
        return 0
    involved = {event.referral_id or "": referrals[event.referral_id or ""] for event in attributed}
    attributed.sort(key=lambda event: event.occurred_at)
    context = await _load_context(session, involved, attributed, lock_caps=not caps_checked_at_end)
    earlier = [line for lines in context.lines_by_referral.values() for line in lines]
    used_by_referral = dict(context.used_by_referral)
    bounds = UsageBounds(dict(context.used_by_partner_month)) if caps_checked_at_end else None
    accrual = _decide(context, accounts, involved, attributed, now, bounds)
    added = None
    if bounds is not None:
        added = planned_usage(accrual.lines, accrual.cancelled_ids, earlier)
        within = await add_cap_usage_within(session, added, bounds)
        if within != {*added, *bounds.ranges}:
            # A concurrent writer moved a month out of the range decided on: decide again from the usage now
            # locked (less what was just added to the months still in range).
            locked = await lock_cap_usage(session, [*added, *bounds.ranges])
            added = {key: added.get(key, 0) if key in within else 0 for key in locked}
            context.used_by_partner_month = {key: used - added[key] for key, used in locked.items()}
            context.used_by_referral = used_by_referral
            accrual = _decide(context, accounts, involved, attributed, now, None)
    for line in accrual.lines:
        line.source_key = key_prefix + line.source_key
    return await write_lines(session, accrual.lines, accrual.cancelled_ids, earlier, now, usage_added=added)


def _decide(
    context: _Context,
    accounts: Mapping[str, Account],
    referrals: Mapping[str, AnyReferral],
    events: Sequence[Event],
    now: datetime,
    bounds: UsageBounds | None,
) -> Accrual:
    accrual = Accrual(context, accounts, now, bounds=bounds)
    for event in events:
        accrual.on_event(event, referrals[event.referral_id or ""])
    return accrual


async def release_held(session: AsyncSession, now: datetime, partners: PartnerFilter = EVERY_PARTNER) -> int:
    """Lines (of the ``partners``) whose hold period ended become payable, but those of a referral under an open
    risk review (``app.fees.reviews``): they stay on hold until the review ends."""
    under_review = exists().where(
        col(FeeReviewHold.referral_id) == col(FeeAccrual.referral_id), col(FeeReviewHold.released_at).is_(None)
    )
    result = await session.execute(
        update(FeeAccrual)
        .where(
            col(FeeAccrual.status) == AccrualStatus.pending,
            col(FeeAccrual.hold_until) <= now,
            partners.where(col(FeeAccrual.partner_id)),
            ~under_review,
        )
        .values(status=AccrualStatus.payable, updated_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
