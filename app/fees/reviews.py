"""Fee lines under review (DESIGN.md, "Risk"): while a risk case names a referral, its fee lines stay on hold and
out of every statement, whatever their hold period says — the lines already written and those accrued later.

The hold is kept here, by referral, in ``fee_review_holds`` (the fees domain's table; the risk domain calls
``hold_referrals`` and ``release_review``, and reads a review's lines with ``first_review_lines``,
``review_lines_page`` and ``review_line_totals``), so the accrual engine knows nothing of it. A held line stays
``pending`` after its hold period ends (``release_held`` passes it over until the review ends), and the period
close (``app.fees.statements``) leaves out every line whose referral is under an open review — the close's
``UNDER_REVIEW`` condition — and reports what it left out (``lines_left_out``). Releasing a review puts its lines
into the next close; confirming it reverses them first (``reverse_reviewed``, rule ``risk_confirmed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.business_time import month_named
from app.core.pagination import PageParams, paginate_query
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.fees.models import AccrualStatus, FeeAccrual, FeeReviewHold, FeeRule
from app.fees.moves import LedgerChange, reverse_referrals

_HOLDS = FeeReviewHold.__table__  # type: ignore[attr-defined]

# The close's condition on a ledger line aliased ``a``: its referral is under no open review.
NOT_UNDER_REVIEW = (
    "NOT EXISTS (SELECT 1 FROM fee_review_holds h WHERE h.referral_id = a.referral_id AND h.released_at IS NULL)"
)


def open_review_referrals() -> sa.Select[str]:
    """The referrals under an open review, as a subquery (``FeeAccrual.referral_id.in_(...)``)."""
    return select(col(FeeReviewHold.referral_id)).where(col(FeeReviewHold.released_at).is_(None))


async def hold_referrals(session: AsyncSession, review_id: str, referral_ids: Sequence[str], now: datetime) -> int:
    """Hold every fee line of ``referral_ids`` (written or to come) under ``review_id``; a referral already held by
    the review is left as it is. Returns how many referrals were newly held."""
    if not referral_ids:
        return 0
    rows = [{"review_id": review_id, "referral_id": rid, "held_at": now} for rid in dict.fromkeys(referral_ids)]
    result = await session.execute(insert(_HOLDS).values(rows).on_conflict_do_nothing())
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def release_review(session: AsyncSession, review_id: str, now: datetime) -> int:
    """End the review's holds: its lines go into the next close (unless another open review holds them)."""
    result = await session.execute(
        update(FeeReviewHold)
        .where(col(FeeReviewHold.review_id) == review_id, col(FeeReviewHold.released_at).is_(None))
        .values(released_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def referrals_under_review(session: AsyncSession, referral_ids: Sequence[str]) -> set[str]:
    """Which of ``referral_ids`` are under an open review (for the partner's view: "under review")."""
    if not referral_ids:
        return set()
    rows = await session.scalars(
        select(col(FeeReviewHold.referral_id)).where(
            col(FeeReviewHold.referral_id).in_(list(referral_ids)), col(FeeReviewHold.released_at).is_(None)
        )
    )
    return set(rows.all())


def _review_lines(review_id: str) -> sa.Select[FeeAccrual]:
    """The ledger lines of every referral the review held (released or not): a risk case's lines."""
    held = select(col(FeeReviewHold.referral_id)).where(col(FeeReviewHold.review_id) == review_id)
    return select(FeeAccrual).where(col(FeeAccrual.referral_id).in_(held))


async def first_review_lines(session: AsyncSession, review_id: str, limit: int) -> list[FeeAccrual]:
    """The review's first ``limit`` lines, in the order written (what a case's page shows inline)."""
    query = _review_lines(review_id).order_by(col(FeeAccrual.created_at), col(FeeAccrual.id)).limit(limit)
    return list((await session.scalars(query)).all())


async def review_lines_page(session: AsyncSession, review_id: str, params: PageParams) -> list[FeeAccrual]:
    """A page of the review's lines, newest first (cursor-paginated, as every list)."""
    query = paginate_query(_review_lines(review_id), params, col(FeeAccrual.created_at), col(FeeAccrual.id))
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class ReviewLines:
    """The review's lines counted: all, those held (not on a statement, pending or payable) and their net amount,
    and those not reversed (what confirming would reverse)."""

    count: int
    held: int
    held_fen: int
    not_reversed: int


async def review_line_totals(session: AsyncSession, review_id: str) -> ReviewLines:
    lines = _review_lines(review_id).subquery()
    held = sa.and_(lines.c.statement_id.is_(None), lines.c.status.in_([AccrualStatus.pending, AccrualStatus.payable]))
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(held),
                func.coalesce(func.sum(lines.c.amount_fen).filter(held), 0),
                func.count().filter(lines.c.status != AccrualStatus.reversed),
            ).select_from(lines)
        )
    ).one()
    return ReviewLines(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@dataclass(frozen=True)
class LeftOut:
    """Lines a close left out because their referral is under review: how many, their net amount, partners."""

    lines: int
    amount_fen: int
    partners: int


NOTHING_LEFT_OUT = LeftOut(0, 0, 0)

_LEFT_OUT = """
    SELECT count(*) AS lines, coalesce(sum(a.amount_fen), 0) AS amount, count(DISTINCT a.partner_id) AS partners
    FROM fee_accruals a
    WHERE a.status IN ('pending', 'payable') AND a.statement_id IS NULL AND a.hold_until < :period_end_at
      AND NOT ({not_under_review}) AND {partners}
    """


async def lines_left_out(
    session: AsyncSession, period_end_at: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> LeftOut:
    """The lines due by ``period_end_at`` that a close leaves out because they are under review."""
    query = text(_LEFT_OUT.format(not_under_review=NOT_UNDER_REVIEW, partners=partners.sql("a.partner_id")))
    row = (await session.execute(query, {"period_end_at": period_end_at, **partners.params})).one()
    return LeftOut(int(row.lines), int(row.amount), int(row.partners))


async def reverse_reviewed(session: AsyncSession, review_id: str, now: datetime) -> LedgerChange:
    """The review confirmed abuse: every line its referrals still earn is reversed by a ``risk_confirmed`` line
    (through the reversal an attribution move uses), then the holds end. A line the review kept off statements
    was never paid: it is cancelled with its reversal (both ``reversed``), as in a hold period; a line already on
    a statement keeps its status and its reversal goes on the partner's next statement."""
    referral_ids = list(
        (
            await session.scalars(
                select(col(FeeReviewHold.referral_id)).where(col(FeeReviewHold.review_id) == review_id)
            )
        ).all()
    )
    change = await reverse_referrals(session, referral_ids, f"risk:{review_id}", FeeRule.risk_confirmed, now)
    if change.lines:
        await session.execute(
            text(
                """
                UPDATE fee_accruals SET status = 'reversed', updated_at = :now
                WHERE id IN (
                    SELECT o.id FROM fee_accruals o JOIN fee_accruals r ON r.reverses_id = o.id
                    WHERE left(r.source_key, length(:key)) = :key AND o.status = 'payable' AND o.statement_id IS NULL
                    UNION ALL
                    SELECT r.id FROM fee_accruals o JOIN fee_accruals r ON r.reverses_id = o.id
                    WHERE left(r.source_key, length(:key)) = :key AND o.status = 'payable' AND o.statement_id IS NULL
                )
                """
            ),
            {"now": now, "key": f"risk:{review_id}:"},
        )
    await release_review(session, review_id, now)
    return change


async def partner_lines_under_review(session: AsyncSession, partner_id: str, period_name: str) -> LeftOut:
    """The partner's lines due by the end of the month ``period_name`` (``YYYY-MM``) that are on no statement because
    they are under review: what the partner is told ("under review"), never why."""
    month = month_named(period_name)
    if month is None:
        return NOTHING_LEFT_OUT
    return await lines_left_out(session, month.end, PartnerFilter.just(partner_id))
