"""Claims and reconciliation (DESIGN.md, "Reconciliation"): the partner's claim for an issued statement, the
matching result, the partner's disputes, and finance's resolution of every discrepancy.

Every call that changes a statement's reconciliation locks the statement row first: an upload, a dispute, a
resolution and an approval of one statement never interleave.

``reconciliation.completed`` is announced twice in a statement's life: when a claim has been matched
(``"stage": "matched"``, with the totals), and when finance resolves the last open item
(``"stage": "resolved"``); a claim that matches exactly is complete at once (``open_items`` 0).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog import service as catalog
from app.core.money import vat_on_net, vat_within_gross
from app.core.pagination import PageParams, paginate_query
from app.core.problems import Conflict, NotFound, Unprocessable, field_errors
from app.core.tenancy import Tenant, scoped
from app.fees import statements
from app.fees.models import FeeRule, Statement, StatementStatus
from app.reconciliation.matching import Totals, match_claim, totals
from app.reconciliation.models import Claim, MatchClass, ReconciliationItem, Resolution
from app.reconciliation.schemas import MAX_CLAIM_LINES, ClaimIn
from app.webhooks.service import announce

MAX_REPORTED_ERRORS = 100
_FEE_TYPES = frozenset(rule.value for rule in FeeRule)
_CLAIMABLE = (StatementStatus.issued, StatementStatus.disputed)


class InvalidClaim(Unprocessable):
    slug, title = "invalid-claim", "Invalid claim"


class ClaimLocked(Conflict):
    slug, title = "claim-locked", "Finance has started resolving this claim"


class ItemNotDisputable(Unprocessable):
    slug, title = "item-not-disputable", "Item cannot be disputed"


class ItemAlreadyResolved(Conflict):
    slug, title = "item-already-resolved", "Item already resolved"


@dataclass(frozen=True)
class ClaimedLine:
    line_no: int
    external_ref: str
    fee_type: str
    amount_fen: int


# --- parsing ------------------------------------------------------------------------------------------------------


def _error(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}


def parse_csv(body: bytes, encoding: str = "utf-8-sig") -> list[ClaimedLine]:
    """A claim as CSV with a header: ``external_ref``, ``fee_type``, ``amount_fen`` (or ``amount``), optionally
    ``currency`` (CNY). Every bad line is reported (up to a hundred), and a claim with one is refused whole."""
    try:
        decoded = body.decode(encoding)
    except UnicodeDecodeError:
        raise InvalidClaim(f"The CSV is not valid {encoding.removesuffix('-sig').upper()}.") from None
    reader = csv.reader(io.StringIO(decoded, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    amount_column = "amount_fen" if "amount_fen" in header else "amount"
    missing = [name for name in ("external_ref", "fee_type", amount_column) if name not in header]
    if missing:
        raise InvalidClaim(f"The CSV header lacks: {', '.join(missing)}.")
    ref_at, type_at, amount_at = header.index("external_ref"), header.index("fee_type"), header.index(amount_column)
    currency_at = header.index("currency") if "currency" in header else None
    lines: list[ClaimedLine] = []
    errors: list[dict[str, Any]] = []
    for row in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(_error(["line", line_no], f"expected {len(header)} columns, found {len(row)}"))
            continue
        ref, fee_type, amount = row[ref_at].strip(), row[type_at].strip(), row[amount_at].strip()
        if not 1 <= len(ref) <= 100:
            errors.append(_error(["line", line_no, "external_ref"], "must be 1 to 100 characters"))
        if fee_type not in _FEE_TYPES:
            errors.append(_error(["line", line_no, "fee_type"], f"must be one of {', '.join(sorted(_FEE_TYPES))}"))
        if not (amount.lstrip("-").isdigit() and amount.isascii() and len(amount) <= 15):
            errors.append(_error(["line", line_no, amount_column], "must be a whole number of fen"))
        if currency_at is not None and row[currency_at].strip() not in ("", "CNY"):
            errors.append(_error(["line", line_no, "currency"], "must be CNY"))
        if errors:
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
            continue
        lines.append(ClaimedLine(line_no, ref, fee_type, int(amount)))
        if len(lines) > MAX_CLAIM_LINES:
            raise InvalidClaim(f"A claim has at most {MAX_CLAIM_LINES:,} lines.")
    if errors:
        raise InvalidClaim(f"{len(errors)} line(s) of the claim are invalid.", errors=errors[:MAX_REPORTED_ERRORS])
    return lines


def parse_json(body: bytes) -> list[ClaimedLine]:
    """A claim as JSON: ``{"lines": [{"external_ref", "fee_type", "amount_fen"}, ...]}``."""
    try:
        claim = ClaimIn.model_validate_json(body)
    except ValidationError as exc:
        errors = field_errors(exc.errors()[:MAX_REPORTED_ERRORS])
        raise InvalidClaim(f"{exc.error_count()} field(s) of the claim are invalid.", errors=errors) from None
    return [
        ClaimedLine(index, line.external_ref, line.fee_type.value, line.amount_fen)
        for index, line in enumerate(claim.lines, start=1)
    ]


def to_statement_basis(amount_fen: int, claim_includes_vat: bool, statement: Statement) -> int:
    """A claimed amount on the statement's VAT basis (the lines' own): VAT taken out or added, one rounding."""
    if claim_includes_vat == statement.vat_inclusive:
        return amount_fen
    if claim_includes_vat:
        return amount_fen - vat_within_gross(amount_fen, statement.vat_rate_bp)
    return amount_fen + vat_on_net(amount_fen, statement.vat_rate_bp)


# --- claims -------------------------------------------------------------------------------------------------------


_INSERT_LINES = text(
    """
    INSERT INTO claim_lines (claim_id, line_no, external_ref, fee_type, amount_fen)
    SELECT :claim_id, * FROM unnest(CAST(:line_nos AS integer[]), CAST(:refs AS text[]), CAST(:fee_types AS text[]),
                                    CAST(:amounts AS bigint[]))
    """
)


@dataclass(frozen=True)
class Reconciliation:
    statement: Statement
    claim: Claim | None
    totals: Totals


async def upload_claim(
    session: AsyncSession,
    tenant: Tenant,
    actor: Actor,
    statement_id: str,
    lines: list[ClaimedLine],
    *,
    claim_format: str,
    amounts_include_vat: bool | None,
    now: datetime,
) -> Reconciliation:
    """Store the partner's claim for an issued (or disputed) statement, replacing the previous one, and match it.

    Amounts are taken as VAT-inclusive or not by ``amounts_include_vat``, else by the partner's setting, and
    brought to the statement's basis before matching.
    """
    statement = await statements.get_statement(session, tenant, statement_id, lock=True)
    if statement.status not in _CLAIMABLE:
        raise statements.StatementStateConflict(
            f"Claims are taken for issued or disputed statements; this one is {statement.status.value}.",
            statement_status=statement.status.value,
        )
    if await _resolved_count(session, statement.id):
        raise ClaimLocked("Finance has resolved items of your current claim; ask finance before replacing it.")
    partner = await catalog.get_partner(session, statement.partner_id)
    includes_vat = partner.vat_inclusive if amounts_include_vat is None else amounts_include_vat
    amounts = [to_statement_basis(line.amount_fen, includes_vat, statement) for line in lines]
    await session.execute(
        update(Claim)
        .where(col(Claim.statement_id) == statement.id, col(Claim.superseded).is_(False))
        .values(superseded=True)
    )
    await session.execute(delete(ReconciliationItem).where(col(ReconciliationItem.statement_id) == statement.id))
    claim = Claim(
        statement_id=statement.id,
        partner_id=statement.partner_id,
        format=claim_format,
        line_count=len(lines),
        claimed_total_fen=sum(amounts),
        created_at=now,
    )
    session.add(claim)
    await session.flush()
    await session.execute(
        _INSERT_LINES,
        {
            "claim_id": claim.id,
            "line_nos": [line.line_no for line in lines],
            "refs": [line.external_ref for line in lines],
            "fee_types": [line.fee_type for line in lines],
            "amounts": amounts,
        },
    )
    items = await match_claim(
        session, statement_id=statement.id, claim_id=claim.id, partner_id=statement.partner_id, now=now
    )
    result = await totals(session, statement.id)
    await announce(
        session, statement.partner_id, "reconciliation.completed", _notice(statement, claim, result, "matched")
    )
    await audit.record(
        session,
        actor,
        "claim.uploaded",
        object_type="claim",
        object_id=claim.id,
        statement_id=statement.id,
        lines=len(lines),
        items=items,
        amounts_include_vat=includes_vat,
        statement_vat_inclusive=statement.vat_inclusive,
    )
    return Reconciliation(statement, claim, result)


def _notice(statement: Statement, claim: Claim, result: Totals, stage: str) -> dict[str, Any]:
    return {
        "statement_id": statement.id,
        "period": statement.period,
        "claim_id": claim.id,
        "stage": stage,
        "open_items": result.open_items,
        "totals": {
            match_class.value: {"items": total.items, "difference_fen": total.difference_fen}
            for match_class, total in result.by_class.items()
        },
    }


async def _resolved_count(session: AsyncSession, statement_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                col(ReconciliationItem.statement_id) == statement_id, col(ReconciliationItem.resolution).is_not(None)
            )
        )
        or 0
    )


async def open_item_count(session: AsyncSession, statement_id: str) -> int:
    """Discrepancies of the statement's current claim that finance has not resolved."""
    return int(
        await session.scalar(
            select(func.count()).where(
                col(ReconciliationItem.statement_id) == statement_id,
                col(ReconciliationItem.match_class) != MatchClass.matched,
                col(ReconciliationItem.resolution).is_(None),
            )
        )
        or 0
    )


