"""The conversion feed: idempotent ingestion of back-office events, applied to accounts and referrals in bulk.

One call (up to 10,000 events) is one transaction: events are inserted once by their source id, the accounts
they touch are locked in a fixed order (so concurrent calls never deadlock), deferred events of those accounts
are picked up again, everything is applied in time order (events of one client sharing a time in funnel
order), and the changes are written back set-based. Events dated beyond the accepted clock skew in the future
are refused; late ones are normal and accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.models import Program
from app.catalog.service import program_products
from app.conversions.lifecycle import Lifecycle, ProgramTerms
from app.conversions.models import SAME_TIME_ORDER, ClientAccount, ConversionEvent, EventStatus
from app.conversions.schemas import EventIn, EventResult
from app.core import clock
from app.core.config import get_settings
from app.core.models import new_id
from app.core.problems import field_errors
from app.fees.engine import accrue
from app.privacy.crypto import BlindIndex
from app.referrals.models import ReferralKind, ReferralStatus
from app.referrals.service import identity_index, lock_for_accounts
from app.referrals.transitions import transition

# Bulk inserts go through the tables: the ORM's bulk path splits rows whose empty columns differ into separate
# statements.
_EVENTS = ConversionEvent.__table__  # type: ignore[attr-defined]
_ACCOUNTS = ClientAccount.__table__  # type: ignore[attr-defined]


@dataclass
class _Accepted:
    index: int
    event: EventIn


def _rejection(index: int, raw: Any, error: ValidationError | str) -> EventResult:
    source_id = raw.get("source_event_id") if isinstance(raw, dict) else None
    if isinstance(error, ValidationError):
        # As a response may show it: an unknown member's name or a rejected value is not echoed.
        first = field_errors(error.errors())[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
        message = first.get("msg", "invalid")
        reason = f"{where}: {message}" if where else message
    else:
        reason = error
    return EventResult(
        index=index,
        source_event_id=source_id if isinstance(source_id, str) and len(source_id) <= 100 else None,
        result="rejected",
        reason=reason,
    )


def validate_events(raw_events: Sequence[Any], now: datetime) -> tuple[list[_Accepted], dict[int, EventResult]]:
    """Each event on its own; repeats of a source id within the call are duplicates of the first.

    An event dated further ahead of ``now`` than the accepted clock skew is refused; late events are accepted
    (their fee lines are held from when they are recorded, not from when they occurred).
    """
    accepted: list[_Accepted] = []
    results: dict[int, EventResult] = {}
    seen: set[str] = set()
    skew = get_settings().event_clock_skew_s
    latest = now + timedelta(seconds=skew)
    for index, raw in enumerate(raw_events):
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as error:
            results[index] = _rejection(index, raw, error)
            continue
        if event.occurred_at > latest:
            results[index] = EventResult(
                index=index,
                source_event_id=event.source_event_id,
                result="rejected",
                reason=f"occurred_at: more than {skew} seconds ahead of the platform's clock; events cannot be "
                "dated in the future",
            )
            continue
        if event.source_event_id in seen:
            results[index] = EventResult(index=index, source_event_id=event.source_event_id, result="duplicate")
            continue
        seen.add(event.source_event_id)
        accepted.append(_Accepted(index, event))
    return accepted, results


def _row(event: EventIn, index: BlindIndex, now: datetime) -> dict[str, Any]:
    identity = None
    if event.national_id:
        identity = identity_index(index, ReferralKind.vip, event.national_id)
    elif event.credit_code:
        identity = identity_index(index, ReferralKind.enterprise, event.credit_code)
    return {
        "id": new_id("cev"),
        "source_event_id": event.source_event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "client_ref": event.client_ref,
        "amount_fen": event.amount,
        "currency": event.currency,
        "product_code": event.product_code,
        "identity_hash": identity,
        "enterprise": event.credit_code is not None,
        "status": EventStatus.deferred,
        "effects": {},
        "created_at": now,
    }


async def ingest_events(
    session: AsyncSession, index: BlindIndex, raw_events: Sequence[Any], now: datetime | None = None
) -> list[EventResult]:
    """Store and apply a call's events; one result per event, in the order given.

    ``now`` is when the platform records them (the clock by default): fee holds run from it.
    """
    now = now or clock.now()
    accepted, results = validate_events(raw_events, now)
    if accepted:
        rows = [_row(item.event, index, now) for item in accepted]
        inserted = set(
            (
                await session.execute(
                    insert(_EVENTS).on_conflict_do_nothing().returning(_EVENTS.c.source_event_id),
                    rows,
                )
            ).scalars()
        )
        fresh = [item for item in accepted if item.event.source_event_id in inserted]
        for item in accepted:
            if item.event.source_event_id not in inserted:
                results[item.index] = EventResult(
                    index=item.index, source_event_id=item.event.source_event_id, result="duplicate"
                )
        applied = await apply_pending(session, sorted({item.event.client_ref for item in fresh}), now)
        for item in fresh:
            event = applied[item.event.source_event_id]
            results[item.index] = EventResult(
                index=item.index,
                source_event_id=event.source_event_id,
                result="applied" if event.status is EventStatus.applied else "deferred",
                referral_id=event.referral_id,
            )
    return [results[position] for position in range(len(raw_events))]


async def reported_events(
    session: AsyncSession, client_ref: str, source_event_ids: Sequence[str]
) -> list[ConversionEvent]:
    """These events of one client account, by the back office's ids, in the order they apply."""
    rows = await session.scalars(
        select(ConversionEvent).where(
            col(ConversionEvent.client_ref) == client_ref, col(ConversionEvent.source_event_id).in_(source_event_ids)
        )
    )
    return sorted(rows, key=application_order)


