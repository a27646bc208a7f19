"""Monthly statements (DESIGN.md, "Fee rules" and "Reconciliation"): closing a period, the statement lifecycle
``draft → issued → (disputed) → approved → paid``, and finance's adjustments.

Fees knows nothing of reconciliation: approving (once no reconciliation item is open) and recording the payment
are settlement's use cases (``app.settlement``), which move the statement here with ``record_approval`` and
``record_payment``; reconciliation marks a statement disputed with ``mark_disputed``.

Closing a period is set-based: one statement per partner is inserted from the payable lines due by the period
end, the lines are attached in one ``UPDATE … FROM``, and the totals are summed in SQL; only VAT is computed in
Python, once per statement, so that money is rounded in one place (``app.core.money``). Periods are business
months (``app.core.business_time``: Asia/Shanghai by default), as the accrual engine's monthly caps and reports.

Closes are serialised by one advisory lock and statements are unique per (partner, period): closing a period
again, or two closes racing, leaves one set of statements. A second close of the same period tops up its
*draft* statements with lines that became due since; issued statements are frozen, so such lines wait for the
next period.

Lines whose referral is under an open risk review (``app.fees.reviews``) are left out, whatever their status,
and the close says how many and for how much (``under_review``); they go into the first close after the review
is cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog import service as catalog
from app.core.business_time import Month, local, month_named
from app.core.models import new_id
from app.core.money import vat_on_net, vat_within_gross
from app.core.pagination import PageParams, paginate_query
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.core.problems import Conflict, Forbidden, NotFound, Unprocessable
from app.core.tenancy import Tenant, owned_row, scoped
from app.fees import reviews
from app.fees.engine import release_held
from app.fees.models import AccrualStatus, FeeAccrual, FeeRule, Statement, StatementStatus
from app.referrals import service as referrals
from app.referrals.service import ReferralFilters
from app.webhooks.service import announce

# Every close takes this lock: closes never interleave, whatever period (a line due in January is also "due by
# the end of February", and the check that no later period is closed must not race either).
_CLOSE_LOCK = "fees:period-close"


class InvalidPeriod(Unprocessable):
    slug, title = "invalid-period", "Invalid period"


class PeriodNotEnded(Conflict):
    slug, title = "period-not-ended", "Period not ended"


class LaterPeriodClosed(Conflict):
    slug, title = "later-period-closed", "A later period is already closed"


class StatementStateConflict(Conflict):
    slug, title = "statement-state-conflict", "Not allowed in the statement's state"


class SecondPersonRequired(Forbidden):
    """Four eyes: 403, not 409. The statement is in the right state for the action; it is the caller who may not
    take it, and asking again as the same caller can never succeed, while another finance officer can."""

    slug, title = "second-person-required", "Another person must do this"


# A period is a business month: ``start`` inclusive, ``end`` exclusive, ``last_day`` its last business day.
Period = Month


def parse_period(value: str) -> Period:
    """``YYYY-MM`` as a business month; anything else is refused with 422."""
    period = month_named(value)
    if period is None:
        raise InvalidPeriod("A period is a month written YYYY-MM, e.g. 2026-10.")
    return period


@dataclass(frozen=True)
class CloseResult:
    period: Period
    released_lines: int
    statemented_lines: int
    created_statements: int
    statements: list[Statement]
    under_review: reviews.LeftOut = reviews.NOTHING_LEFT_OUT  # due lines left out: their referral is under review


_CREATE_STATEMENTS = """
    INSERT INTO statements (id, partner_id, period, period_end, status, currency, lines_total_fen,
                            carried_forward_fen, net_fen, vat_rate_bp, vat_inclusive, vat_fen, gross_fen,
                            line_count, created_at, updated_at)
    SELECT 'stm_' || replace(CAST(gen_random_uuid() AS text), '-', ''), p.id, :period, :period_end, 'draft', 'CNY',
           0, 0, 0, p.vat_rate_bp, p.vat_inclusive, 0, 0, 0, :now, :now
    FROM partners p
    WHERE EXISTS (SELECT 1 FROM fee_accruals a
                  WHERE a.partner_id = p.id AND a.status = 'payable' AND a.statement_id IS NULL
                    AND a.hold_until < :period_end_at AND {not_under_review})
      AND {partners}
    ON CONFLICT ON CONSTRAINT uq_statements_partner_period DO NOTHING
    """

_LOCK_DRAFTS = (
    "SELECT id FROM statements WHERE period = :period AND status = 'draft' AND {partners} ORDER BY id FOR UPDATE"
)

# Lines of referrals under a risk review stay off statements (``app.fees.reviews``).
_ATTACH_LINES = text(
    f"""
    UPDATE fee_accruals a
    SET status = 'statemented', statement_id = s.id, updated_at = :now
    FROM statements s
    WHERE s.id = ANY(:draft_ids) AND a.partner_id = s.partner_id
      AND a.status = 'payable' AND a.statement_id IS NULL AND a.hold_until < :period_end_at
      AND {reviews.NOT_UNDER_REVIEW}
    """
)

# Totals of the drafts, from their lines; the carry is the previous statement's net when negative.
_SUM_DRAFTS = text(
    """
    UPDATE statements s
    SET lines_total_fen = t.lines_total, line_count = t.lines, carried_forward_fen = t.carried,
        net_fen = t.lines_total + t.carried, vat_rate_bp = p.vat_rate_bp, vat_inclusive = p.vat_inclusive,
        updated_at = :now
    FROM (
        SELECT d.id,
               coalesce((SELECT sum(a.amount_fen) FROM fee_accruals a WHERE a.statement_id = d.id), 0) AS lines_total,
               (SELECT count(*) FROM fee_accruals a WHERE a.statement_id = d.id) AS lines,
               least(0, coalesce((SELECT prev.net_fen FROM statements prev
                                  WHERE prev.partner_id = d.partner_id AND prev.period < d.period
                                  ORDER BY prev.period DESC LIMIT 1), 0)) AS carried
        FROM statements d WHERE d.id = ANY(:draft_ids)
    ) t, partners p
    WHERE s.id = t.id AND p.id = s.partner_id
    RETURNING s.id, s.net_fen, s.vat_rate_bp, s.vat_inclusive
    """
)

_SET_VAT = text("UPDATE statements SET vat_fen = :vat, gross_fen = :gross WHERE id = :id")


def vat_and_gross(net_fen: int, rate_bp: int, inclusive: bool) -> tuple[int, int]:
    """VAT and gross of a net amount by the partner's setting; a negative net has no VAT (it is carried)."""
    if net_fen <= 0:
        return 0, net_fen
    if inclusive:
        return vat_within_gross(net_fen, rate_bp), net_fen
    vat = vat_on_net(net_fen, rate_bp)
    return vat, net_fen + vat