async def current_claim(session: AsyncSession, statement_id: str) -> Claim | None:
    return (
        await session.scalars(
            select(Claim).where(col(Claim.statement_id) == statement_id, col(Claim.superseded).is_(False))
        )
    ).one_or_none()


async def reconciliation(session: AsyncSession, tenant: Tenant, statement_id: str) -> Reconciliation:
    """The statement's current claim and its totals per class."""
    statement = await statements.get_statement(session, tenant, statement_id)
    return Reconciliation(statement, await current_claim(session, statement.id), await totals(session, statement.id))


@dataclass(frozen=True)
class ItemFilters:
    statement_id: str | None = None
    partner_id: str | None = None
    match_class: MatchClass | None = None
    open: bool | None = None
    disputed: bool | None = None


async def list_items(
    session: AsyncSession, tenant: Tenant, params: PageParams, filters: ItemFilters
) -> list[ReconciliationItem]:
    """Reconciliation items newest first, scoped to the caller's partner."""
    query = scoped(select(ReconciliationItem), tenant, col(ReconciliationItem.partner_id))
    if filters.statement_id:
        query = query.where(col(ReconciliationItem.statement_id) == filters.statement_id)
    if filters.partner_id:
        query = query.where(col(ReconciliationItem.partner_id) == filters.partner_id)
    if filters.match_class:
        query = query.where(col(ReconciliationItem.match_class) == filters.match_class)
    if filters.disputed is not None:
        query = query.where(col(ReconciliationItem.disputed).is_(filters.disputed))
    if filters.open is not None:
        is_open = (col(ReconciliationItem.match_class) != MatchClass.matched) & col(ReconciliationItem.resolution).is_(
            None
        )
        query = query.where(is_open if filters.open else ~is_open)
    query = paginate_query(query, params, col(ReconciliationItem.created_at), col(ReconciliationItem.id))
    return list((await session.scalars(query)).all())


