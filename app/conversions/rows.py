"""The conversion feed's rows as plain data: client accounts and events read (and locked) in one statement each,
changed by the lifecycle in memory, and written back with one ``UPDATE … FROM unnest`` each. No ORM objects, unit of
work or identity map on this path: what a call of 10,000 events costs is its statements, not Python per attribute.

The statements run on the session's own connection (its transaction), through asyncpg.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.conversions.models import AccountStatus, EventStatus, EventType, Tier
from app.core.bulk import json_text


@dataclass(slots=True)
class AccountRow:
    """A ``client_accounts`` row, locked by the call."""

    client_ref: str
    status: AccountStatus = AccountStatus.unopened
    identity_hash: bytes | None = None
    enterprise: bool = False
    referral_id: str | None = None
    partner_id: str | None = None
    opened_at: datetime | None = None
    funded_at: datetime | None = None
    closed_at: datetime | None = None
    assets_fen: int = 0
    tier: Tier | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class EventRow:
    """A ``conversion_events`` row still to apply (deferred)."""

    id: str
    source_event_id: str
    type: EventType
    occurred_at: datetime
    client_ref: str
    amount_fen: int | None
    product_code: str | None
    identity_hash: bytes | None
    enterprise: bool
    status: EventStatus
    referral_id: str | None = None
    partner_id: str | None = None
    organic: bool | None = None
    effects: dict[str, Any] = field(default_factory=dict)
    applied_at: datetime | None = None
    currency: str | None = None  # stored with a fresh event; not read back


async def driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, in its transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


_ACCOUNT_COLUMNS = (
    "client_ref, status, identity_hash, enterprise, referral_id, partner_id, opened_at, funded_at, closed_at, "
    "assets_fen, tier, updated_at"
)
_CREATE_ACCOUNTS = """
INSERT INTO client_accounts (client_ref, status, enterprise, assets_fen, created_at, updated_at)
SELECT ref, 'unopened', false, 0, $2, $2 FROM unnest($1::varchar[]) AS refs(ref) ORDER BY ref
ON CONFLICT DO NOTHING
"""
_LOCK_ACCOUNTS = f"""
SELECT {_ACCOUNT_COLUMNS} FROM client_accounts WHERE client_ref = ANY($1::varchar[]) ORDER BY client_ref FOR UPDATE
"""
_WRITE_ACCOUNTS = """
UPDATE client_accounts AS a
SET status = u.status, identity_hash = u.identity_hash, enterprise = u.enterprise, referral_id = u.referral_id,
    partner_id = u.partner_id, opened_at = u.opened_at, funded_at = u.funded_at, closed_at = u.closed_at,
    assets_fen = u.assets_fen, tier = u.tier, updated_at = u.updated_at
FROM unnest($1::varchar[], $2::varchar[], $3::bytea[], $4::boolean[], $5::varchar[], $6::varchar[],
            $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::varchar[],
            $12::timestamptz[])
     AS u(client_ref, status, identity_hash, enterprise, referral_id, partner_id, opened_at, funded_at, closed_at,
          assets_fen, tier, updated_at)
WHERE a.client_ref = u.client_ref
"""


# An account's values in column order: its fields are immutable values, so a flat tuple is a full snapshot (the
# deep copy ``dataclasses.astuple`` makes costs fifty times as much, per account and twice per call).
_account_values = attrgetter(*AccountRow.__slots__)


class Accounts(dict[str, AccountRow]):
    """The call's accounts by client ref, with the state each was read in (to write back only what changed)."""

    def __init__(self, rows: Sequence[AccountRow]) -> None:
        super().__init__((row.client_ref, row) for row in rows)
        self.read_as = {row.client_ref: _account_values(row) for row in rows}

    def changed(self) -> list[AccountRow]:
        return [row for ref, row in self.items() if _account_values(row) != self.read_as[ref]]


async def lock_accounts(session: AsyncSession, client_refs: Sequence[str], now: datetime) -> Accounts:
    """Create the accounts not known yet (unopened) and lock all, in key order; returns them by client ref."""
    connection = await driver(session)
    refs = sorted(client_refs)
    await connection.execute(_CREATE_ACCOUNTS, refs, now)
    return Accounts(
        [
            AccountRow(
                row[0],
                AccountStatus(row[1]),
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
                Tier(row[10]) if row[10] else None,
                row[11],
            )
            for row in await connection.fetch(_LOCK_ACCOUNTS, refs)
        ]
    )


async def write_accounts(session: AsyncSession, accounts: Accounts) -> None:
    """The accounts the call changed, in one statement."""
    rows = accounts.changed()
    if not rows:
        return
    connection = await driver(session)
    columns: list[list[Any]] = [[] for _ in range(12)]
    for row in rows:
        values = _account_values(row)
        for position, value in enumerate(values):
            columns[position].append(value.value if isinstance(value, AccountStatus | Tier) else value)
    await connection.execute(_WRITE_ACCOUNTS, *columns)


_PENDING_EVENTS = """
SELECT id, source_event_id, type, occurred_at, client_ref, amount_fen, product_code, identity_hash, enterprise,
       status, referral_id, partner_id, organic, effects, applied_at
FROM conversion_events WHERE client_ref = ANY($1::varchar[]) AND status = 'deferred'
"""
_WRITE_EVENTS = """
UPDATE conversion_events AS e
SET status = u.status, applied_at = u.applied_at, referral_id = u.referral_id, partner_id = u.partner_id,
    organic = u.organic, effects = CAST(u.effects AS jsonb)
FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[], $4::varchar[], $5::varchar[], $6::boolean[],
            $7::text[])
     AS u(id, status, applied_at, referral_id, partner_id, organic, effects)
WHERE e.id = u.id
"""


def _effects(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


async def pending_events(session: AsyncSession, client_refs: Sequence[str]) -> list[EventRow]:
    """The deferred events of these (locked) accounts, the call's new ones among them."""
    connection = await driver(session)
    return [
        EventRow(
            row[0],
            row[1],
            EventType(row[2]),
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            EventStatus(row[9]),
            row[10],
            row[11],
            row[12],
            _effects(row[13]),
            row[14],
        )
        for row in await connection.fetch(_PENDING_EVENTS, list(client_refs))
    ]


async def write_events(session: AsyncSession, events: Sequence[EventRow]) -> None:
    """What applying did to the events (all of them were deferred): the applied ones, in one statement."""
    applied = [event for event in events if event.status is EventStatus.applied]
    if not applied:
        return
    connection = await driver(session)
    await connection.execute(
        _WRITE_EVENTS,
        [event.id for event in applied],
        [event.status.value for event in applied],
        [event.applied_at for event in applied],
        [event.referral_id for event in applied],
        [event.partner_id for event in applied],
        [event.organic for event in applied],
        [json_text(event.effects) for event in applied],
    )
