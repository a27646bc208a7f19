"""Staff oversight of attribution: one referral with its partner, program and timeline; the conflicts queue with
both referrals' partners, programs, references and times (one query per page, whatever its length); resolving a
conflict, which may move the attribution (``app.referrals.overrides``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog.models import Partner, Program
from app.core import clock
from app.core.pagination import PageParams, paginate_query
from app.core.problems import NotFound
from app.referrals.models import AttributionConflict, ConflictStatus, Referral, ReferralEvent, ReferralStatus
from app.referrals.overrides import move_attribution
from app.referrals.transitions import InvalidReferralTransition


@dataclass(frozen=True)
class Named:
    id: str
    name: str


@dataclass(frozen=True)
class StaffReferral:
    referral: Referral
    partner: Named
    program: Named
    timeline: list[ReferralEvent]


async def staff_referral(session: AsyncSession, referral_id: str) -> StaffReferral:
    """One referral of any partner, with its partner's and program's names and its timeline (two queries)."""
    row = (
        await session.execute(
            select(Referral, col(Partner.display_name), col(Program.name))
            .join(Partner, col(Partner.id) == col(Referral.partner_id))
            .join(Program, col(Program.id) == col(Referral.program_id))
            .where(col(Referral.id) == referral_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("No such referral.")
    referral, partner_name, program_name = row
    timeline = await session.scalars(
        select(ReferralEvent).where(col(ReferralEvent.referral_id) == referral_id).order_by(col(ReferralEvent.seq))
    )
    return StaffReferral(
        referral, Named(referral.partner_id, partner_name), Named(referral.program_id, program_name), list(timeline)
    )


@dataclass(frozen=True)
class ConflictSide:
    referral_id: str
    external_ref: str
    status: ReferralStatus
    partner: Named
    program: Named
    received_at: datetime


@dataclass(frozen=True)
class ConflictView:
    conflict: AttributionConflict
    holding: ConflictSide
    duplicate: ConflictSide

    @property
    def id(self) -> str:
        return self.conflict.id

    @property
    def created_at(self) -> datetime:
        return self.conflict.created_at


def _conflicts_query() -> Select[Any]:
    holding, duplicate = aliased(Referral), aliased(Referral)
    holding_partner, duplicate_partner = aliased(Partner), aliased(Partner)
    holding_program, duplicate_program = aliased(Program), aliased(Program)
    sides = []
    for referral, partner, program in (
        (holding, holding_partner, holding_program),
        (duplicate, duplicate_partner, duplicate_program),
    ):
        sides += [
            referral.id,
            referral.external_ref,
            referral.status,
            referral.partner_id,
            partner.display_name,
            referral.program_id,
            program.name,
            referral.created_at,
        ]
    return (
        select(AttributionConflict, *sides)
        .join(holding, col(holding.id) == col(AttributionConflict.holding_referral_id))
        .join(holding_partner, col(holding_partner.id) == col(holding.partner_id))
        .join(holding_program, col(holding_program.id) == col(holding.program_id))
        .join(duplicate, col(duplicate.id) == col(AttributionConflict.duplicate_referral_id))
        .join(duplicate_partner, col(duplicate_partner.id) == col(duplicate.partner_id))
        .join(duplicate_program, col(duplicate_program.id) == col(duplicate.program_id))
    )


def _side(values: tuple[object, ...]) -> ConflictSide:
    referral_id, external_ref, status, partner_id, partner_name, program_id, program_name, received_at = values
    return ConflictSide(
        str(referral_id),
        str(external_ref),
        ReferralStatus(str(status)),
        Named(str(partner_id), str(partner_name)),
        Named(str(program_id), str(program_name)),
        received_at,  # type: ignore[arg-type]
    )


def _view(row: tuple[object, ...]) -> ConflictView:
    conflict = row[0]
    assert isinstance(conflict, AttributionConflict)
    return ConflictView(conflict, _side(tuple(row[1:9])), _side(tuple(row[9:17])))


async def list_conflicts(
    session: AsyncSession, params: PageParams, status: ConflictStatus | None = None
) -> list[ConflictView]:
    """A page of conflicts, newest first, each with both referrals' partners, programs, references and times."""
    statement = _conflicts_query()
    if status:
        statement = statement.where(col(AttributionConflict.status) == status)
    statement = paginate_query(statement, params, col(AttributionConflict.created_at), col(AttributionConflict.id))
    return [_view(tuple(row)) for row in (await session.execute(statement)).all()]


