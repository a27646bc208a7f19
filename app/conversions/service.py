"""The conversion feed: idempotent ingestion of back-office events, applied to accounts and referrals in bulk.

One call (up to 10,000 events) is one transaction: events are inserted once by their source id, the accounts
they touch are locked in a fixed order (so concurrent calls never deadlock), deferred events of those accounts
are picked up again, everything is applied in time order (events of one client sharing a time in funnel
order), and the changes are written back set-based. Events dated beyond the accepted clock skew in the future
are refused; late ones are normal and accepted.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.catalog.models import Program
from app.catalog.service import program_products
from app.conversions.lifecycle import Lifecycle, ProgramTerms
from app.conversions.models import SAME_TIME_ORDER, ConversionEvent, EventStatus
from app.conversions.rows import Accounts, EventRow, lock_accounts, pending_events, write_accounts, write_events
from app.conversions.schemas import EventIn, EventResult
from app.core import clock
from app.core.bulk import JsonText, copy_rows_new, json_text
from app.core.config import get_settings
from app.core.models import new_ids
from app.core.problems import Conflict, field_errors
from app.fees.engine import accrue
from app.privacy.crypto import BlindIndex
from app.referrals.models import ReferralKind, ReferralStatus
from app.referrals.service import identity_index, lock_for_accounts
from app.referrals.transitions import transition

_EVENTS = ConversionEvent.__table__  # type: ignore[attr-defined]


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


_EVENT_COLUMNS = (
    "id",
    "source_event_id",
    "type",
    "occurred_at",
    "client_ref",
    "amount_fen",
    "currency",
    "product_code",
    "identity_hash",
    "enterprise",
    "status",
    "referral_id",
    "partner_id",
    "organic",
    "effects",
    "applied_at",
    "created_at",
)


def _fresh_row(event_id: str, event: EventIn, index: BlindIndex) -> EventRow:
    identity = None
    if event.national_id:
        identity = identity_index(index, ReferralKind.vip, event.national_id)
    elif event.credit_code:
        identity = identity_index(index, ReferralKind.enterprise, event.credit_code)
    return EventRow(
        event_id,
        event.source_event_id,
        event.type,
        event.occurred_at,
        event.client_ref,
        event.amount,
        event.product_code,
        identity,
        event.credit_code is not None,
        EventStatus.deferred,
        currency=event.currency,
    )


_STORED = sa.text("SELECT source_event_id FROM conversion_events WHERE source_event_id = ANY(CAST(:ids AS varchar[]))")


async def ingest_events(
    session: AsyncSession, index: BlindIndex, raw_events: Sequence[Any], now: datetime | None = None
) -> list[EventResult]:
    """Store and apply a call's events; one result per event, in the order given.

    ``now`` is when the platform records them (the clock by default): fee holds run from it.

    The accounts the events are of are locked first: a source id stored by an earlier call of the same account is
    then seen, and the new events are stored once, as they stand once applied (one statement, staged by COPY).
    """
    with _cycle_collection_paused():
        return await _ingest(session, index, raw_events, now or clock.now())


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a call runs. A call of 10,000 events allocates a few hundred thousand
    objects that live until it ends (validated events, rows, lines): the collector would traverse them again and
    again as they pile up, a fifth of the call's Python time, to free nothing. Reference counting still frees as
    usual; cycles wait for the next collection after the call. Another call running meanwhile may turn it on again
    earlier, which costs only time."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


async def _ingest(
    session: AsyncSession, index: BlindIndex, raw_events: Sequence[Any], now: datetime
) -> list[EventResult]:
    accepted, results = validate_events(raw_events, now)
    if accepted:
        accounts = await lock_accounts(session, sorted({item.event.client_ref for item in accepted}), now)
        stored = set((await session.scalars(_STORED, {"ids": [item.event.source_event_id for item in accepted]})).all())
        ids = iter(new_ids("cev", len(accepted)))
        fresh = {
            item.index: _fresh_row(next(ids), item.event, index)
            for item in accepted
            if item.event.source_event_id not in stored
        }
        for item in accepted:
            if item.index not in fresh:
                results[item.index] = EventResult(
                    index=item.index, source_event_id=item.event.source_event_id, result="duplicate"
                )
        await apply_pending(session, accounts, list(fresh.values()), now)
        for position, event in fresh.items():
            results[position] = EventResult(
                index=position,
                source_event_id=event.source_event_id,
                result="applied" if event.status is EventStatus.applied else "deferred",
                referral_id=event.referral_id,
            )
    return [results[position] for position in range(len(raw_events))]


async def _store(session: AsyncSession, events: Sequence[EventRow], now: datetime) -> None:
    rows = [
        (
            event.id,
            event.source_event_id,
            event.type.value,
            event.occurred_at,
            event.client_ref,
            event.amount_fen,
            event.currency,
            event.product_code,
            event.identity_hash,
            event.enterprise,
            event.status.value,
            event.referral_id,
            event.partner_id,
            event.organic,
            JsonText(json_text(event.effects)),
            event.applied_at,
            now,
        )
        for event in events
    ]
    inserted = await copy_rows_new(session, _EVENTS, _EVENT_COLUMNS, rows, returning=("id",))
    if len(inserted) != len(rows):
        # Another call of other accounts stored one of these source ids since they were looked up.
        raise Conflict("Some of these events were stored by another call meanwhile; send them again.")


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


def application_order(event: ConversionEvent | EventRow) -> tuple[str, datetime, int, str]:
    """By client, then time; events sharing a time in funnel order, then by source id (DESIGN.md, "Time")."""
    return (event.client_ref, event.occurred_at, SAME_TIME_ORDER[event.type], event.source_event_id)


async def apply_pending(
    session: AsyncSession, accounts: Accounts, fresh: Sequence[EventRow], now: datetime
) -> dict[str, EventRow]:
    """Apply the ``fresh`` events and every deferred event of these (locked) accounts, in time order, then store
    the fresh ones as they stand; returns all by source id.

    Events and referrals are read as plain rows (referrals locked, in key order), the lifecycle and the fee engine
    run over them in memory, and each table's changes are written in one statement."""
    if not accounts:
        return {}
    earlier = await pending_events(session, list(accounts))
    events = sorted([*earlier, *fresh], key=application_order)
    lifecycle = await _load_lifecycle(session, accounts, events)
    for event in events:
        lifecycle.apply(event, now)
    await _store(session, fresh, now)
    await write_events(session, earlier)
    await write_accounts(session, accounts)
    # The referrals' changes are referrals' to check and write.
    await transition(session, lifecycle.changes, now)
    await accrue(session, events, accounts, lifecycle.referrals_by_id, now, caps_checked_at_end=True)
    return {event.source_event_id: event for event in events}


async def _load_lifecycle(session: AsyncSession, accounts: Accounts, events: list[EventRow]) -> Lifecycle:
    identities = sorted({event.identity_hash for event in events if event.identity_hash is not None})
    linked = sorted({account.referral_id for account in accounts.values() if account.referral_id})
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
        accounts=dict(accounts),
        referrals_by_identity={
            r.identity_hash: r for r in referrals if r.identity_hash and r.status is ReferralStatus.eligible
        },
        referrals_by_id={referral.id: referral for referral in referrals},
        terms=terms,
    )