async def close_period(
    session: AsyncSession, actor: Actor, period_name: str, now: datetime, partners: PartnerFilter = EVERY_PARTNER
) -> CloseResult:
    """Release held lines due by the period end, then build (or top up) one draft statement per partner (of the
    ``partners``: a sandbox partner's month closes on its own test clock, ``app.sandbox``).

    A period is ``[start, end)``: a line due at the very instant the month ends (midnight on the 1st, business
    time) belongs to the next one.

    Safe to repeat and to race: one set of statements per period. Refused while the period has not ended, or
    when a later period already has statements of these partners (its carry-forward would be wrong).
    """
    period = parse_period(period_name)
    if period.end > now:
        raise PeriodNotEnded(f"{period.name} ends at {local(period.end).isoformat()}; close it after that.")
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _CLOSE_LOCK})
    later = await session.scalar(
        select(col(Statement.period))
        .where(col(Statement.period) > period.name, partners.where(col(Statement.partner_id)))
        .limit(1)
    )
    if later is not None:
        raise LaterPeriodClosed(f"{later} already has statements; close periods in order.")
    released = await release_held(session, period.end, partners)
    bounds = {"period": period.name, "period_end": period.last_day, "period_end_at": period.end, "now": now}
    create = text(_CREATE_STATEMENTS.format(partners=partners.sql("p.id"), not_under_review=reviews.NOT_UNDER_REVIEW))
    created = (await session.execute(create, {**bounds, **partners.params})).rowcount or 0  # type: ignore[attr-defined]
    lock_drafts = text(_LOCK_DRAFTS.format(partners=partners.sql("partner_id")))
    drafts = list((await session.scalars(lock_drafts, {"period": period.name, **partners.params})).all())
    attached = 0
    if drafts:
        params = {"draft_ids": drafts, "period_end_at": period.end, "now": now}
        attached = (await session.execute(_ATTACH_LINES, params)).rowcount or 0  # type: ignore[attr-defined]
        summed = (await session.execute(_SUM_DRAFTS, {"draft_ids": drafts, "now": now})).mappings().all()
        vat_rows = []
        for row in summed:
            vat, gross = vat_and_gross(row["net_fen"], row["vat_rate_bp"], row["vat_inclusive"])
            vat_rows.append({"id": row["id"], "vat": vat, "gross": gross})
        await session.execute(_SET_VAT, vat_rows)
    under_review = await reviews.lines_left_out(session, period.end, partners)
    statements = list(
        (
            await session.scalars(
                select(Statement)
                .where(col(Statement.period) == period.name, partners.where(col(Statement.partner_id)))
                .order_by(col(Statement.partner_id))
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    await audit.record(
        session,
        actor,
        "period.closed",
        object_type="period",
        object_id=period.name,
        released_lines=released,
        statemented_lines=attached,
        created_statements=created,
        under_review_lines=under_review.lines,
        under_review_fen=under_review.amount_fen,
        **_scope_details(partners),
    )
    return CloseResult(period, released, attached, created, statements, under_review)


def _scope_details(partners: PartnerFilter) -> dict[str, Any]:
    """The audit's note of a close for some partners only (none for a close of every partner)."""
    details: dict[str, Any] = {}
    if partners.only is not None:
        details["only_partners"] = list(partners.only)
    if partners.excluding:
        details["excluding_partners"] = list(partners.excluding)
    return details


# --- reading ------------------------------------------------------------------------------------------------------


async def get_statement(session: AsyncSession, tenant: Tenant, statement_id: str, *, lock: bool = False) -> Statement:
    """One statement; another partner's statement, or a draft asked for by a partner, is not found."""
    query = owned_row(Statement, statement_id, tenant)
    if tenant.partner_id is not None:
        query = query.where(col(Statement.status) != StatementStatus.draft)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    statement = (await session.scalars(query)).one_or_none()
    if statement is None:
        raise NotFound("No such statement.")
    return statement


@dataclass(frozen=True)
class StatementFilters:
    period: str | None = None
    partner_id: str | None = None
    status: StatementStatus | None = None


async def list_statements(
    session: AsyncSession, tenant: Tenant, params: PageParams, filters: StatementFilters
) -> list[Statement]:
    """Statements newest first; partners see their own, never drafts."""
    statement = scoped(select(Statement), tenant, col(Statement.partner_id))
    if tenant.partner_id is not None:
        statement = statement.where(col(Statement.status) != StatementStatus.draft)
    if filters.period:
        statement = statement.where(col(Statement.period) == filters.period)
    if filters.partner_id:
        statement = statement.where(col(Statement.partner_id) == filters.partner_id)
    if filters.status:
        statement = statement.where(col(Statement.status) == filters.status)
    statement = paginate_query(statement, params, col(Statement.created_at), col(Statement.id))
    return list((await session.scalars(statement)).all())


async def list_lines(
    session: AsyncSession, tenant: Tenant, statement_id: str, params: PageParams, rule: FeeRule | None = None
) -> list[FeeAccrual]:
    """A statement's lines, newest first (cursor-paginated)."""
    await get_statement(session, tenant, statement_id)
    statement = select(FeeAccrual).where(col(FeeAccrual.statement_id) == statement_id)
    if rule is not None:
        statement = statement.where(col(FeeAccrual.rule) == rule)
    statement = paginate_query(statement, params, col(FeeAccrual.created_at), col(FeeAccrual.id))
    return list((await session.scalars(statement)).all())


async def all_lines(session: AsyncSession, statement_id: str) -> list[FeeAccrual]:
    """Every line of a statement in the order an export shows them: by reference, fee type, time."""
    return list(
        (
            await session.scalars(
                select(FeeAccrual)
                .where(col(FeeAccrual.statement_id) == statement_id)
                .order_by(col(FeeAccrual.external_ref), col(FeeAccrual.rule), col(FeeAccrual.occurred_at))
            )
        ).all()
    )


async def lines_of_events(session: AsyncSession, tenant: Tenant, event_ids: list[str]) -> list[FeeAccrual]:
    """The ledger lines these conversion events created (earnings, caps, clawbacks), in the order written."""
    statement = select(FeeAccrual).where(col(FeeAccrual.conversion_event_id).in_(event_ids))
    statement = scoped(statement, tenant, col(FeeAccrual.partner_id))
    return list(
        (
            await session.scalars(
                statement.order_by(col(FeeAccrual.created_at), col(FeeAccrual.rule), col(FeeAccrual.id))
            )
        ).all()
    )


# --- lifecycle ----------------------------------------------------------------------------------------------------


def _require(statement: Statement, *allowed: StatementStatus, action: str) -> None:
    if statement.status not in allowed:
        wanted = " or ".join(status.value for status in allowed)
        raise StatementStateConflict(
            f"Only a statement that is {wanted} can be {action}; this one is {statement.status.value}.",
            statement_status=statement.status.value,
        )


def _summary(statement: Statement) -> dict[str, Any]:
    return {
        "statement_id": statement.id,
        "period": statement.period,
        "currency": statement.currency,
        "lines_total_fen": statement.lines_total_fen,
        "carried_forward_fen": statement.carried_forward_fen,
        "net_fen": statement.net_fen,
        "vat_fen": statement.vat_fen,
        "gross_fen": statement.gross_fen,
        "line_count": statement.line_count,
    }


async def issue(session: AsyncSession, actor: Actor, statement_id: str, now: datetime) -> Statement:
    """Issue a draft: it is frozen from now on, and the partner is told (``statement.issued``). The issuer is
    remembered: another person approves (four eyes)."""
    statement = await get_statement(session, Tenant.everyone(actor), statement_id, lock=True)
    _require(statement, StatementStatus.draft, action="issued")
    statement.status, statement.issued_at, statement.updated_at = StatementStatus.issued, now, now
    statement.issued_by = actor.id
    session.add(statement)
    await session.flush()
    await announce(session, statement.partner_id, "statement.issued", _summary(statement))
    await audit.record(session, actor, "statement.issued", object_type="statement", object_id=statement.id)
    return statement


async def mark_disputed(session: AsyncSession, statement: Statement, now: datetime) -> None:
    """The partner disputed some of the statement's lines (called with the statement locked)."""
    _require(statement, StatementStatus.issued, StatementStatus.disputed, action="disputed")
    statement.status, statement.updated_at = StatementStatus.disputed, now
    session.add(statement)
    await session.flush()


def approval_refusal(statement: Statement, actor_id: str) -> str | None:
    """Why ``actor_id`` may not approve the statement under four eyes (the issuer may not), or ``None``."""
    if statement.issued_by is not None and statement.issued_by == actor_id:
        return "You issued this statement: another finance officer must approve it."
    return None


def payment_refusal(statement: Statement, actor_id: str) -> str | None:
    """Why ``actor_id`` may not mark the statement paid under four eyes (the approver may not), or ``None``."""
    if statement.approved_by is not None and statement.approved_by == actor_id:
        return "You approved this statement: another finance officer must mark it paid."
    return None


def check_approvable(statement: Statement, actor_id: str) -> None:
    """Only an issued or disputed statement can be approved, and not by its issuer (settlement asks before its
    own checks)."""
    _require(statement, StatementStatus.issued, StatementStatus.disputed, action="approved")
    refusal = approval_refusal(statement, actor_id)
    if refusal:
        raise SecondPersonRequired(refusal, acted_as="issuer")


async def record_approval(session: AsyncSession, statement: Statement, actor_id: str, now: datetime) -> None:
    """Finance approved the statement (called by settlement with the statement locked, nothing left open)."""
    check_approvable(statement, actor_id)
    statement.status, statement.approved_at, statement.updated_at = StatementStatus.approved, now, now
    statement.approved_by = actor_id
    session.add(statement)
    await session.flush()


async def record_payment(
    session: AsyncSession, statement: Statement, payment_ref: str, actor_id: str, now: datetime
) -> None:
    """The approved statement was paid (called by settlement with the statement locked): its lines become
    ``paid``. The approver may not be the one who records the payment (four eyes)."""
    _require(statement, StatementStatus.approved, action="marked paid")
    refusal = payment_refusal(statement, actor_id)
    if refusal:
        raise SecondPersonRequired(refusal, acted_as="approver")
    await session.execute(
        update(FeeAccrual)
        .where(col(FeeAccrual.statement_id) == statement.id, col(FeeAccrual.status) == AccrualStatus.statemented)
        .values(status=AccrualStatus.paid, updated_at=now)
    )
    statement.status, statement.paid_at, statement.payment_ref = StatementStatus.paid, now, payment_ref
    statement.paid_by, statement.updated_at = actor_id, now
    session.add(statement)
    await session.flush()


# --- adjustments --------------------------------------------------------------------------------------------------


async def create_adjustment(
    session: AsyncSession,
    actor: Actor,
    *,
    partner_id: str,
    amount_fen: int,
    external_ref: str,
    reason: str,
    now: datetime,
    origin: dict[str, Any] | None = None,
) -> FeeAccrual:
    """A signed ``adjustment`` line for the partner, payable at once: the next period closed carries it.

    The line names the partner's referral when ``external_ref`` is one of its references.
    """
    if amount_fen == 0:
        raise Unprocessable("An adjustment moves money: its amount cannot be zero.")
    await catalog.get_partner(session, partner_id)
    named = await referrals.list_referrals(
        session,
        Tenant.of_partner(partner_id),
        PageParams(limit=1, cursor=None),
        ReferralFilters(external_ref=external_ref),
    )
    referral_id = named[0].id if named else None
    line_id = new_id("acr")
    line = FeeAccrual(
        id=line_id,
        source_key=f"adjustment:{line_id}",
        partner_id=partner_id,
        referral_id=referral_id,
        external_ref=external_ref,
        rule=FeeRule.adjustment,
        amount_fen=amount_fen,
        status=AccrualStatus.payable,
        occurred_at=now,
        hold_until=now,
        arithmetic={"reason": reason, "by": actor.id, **(origin or {})},
        created_at=now,
        updated_at=now,
    )
    session.add(line)
    await session.flush()
    await audit.record(
        session,
        actor,
        "adjustment.created",
        object_type="fee_accrual",
        object_id=line.id,
        partner_id=partner_id,
        amount_fen=amount_fen,
        **(origin or {}),
    )
    return line