# --- disputes and resolutions -------------------------------------------------------------------------------------


async def dispute(
    session: AsyncSession,
    tenant: Tenant,
    actor: Actor,
    statement_id: str,
    reasons: dict[str, str],
    now: datetime,
) -> tuple[Statement, list[ReconciliationItem]]:
    """The partner disputes discrepancies of its statement (item id → reason): the statement becomes disputed."""
    statement = await statements.get_statement(session, tenant, statement_id, lock=True)
    items = list(
        (
            await session.scalars(
                scoped(
                    select(ReconciliationItem).where(
                        col(ReconciliationItem.statement_id) == statement.id,
                        col(ReconciliationItem.id).in_(list(reasons)),
                    ),
                    tenant,
                    col(ReconciliationItem.partner_id),
                ).with_for_update()
            )
        ).all()
    )
    unknown = sorted(set(reasons) - {item.id for item in items})
    if unknown:
        raise NotFound(f"No such reconciliation item on this statement: {', '.join(unknown[:10])}.")
    for item in items:
        if item.match_class is MatchClass.matched:
            raise ItemNotDisputable(f"Item {item.id} matched your claim: there is nothing to dispute.")
        if item.resolution is not None:
            raise ItemAlreadyResolved(f"Item {item.id} was already resolved by finance.")
    await statements.mark_disputed(session, statement, now)
    for item in items:
        item.disputed, item.dispute_reason = True, reasons[item.id]
        session.add(item)
    await session.flush()
    await audit.record(
        session, actor, "statement.disputed", object_type="statement", object_id=statement.id, items=sorted(reasons)
    )
    return statement, items


