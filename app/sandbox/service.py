"""Partners' test clocks in a sandbox (DESIGN.md, "Time" and "Sandbox").

A partner without a clock follows real time. The first advance gives it one: from then on the partner's time stands
still at the clock's ``now`` between two advances (every request of the partner, and every batch of it, reads
it), and only moves forward. An advance runs every job that falls due between the old and the new instant, in
time order and for that partner only: at each due instant (a window end, a hold end, an erasure date, a month
end) the clock stands at that instant while the same set-based jobs the worker runs on real time run for the
partner, and a month end closes that month for the partner. Advancing day by day and in one step therefore runs
the same jobs at the same instants: the same ledger, statements, timelines and webhook notices.

The worker's real-time jobs leave partners with a clock alone (``app.worker.runner``), and a staff close of a
month leaves them out (``sandbox_partners_left_out``): their months close on their own clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog import service as catalog
from app.core import clock
from app.core.business_time import month_of
from app.core.clock import FrozenClock
from app.core.config import Settings
from app.core.partner_filter import PartnerFilter
from app.core.problems import Conflict, Unprocessable
from app.fees import reviews
from app.fees.statements import CloseResult, close_period, parse_period
from app.referrals.models import UNCONVERTED_OUTCOMES
from app.sandbox.models import SandboxClock
from app.worker.jobs import JOBS

MAX_ADVANCE = timedelta(days=1830)
_TICK = timedelta(microseconds=1)  # erasure is due once the outcome is *older* than the retention period


class ClockMovesForwardOnly(Conflict):
    slug, title = "clock-moves-forward-only", "A test clock only moves forward"


class ClockAdvanceTooFar(Unprocessable):
    slug, title = "clock-advance-too-far", "Too far for one advance"


@dataclass(frozen=True)
class ClockView:
    partner_id: str
    now: datetime
    advanced_by_s: int
    frozen: bool


@dataclass(frozen=True)
class JobRun:
    job: str
    at: datetime
    rows: int


@dataclass(frozen=True)
class MonthClose:
    period: str
    at: datetime
    released_lines: int
    statemented_lines: int
    created_statements: int
    statement_ids: list[str]
    under_review: reviews.LeftOut  # the partner's due lines left out: their referral is under a risk review


@dataclass
class AdvanceResult:
    partner_id: str
    previous_now: datetime
    clock: ClockView
    jobs: list[JobRun] = field(default_factory=list)
    months_closed: list[MonthClose] = field(default_factory=list)


async def read_clock(session: AsyncSession, partner_id: str) -> ClockView:
    """The partner's test clock; a partner without one follows real time (``frozen`` false)."""
    await catalog.get_partner(session, partner_id)
    row = await session.get(SandboxClock, partner_id)
    if row is None:
        return ClockView(partner_id, clock.now(), 0, frozen=False)
    return ClockView(partner_id, row.now, row.advanced_by_s, frozen=True)


async def advance(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    partner_id: str,
    *,
    to: datetime | None = None,
    by: timedelta | None = None,
) -> AdvanceResult:
    """Move the partner's clock forward to ``to`` (or by ``by``), running every job due in between, in order.

    Concurrent advances of one partner wait for each other on the clock's row: each starts where the previous
    one ended, so no job runs twice.
    """
    await catalog.get_partner(session, partner_id)
    row = await _locked_clock(session, partner_id)
    start = row.now
    target = to if to is not None else start + (by or timedelta(0))
    if target <= start:
        raise ClockMovesForwardOnly(
            f"The clock stands at {start.isoformat()}; advance it to a later instant.", clock_now=start.isoformat()
        )
    if target - start > MAX_ADVANCE:
        raise ClockAdvanceTooFar(f"One advance moves the clock at most {MAX_ADVANCE.days} days; advance again.")
    result = AdvanceResult(partner_id, start, ClockView(partner_id, start, row.advanced_by_s, True))
    partners = PartnerFilter.just(partner_id)
    # What real time left due when the clock was set (the worker runs every minute); the month of ``start``, if it
    # ended there, was closed by the advance that ended there, or by finance on real time.
    await _run_due_jobs(session, actor, settings, partners, start, result, close_month=False)
    moment = start
    while (moment := await _next_due(session, settings, partner_id, moment)) <= target:
        await _run_due_jobs(session, actor, settings, partners, moment, result)
    row.now, row.advanced_by_s = target, row.advanced_by_s + round((target - start).total_seconds())
    session.add(row)
    await session.flush()
    result.clock = ClockView(partner_id, target, row.advanced_by_s, True)
    await audit.record(
        session,
        actor,
        "sandbox.clock_advanced",
        object_type="partner",
        object_id=partner_id,
        from_now=start.isoformat(),
        to_now=target.isoformat(),
        jobs=sum(run.rows for run in result.jobs),
        months_closed=[close.period for close in result.months_closed],
    )
    return result