async def count_conflicts(session: AsyncSession, status: ConflictStatus | None = None) -> int:
    """How many conflicts there are (in ``status``): the queue's count."""
    statement = select(func.count()).select_from(AttributionConflict)
    if status:
        statement = statement.where(col(AttributionConflict.status) == status)
    return int(await session.scalar(statement) or 0)


async def conflicts_page(
    session: AsyncSession, status: ConflictStatus | None, *, offset: int, limit: int
) -> list[ConflictView]:
    """Conflicts newest first from ``offset`` (the console's numbered pages), as ``list_conflicts`` shows them."""
    statement = _conflicts_query()
    if status:
        statement = statement.where(col(AttributionConflict.status) == status)
    statement = statement.order_by(col(AttributionConflict.created_at).desc(), col(AttributionConflict.id).desc())
    rows = (await session.execute(statement.offset(offset).limit(limit))).all()
    return [_view(tuple(row)) for row in rows]


async def conflict_neighbours(
    session: AsyncSession, status: ConflictStatus | None, conflict_id: str
) -> tuple[str | None, str | None]:
    """The conflicts just before and after ``conflict_id`` in the queue's order (newest first): prev / next."""
    order = (col(AttributionConflict.created_at).desc(), col(AttributionConflict.id).desc())
    ranked = select(
        col(AttributionConflict.id),
        func.lag(AttributionConflict.id).over(order_by=order).label("before"),
        func.lead(AttributionConflict.id).over(order_by=order).label("after"),
    )
    if status:
        ranked = ranked.where(col(AttributionConflict.status) == status)
    window = ranked.subquery()
    row = (await session.execute(select(window.c.before, window.c.after).where(window.c.id == conflict_id))).first()
    return (row.before, row.after) if row else (None, None)


@dataclass(frozen=True)
class MaskedSubject:
    name: str | None
    identifier: str | None
    mobile: str | None


async def masked_subjects(session: AsyncSession, referral_ids: list[str]) -> dict[str, MaskedSubject]:
    """The masked identity of each referral (what staff see without unmasking), in one query."""
    rows = await session.execute(
        select(
            col(Referral.id), col(Referral.name_masked), col(Referral.identifier_masked), col(Referral.mobile_masked)
        ).where(col(Referral.id).in_(sorted(set(referral_ids))))
    )
    return {row[0]: MaskedSubject(row[1], row[2], row[3]) for row in rows}


async def get_conflict(session: AsyncSession, conflict_id: str) -> ConflictView:
    row = (
        await session.execute(
            _conflicts_query()
            .where(col(AttributionConflict.id) == conflict_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("No such conflict.")
    return _view(tuple(row))


async def resolve_conflict(
    session: AsyncSession, actor: Actor, conflict_id: str, resolution: str, reason: str
) -> ConflictView:
    """Rule 5: keep the holder, or award the person to the later referral, at any stage of the funnel (the
    attribution moves, and its fees with it: ``app.referrals.overrides``)."""
    conflict = (
        await session.scalars(
            select(AttributionConflict).where(col(AttributionConflict.id) == conflict_id).with_for_update()
        )
    ).one_or_none()
    if conflict is None:
        raise NotFound("No such conflict.")
    if conflict.status is ConflictStatus.resolved:
        raise InvalidReferralTransition("The conflict is already resolved.")
    if resolution == "award_duplicate":
        await move_attribution(session, actor, conflict.duplicate_referral_id, reason, conflict_id=conflict.id)
    now = clock.now()
    conflict.status = ConflictStatus.resolved
    conflict.resolution = resolution
    conflict.reason = reason
    conflict.resolved_by = actor.id
    conflict.resolved_at = now
    session.add(conflict)
    await session.flush()
    await audit.record(
        session,
        actor,
        "attribution.overridden" if resolution == "award_duplicate" else "conflict.resolved",
        object_type="attribution_conflict",
        object_id=conflict.id,
        resolution=resolution,
        reason=reason,
        holding_referral_id=conflict.holding_referral_id,
        duplicate_referral_id=conflict.duplicate_referral_id,
    )
    return await get_conflict(session, conflict.id)