async def resolve(
    session: AsyncSession, actor: Actor, item_id: str, resolution: Resolution, note: str, now: datetime
) -> ReconciliationItem:
    """Finance resolves one discrepancy; ``accept_theirs`` books the difference as an adjustment for the next
    period. Resolving the last open item announces ``reconciliation.completed`` (stage ``resolved``)."""
    found = await session.get(ReconciliationItem, item_id)
    if found is None:
        raise NotFound("No such reconciliation item.")
    statement = await statements.get_statement(session, Tenant.everyone(actor), found.statement_id, lock=True)
    item = (
        await session.scalars(
            select(ReconciliationItem)
            .where(col(ReconciliationItem.id) == item_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if item is None:  # replaced by a new claim while we waited for the statement
        raise NotFound("No such reconciliation item.")
    if statement.status not in _CLAIMABLE:
        raise statements.StatementStateConflict(
            f"Items are resolved while the statement is issued or disputed; it is {statement.status.value}.",
            statement_status=statement.status.value,
        )
    if item.match_class is MatchClass.matched:
        raise ItemAlreadyResolved("A matched item needs no resolution.")
    if item.resolution is not None:
        raise ItemAlreadyResolved(f"This item was resolved ({item.resolution.value}) already.")
    difference = item.difference_fen or 0
    if resolution is Resolution.accept_theirs and difference:
        adjustment = await statements.create_adjustment(
            session,
            actor,
            partner_id=item.partner_id,
            amount_fen=difference,
            external_ref=item.external_ref,
            reason=f"Reconciliation of {statement.period}, {item.fee_type}: {note}",
            now=now,
            origin={"reconciliation_item_id": item.id, "statement_id": statement.id, "fee_type": item.fee_type},
        )
        item.adjustment_id = adjustment.id
    item.resolution, item.resolution_note, item.resolved_by, item.resolved_at = resolution, note, actor.id, now
    session.add(item)
    await session.flush()
    await audit.record(
        session,
        actor,
        "reconciliation_item.resolved",
        object_type="reconciliation_item",
        object_id=item.id,
        resolution=resolution.value,
        note=note,
        difference_fen=difference,
        adjustment_id=item.adjustment_id,
    )
    if await open_item_count(session, statement.id) == 0:
        claim = await session.get(Claim, item.claim_id)
        assert claim is not None
        await announce(
            session,
            statement.partner_id,
            "reconciliation.completed",
            _notice(statement, claim, await totals(session, statement.id), "resolved"),
        )
    return item


async def all_items(session: AsyncSession, statement_id: str) -> list[ReconciliationItem]:
    """Every item of the statement's current claim, by reference and fee type (for exports)."""
    return list(
        (
            await session.scalars(
                select(ReconciliationItem)
                .where(col(ReconciliationItem.statement_id) == statement_id)
                .order_by(col(ReconciliationItem.external_ref), col(ReconciliationItem.fee_type))
            )
        ).all()
    )