@dataclass(frozen=True)
class LeftOut:
    partner_id: str
    clock_now: datetime
    reason: str  # "clock_before_period_end" or "closes_on_its_clock"


async def close_on_real_time(
    session: AsyncSession, actor: Actor, settings: Settings, period_name: str, now: datetime
) -> tuple[CloseResult, list[LeftOut]]:
    """A close of a month by staff (or the CLI), on real time. In a sandbox it leaves out the partners with a
    test clock: a month close for one partner uses that partner's clock, and their advances close their months
    as their clocks pass each month's end (a clock that has not reached it is not due; one that has, was closed
    then). Elsewhere every partner."""
    if not settings.sandbox_enabled:
        return await close_period(session, actor, period_name, now), []
    rows = (await session.scalars(select(SandboxClock).order_by(col(SandboxClock.partner_id)))).all()
    period = parse_period(period_name)
    left_out = [
        LeftOut(row.partner_id, row.now, "clock_before_period_end" if row.now < period.end else "closes_on_its_clock")
        for row in rows
    ]
    closed = await close_period(session, actor, period_name, now, PartnerFilter.all_but(row.partner_id for row in rows))
    return closed, left_out


async def _locked_clock(session: AsyncSession, partner_id: str) -> SandboxClock:
    """The partner's clock row, locked until the transaction ends; a partner without one gets one at the time it
    follows now."""
    now = clock.now()
    await session.execute(
        insert(SandboxClock)
        .values(partner_id=partner_id, now=now, advanced_by_s=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["partner_id"])
    )
    locked = await session.scalars(
        select(SandboxClock)
        .where(col(SandboxClock.partner_id) == partner_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return locked.one()


async def _run_due_jobs(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    partners: PartnerFilter,
    moment: datetime,
    result: AdvanceResult,
    *,
    close_month: bool = True,
) -> None:
    """The partner's jobs with its clock standing at ``moment``; at a month's end, that month's close."""
    with clock.scoped(FrozenClock(moment), settings):
        for job in JOBS:
            rows = await job.run(session, settings, moment, partners)
            if rows:
                result.jobs.append(JobRun(job.name, moment, rows))
        ended = month_of(moment - _TICK)
        if close_month and ended.end == moment:
            closed = await close_period(session, actor, ended.name, moment, partners)
            result.months_closed.append(
                MonthClose(
                    ended.name,
                    moment,
                    closed.released_lines,
                    closed.statemented_lines,
                    closed.created_statements,
                    [statement.id for statement in closed.statements],
                    closed.under_review,
                )
            )


# The partner's next instant (after :after) at which a job has something to do: an eligible referral's window
# end, a held line's hold end, an unconverted referral's (or failed batch's) erasure date.
_NEXT_DUE = text(
    """
    SELECT min(due) FROM (
        SELECT min(window_ends_at) AS due FROM referrals
        WHERE partner_id = :partner AND status = 'eligible' AND window_ends_at > :after
        UNION ALL
        SELECT min(hold_until) FROM fee_accruals
        WHERE partner_id = :partner AND status = 'pending' AND hold_until > :after
        UNION ALL
        SELECT min(outcome_at) + :retention + :tick FROM referrals
        WHERE partner_id = :partner AND status = ANY(:unconverted) AND erased_at IS NULL
          AND outcome_at + :retention + :tick > :after
        UNION ALL
        SELECT min(b.updated_at) + :retention + :tick FROM referral_batches b
        WHERE b.partner_id = :partner AND b.status = 'failed' AND b.updated_at + :retention + :tick > :after
          AND EXISTS (SELECT 1 FROM referral_batch_chunks c WHERE c.batch_id = b.id)
    ) AS dues
    """
)


async def _next_due(session: AsyncSession, settings: Settings, partner_id: str, after: datetime) -> datetime:
    """The first instant after ``after`` at which something falls due for the partner: the earliest of its data's
    due instants and the end of the business month ``after`` is in."""
    month_end = month_of(after).end
    found = await session.scalar(
        _NEXT_DUE,
        {
            "partner": partner_id,
            "after": after,
            "retention": timedelta(days=settings.referral_retention_days),
            "tick": _TICK,
            "unconverted": [status.value for status in UNCONVERTED_OUTCOMES],
        },
    )
    return min(found, month_end) if found is not None else month_end