async def _lock_accounts(session: AsyncSession, client_refs: list[str], now: datetime) -> dict[str, ClientAccount]:
    await session.execute(
        insert(_ACCOUNTS).on_conflict_do_nothing(),
        [{"client_ref": ref, "created_at": now, "updated_at": now} for ref in client_refs],
    )
    rows = await session.scalars(
        select(ClientAccount)
        .where(col(ClientAccount.client_ref).in_(client_refs))
        .order_by(col(ClientAccount.client_ref))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {account.client_ref: account for account in rows}


def application_order(event: ConversionEvent) -> tuple[str, datetime, int, str]:
    """By client, then time; events sharing a time in funnel order, then by source id (DESIGN.md, "Time")."""
    return (event.client_ref, event.occurred_at, SAME_TIME_ORDER[event.type], event.source_event_id)


async def apply_pending(session: AsyncSession, client_refs: list[str], now: datetime) -> dict[str, ConversionEvent]:
    """Apply every deferred event of these accounts, in time order; returns them by source id."""
    if not client_refs:
        return {}
    accounts = await _lock_accounts(session, client_refs, now)
    events = list(
        (
            await session.scalars(
                select(ConversionEvent)
                .where(
                    col(ConversionEvent.client_ref).in_(client_refs),
                    col(ConversionEvent.status) == EventStatus.deferred,
                )
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    events.sort(key=application_order)
    lifecycle = await _load_lifecycle(session, accounts, events)
    for event in events:
        lifecycle.apply(event, now)
    await _write_back(session, lifecycle, now)
    await session.flush()
    await accrue(session, events, accounts, lifecycle.referrals_by_id, now)
    return {event.source_event_id: event for event in events}


async def _load_lifecycle(
    session: AsyncSession, accounts: dict[str, ClientAccount], events: list[ConversionEvent]
) -> Lifecycle:
    identities = [event.identity_hash for event in events if event.identity_hash is not None]
    linked = [account.referral_id for account in accounts.values() if account.referral_id]
    partners = [account.partner_id for account in accounts.values() if account.referral_id and account.partner_id]
    referrals = await lock_for_accounts(session, identities, linked, partners if len(partners) == len(linked) else ())
    program_ids = sorted({referral.program_id for referral in referrals})
    terms: dict[str, ProgramTerms] = {}
    if program_ids:
        products = await program_products(session, program_ids)
        for program in await session.scalars(select(Program).where(col(Program.id).in_(program_ids))):
            terms[program.id] = ProgramTerms(
                program.qualification_period_days, frozenset(product.code for product in products[program.id])
            )
    return Lifecycle(
        accounts=accounts,
        referrals_by_identity={
            r.identity_hash: r for r in referrals if r.identity_hash and r.status is ReferralStatus.eligible
        },
        referrals_by_id={referral.id: referral for referral in referrals},
        terms=terms,
    )


async def _write_back(session: AsyncSession, lifecycle: Lifecycle, now: datetime) -> None:
    # Accounts and events are rows loaded (and locked) in this session: the flush writes their changes, grouped
    # by SQLAlchemy into executemany batches. The referrals' changes are referrals' to check and write.
    await transition(session, lifecycle.changes, now)
