"""Risk cases (DESIGN.md, "Risk"): a signal opens a case for alliance managers, or joins the partner's open one;
while a case is open the fee lines of its referrals stay on hold (``app.fees.reviews``); closing it — cleared
(the lines go into the next close) or confirmed (the lines reversed, the referrals rejected) — is audited.

The detectors (``app.risk.signals``) call ``raise_signal``; the staff API and the console call the rest. The
caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog import service as catalog
from app.core import clock
from app.core.models import new_id
from app.core.pagination import PageParams, paginate_query
from app.core.problems import Conflict, NotFound, Unprocessable
from app.fees import reviews
from app.fees.models import FeeAccrual
from app.people import service as people
from app.referrals import rejections as referrals
from app.referrals import service as referral_service
from app.risk.models import RiskCase, RiskCaseEvent, RiskCaseReferral, RiskSignal
from app.risk.schemas import INLINED, CaseEventKind, CaseOutcome, CaseStatus, Signal, SignalKind

_SIGNALS = RiskSignal.__table__  # type: ignore[attr-defined]
_CASE_REFERRALS = RiskCaseReferral.__table__  # type: ignore[attr-defined]
_DETECTOR = Actor.system("risk-signals")


class ForeignReferrals(Unprocessable):
    slug, title = "signal-foreign-referrals", "Referrals of another partner"


async def _open_case(session: AsyncSession, partner_id: str, now: datetime) -> tuple[RiskCase, bool]:
    """The partner's open case, opened now if it has none (``uq_risk_cases_open_partner``: racing signals of one
    partner open one case). Locked for the rest of the transaction."""
    case_id = new_id("rsk")
    inserted = await session.execute(
        text(
            "INSERT INTO risk_cases (id, partner_id, status, opened_at, created_at, updated_at) "
            "VALUES (:id, :partner_id, 'open', :now, :now, :now) "
            "ON CONFLICT (partner_id) WHERE status = 'open' DO NOTHING RETURNING id"
        ),
        {"id": case_id, "partner_id": partner_id, "now": now},
    )
    opened = inserted.scalar_one_or_none() is not None
    case = (
        await session.scalars(
            select(RiskCase)
            .where(col(RiskCase.partner_id) == partner_id, col(RiskCase.status) == CaseStatus.open)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return case, opened


async def _check_referrals(session: AsyncSession, signal: Signal) -> None:
    owned = await referral_service.owned_ids(session, signal.partner_id, signal.referral_ids)
    if len(owned) != len(signal.referral_ids):
        raise ForeignReferrals("Every referral a signal names must be one of its partner's.")


async def raise_signal(session: AsyncSession, signal: Signal, *, now: datetime | None = None) -> RiskCase:
    """Record ``signal`` on its partner's open case (opening one if there is none) and hold the fee lines of its
    referrals. Idempotent by ``signal.fingerprint``: a signal already raised adds nothing and returns the case it
    went to (even if that case is closed since). Raises ``ForeignReferrals`` (422) when a referral named is not
    the partner's, ``NotFound`` for an unknown partner."""
    now = now or clock.now()
    known = await session.scalar(
        select(col(RiskSignal.case_id)).where(col(RiskSignal.fingerprint) == signal.fingerprint)
    )
    if known is not None:
        return await _case(session, known)
    await catalog.get_partner(session, signal.partner_id)  # NotFound for an unknown partner
    await _check_referrals(session, signal)
    case, opened = await _open_case(session, signal.partner_id, now)
    signal_id = new_id("sig")
    written = await session.execute(
        insert(_SIGNALS)
        .values(
            id=signal_id,
            case_id=case.id,
            kind=signal.kind.value,
            fingerprint=signal.fingerprint,
            referral_ids=list(signal.referral_ids),
            evidence=signal.evidence,
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(_SIGNALS.c.id)
    )
    if written.scalar_one_or_none() is None:  # raced by the same signal: the other transaction recorded it
        known = await session.scalar(
            select(col(RiskSignal.case_id)).where(col(RiskSignal.fingerprint) == signal.fingerprint)
        )
        return await _case(session, known or case.id)
    added: list[str] = []
    if signal.referral_ids:
        rows = [{"case_id": case.id, "referral_id": rid, "added_at": now} for rid in signal.referral_ids]
        added = list(
            (
                await session.execute(
                    insert(_CASE_REFERRALS)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .returning(_CASE_REFERRALS.c.referral_id)
                )
            ).scalars()
        )
        await reviews.hold_referrals(session, case.id, signal.referral_ids, now)
    if opened:
        _event(session, case.id, CaseEventKind.opened, _DETECTOR.id, now, partner_id=case.partner_id)
        await audit.record(
            session,
            _DETECTOR,
            "risk_case.opened",
            object_type="risk_case",
            object_id=case.id,
            partner_id=case.partner_id,
        )
    _event(
        session,
        case.id,
        CaseEventKind.signal_added,
        _DETECTOR.id,
        now,
        signal_id=signal_id,
        kind=signal.kind.value,
        referrals_added=len(added),
    )
    await audit.record(
        session,
        _DETECTOR,
        "risk_case.signal_added",
        object_type="risk_case",
        object_id=case.id,
        signal_id=signal_id,
        kind=signal.kind.value,
        referrals_added=len(added),
    )
    case.updated_at = now
    session.add(case)
    await session.flush()
    return case


def _event(
    session: AsyncSession, case_id: str, event: CaseEventKind, actor_id: str | None, now: datetime, **details: object
) -> None:
    session.add(RiskCaseEvent(case_id=case_id, kind=event, actor_id=actor_id, details=dict(details), at=now))


async def _case(session: AsyncSession, case_id: str) -> RiskCase:
    case = await session.get(RiskCase, case_id)
    if case is None:
        raise NotFound("No such risk case.")
    return case


# --- reading ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFilters:
    status: CaseStatus | None = None
    partner_id: str | None = None
    assignee_id: str | None = None
    unassigned: bool = False


def _filtered(query: Select[Any], filters: CaseFilters) -> Select[Any]:
    if filters.status is not None:
        query = query.where(col(RiskCase.status) == filters.status)
    if filters.partner_id:
        query = query.where(col(RiskCase.partner_id) == filters.partner_id)
    if filters.assignee_id:
        query = query.where(col(RiskCase.assignee_id) == filters.assignee_id)
    elif filters.unassigned:
        query = query.where(col(RiskCase.assignee_id).is_(None))
    return query


async def list_cases(session: AsyncSession, params: PageParams, filters: CaseFilters) -> list[RiskCase]:
    """Cases newest first (cursor-paginated); staff only (every partner's)."""
    query = paginate_query(_filtered(select(RiskCase), filters), params, col(RiskCase.created_at), col(RiskCase.id))
    return list((await session.scalars(query)).all())


async def count_cases(session: AsyncSession, filters: CaseFilters) -> int:
    query = _filtered(select(func.count()).select_from(RiskCase), filters)
    return int(await session.scalar(query) or 0)


@dataclass(frozen=True)
class CaseSummary:
    """What a list row shows beside the case: the kinds of its signals and how many referrals it names."""

    signal_kinds: list[SignalKind]
    referral_count: int


async def summaries(session: AsyncSession, case_ids: Sequence[str]) -> dict[str, CaseSummary]:
    """Per case: its signal kinds and referral count (two queries, whatever the number of cases)."""
    if not case_ids:
        return {}
    kinds: dict[str, list[SignalKind]] = {case_id: [] for case_id in case_ids}
    for case_id, kind in (
        await session.execute(
            select(col(RiskSignal.case_id), col(RiskSignal.kind))
            .where(col(RiskSignal.case_id).in_(list(case_ids)))
            .distinct()
            .order_by(col(RiskSignal.case_id), col(RiskSignal.kind))
        )
    ).all():
        kinds[case_id].append(kind)
    counts = dict(
        (
            await session.execute(
                select(col(RiskCaseReferral.case_id), func.count())
                .where(col(RiskCaseReferral.case_id).in_(list(case_ids)))
                .group_by(col(RiskCaseReferral.case_id))
            )
        ).all()
    )
    return {case_id: CaseSummary(kinds[case_id], int(counts.get(case_id, 0))) for case_id in case_ids}


@dataclass(frozen=True)
class CaseFile:
    """A case with everything its page shows: the first ``INLINED`` referrals and lines, and the counts of all."""

    case: RiskCase
    summary: CaseSummary
    referral_ids: list[str]
    signals: list[RiskSignal]
    lines: list[FeeAccrual]
    line_totals: reviews.ReviewLines
    timeline: list[RiskCaseEvent]

    @property
    def lines_held_fen(self) -> int:
        """What the case keeps off statements: its referrals' lines not on a statement and not cancelled."""
        return self.line_totals.held_fen if self.case.status is CaseStatus.open else 0

    @property
    def lines_held(self) -> int:
        return self.line_totals.held if self.case.status is CaseStatus.open else 0

    @property
    def truncated(self) -> bool:
        """Whether some referrals or lines are left for the pages."""
        return len(self.referral_ids) < self.summary.referral_count or len(self.lines) < self.line_totals.count


async def get_case(session: AsyncSession, case_id: str, *, lock: bool = False) -> RiskCase:
    query = select(RiskCase).where(col(RiskCase.id) == case_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    case = (await session.scalars(query)).one_or_none()
    if case is None:
        raise NotFound("No such risk case.")
    return case


async def case_file(session: AsyncSession, case_id: str) -> CaseFile:
    """The case, its signals (evidence), its first referrals and their first fee lines, and the timeline."""
    case = await get_case(session, case_id)
    referral_ids = list(
        (
            await session.scalars(
                select(col(RiskCaseReferral.referral_id))
                .where(col(RiskCaseReferral.case_id) == case_id)
                .order_by(col(RiskCaseReferral.added_at), col(RiskCaseReferral.referral_id))
                .limit(INLINED)
            )
        ).all()
    )
    signals = list(
        (
            await session.scalars(
                select(RiskSignal)
                .where(col(RiskSignal.case_id) == case_id)
                .order_by(col(RiskSignal.raised_at), col(RiskSignal.id))
            )
        ).all()
    )
    timeline = list(
        (
            await session.scalars(
                select(RiskCaseEvent).where(col(RiskCaseEvent.case_id) == case_id).order_by(col(RiskCaseEvent.seq))
            )
        ).all()
    )
    # The fees domain holds every referral the case names under the case's id (``raise_signal``).
    lines = await reviews.first_review_lines(session, case_id, INLINED)
    totals = await reviews.review_line_totals(session, case_id)
    summary = (await summaries(session, [case_id]))[case_id]
    return CaseFile(case, summary, referral_ids, signals, lines, totals, timeline)


async def referrals_page(session: AsyncSession, case_id: str, params: PageParams) -> list[Any]:
    """A page of the referrals the case names, newest first: rows of ``id`` (the referral's) and ``created_at``
    (when the case added it), as ``page_of`` reads them. ``NotFound`` for an unknown case."""
    await get_case(session, case_id)
    named = _CASE_REFERRALS.c
    query = paginate_query(
        select(named.referral_id.label("id"), named.added_at.label("created_at")).where(named.case_id == case_id),
        params,
        named.added_at,
        named.referral_id,
    )
    return list((await session.execute(query)).all())


async def lines_page(session: AsyncSession, case_id: str, params: PageParams) -> list[FeeAccrual]:
    """A page of the fee lines of the case's referrals, newest first. ``NotFound`` for an unknown case."""
    await get_case(session, case_id)
    return await reviews.review_lines_page(session, case_id, params)


# --- acting -------------------------------------------------------------------------------------------------------


class CaseClosed(Conflict):
    slug, title = "risk-case-closed", "The risk case is closed"


def _require_open(case: RiskCase, action: str) -> None:
    if case.status is not CaseStatus.open:
        raise CaseClosed(f"This case is closed ({case.outcome.value if case.outcome else ''}); it cannot be {action}.")


class InvalidAssignee(Unprocessable):
    slug, title = "risk-assignee-invalid", "Not someone who can take the case"


PERSON = "person:"


async def _check_assignee(session: AsyncSession, assignee_id: str) -> None:
    username = assignee_id.removeprefix(PERSON)
    if username == assignee_id or not await people.person_may(session, username, "risk:manage"):
        raise InvalidAssignee(
            "A case goes to a person who manages risk cases, as person:<username> of an alliance manager whose "
            "account is active; null unassigns it."
        )


async def assign(session: AsyncSession, actor: Actor, case_id: str, assignee_id: str | None) -> RiskCase:
    """Give the open case to a person who may act on it (``person:<username>``, role with ``risk:manage``, not
    disabled) or to nobody; audited, on the timeline. Anyone else is ``InvalidAssignee`` (422), nothing changed."""
    now = clock.now()
    case = await get_case(session, case_id, lock=True)
    _require_open(case, "assigned")
    if assignee_id is not None:
        await _check_assignee(session, assignee_id)
    if case.assignee_id == assignee_id:
        return case
    before = case.assignee_id
    case.assignee_id, case.updated_at = assignee_id, now
    session.add(case)
    _event(session, case.id, CaseEventKind.assigned, actor.id, now, assignee_id=assignee_id, previous=before)
    await audit.record(
        session, actor, "risk_case.assigned", object_type="risk_case", object_id=case.id, assignee_id=assignee_id
    )
    await session.flush()
    return case


async def add_note(session: AsyncSession, actor: Actor, case_id: str, note: str) -> RiskCaseEvent:
    """A manager's note on the case's timeline (open or closed)."""
    now = clock.now()
    case = await get_case(session, case_id, lock=True)
    event = RiskCaseEvent(case_id=case.id, kind=CaseEventKind.note, actor_id=actor.id, details={"text": note}, at=now)
    session.add(event)
    await audit.record(session, actor, "risk_case.noted", object_type="risk_case", object_id=case.id)
    await session.flush()
    return event


@dataclass(frozen=True)
class Closing:
    case: RiskCase
    reversed_lines: int
    reversed_fen: int
    rejected_referrals: list[str]
    kept_referrals: list[str]


REJECTION_CAUSE = "risk_confirmed"


async def close_case(session: AsyncSession, actor: Actor, case_id: str, outcome: CaseOutcome, reason: str) -> Closing:
    """Close the case. ``cleared``: its holds end and its lines go into the next close. ``confirmed``: what its
    referrals still earn is reversed (``risk_confirmed`` lines) and they are rejected (timeline and webhook notice
    to the partner, with the neutral cause ``risk_confirmed``). Audited with the reason; a closed case is 409."""
    now = clock.now()
    case = await get_case(session, case_id, lock=True)
    _require_open(case, "closed again")
    reversed_lines = reversed_fen = 0
    rejected: list[str] = []
    kept: list[str] = []
    if outcome is CaseOutcome.confirmed:
        change = await reviews.reverse_reviewed(session, case.id, now)
        reversed_lines, reversed_fen = change.lines, change.net_fen
        referral_ids = list(
            (
                await session.scalars(
                    select(col(RiskCaseReferral.referral_id)).where(col(RiskCaseReferral.case_id) == case.id)
                )
            ).all()
        )
        rejected, kept = await referrals.reject_referrals(session, referral_ids, REJECTION_CAUSE, now)
    else:
        await reviews.release_review(session, case.id, now)
    case.status, case.outcome, case.reason = CaseStatus.closed, outcome, reason
    case.closed_at, case.closed_by, case.updated_at = now, actor.id, now
    session.add(case)
    details = {
        "outcome": outcome.value,
        "reversed_lines": reversed_lines,
        "reversed_fen": reversed_fen,
        "rejected_referrals": len(rejected),
    }
    _event(session, case.id, CaseEventKind.closed, actor.id, now, reason=reason, **details)
    await audit.record(
        session,
        actor,
        "risk_case.closed",
        object_type="risk_case",
        object_id=case.id,
        partner_id=case.partner_id,
        reason=reason,
        **details,
    )
    await session.flush()
    return Closing(case, reversed_lines, reversed_fen, rejected, kept)


async def cases_page(
    session: AsyncSession, filters: CaseFilters, *, offset: int, limit: int
) -> tuple[list[RiskCase], int]:
    """One page of cases for the console's inbox (oldest open first: the longest waiting on top) and the total."""
    total = await count_cases(session, filters)
    query = _filtered(select(RiskCase), filters).order_by(col(RiskCase.opened_at), col(RiskCase.id))
    rows = await session.scalars(query.offset(offset).limit(limit))
    return list(rows.all()), total
