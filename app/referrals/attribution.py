"""Attribution (DESIGN.md, "Attribution rules"), set-based: one code path for a single submission and for a
chunk of a batch, a handful of statements whatever the number of candidates.

1. Identity is the blind index of the national ID number or credit code.
2. An identity in the registry of existing clients opened before the referral → ``existing_client``.
3. Another partner holding the identity (eligible and inside its window, or further down the funnel) →
   ``duplicate``, with a conflict recorded; the same partner sending the same person gets its referral back.
4. A holder whose window has passed is expired first, which frees the identity.
6. Racing claims are settled by the key of ``identity_holders`` (the current holder of each identity, in a table of
   its own keyed by the identity: one shard on a cluster, docs/scaling.md): a claim is taken there before its
   referral is written as ``eligible``; the claim that loses finds the winner's row afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.bulk import JsonText, copy_rows_new, equals_any
from app.core.business_time import business_day
from app.core.models import new_id, new_ids
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.referrals.models import (
    HOLDING_SQL,
    HOLDING_STATUSES,
    AttributionConflict,
    ExistingClient,
    IdentityHolder,
    Referral,
    ReferralStatus,
)
from app.referrals.transitions import StatusChange, record_intake, transition

_REFERRALS = Referral.__table__  # type: ignore[attr-defined]
_REFERRAL_COLUMNS = (
    "id",
    "partner_id",
    "program_id",
    "external_ref",
    "kind",
    "status",
    "identity_hash",
    "mobile_hash",
    "name_ct",
    "mobile_ct",
    "identifier_ct",
    "name_masked",
    "mobile_masked",
    "identifier_masked",
    "birth_year",
    "age_band",
    "declared_assets_band",
    "employer",
    "consent",
    "window_ends_at",
    "outcome_at",
    "batch_id",
    "created_at",
    "updated_at",
)
_ID, _EXTERNAL_REF, _IDENTITY = (_REFERRAL_COLUMNS.index(name) for name in ("id", "external_ref", "identity_hash"))


@dataclass
class Candidate:
    """A validated referral ready to attribute: personal data already encrypted and indexed."""

    line: int
    program_id: str
    attribution_window_days: int
    external_ref: str
    kind: str
    identity_hash: bytes
    mobile_hash: bytes | None
    name_ct: bytes
    mobile_ct: bytes | None
    identifier_ct: bytes
    name_masked: str
    mobile_masked: str | None
    identifier_masked: str
    birth_year: int | None
    age_band: str | None
    declared_assets_band: str | None
    employer: str | None
    consent: JsonText | None


@dataclass
class Outcome:
    line: int
    referral_id: str | None
    status: ReferralStatus | None
    created: bool
    error: str | None = None
    error_field: str | None = None


@dataclass
class _Pending:
    candidates: list[Candidate] = field(default_factory=list)

    def hashes(self) -> list[bytes]:
        return [candidate.identity_hash for candidate in self.candidates]


def _row(
    candidate: Candidate,
    referral_id: str,
    partner_id: str,
    status: ReferralStatus,
    now: datetime,
    batch_id: str | None,
) -> tuple[Any, ...]:
    """A referral row, in the order of ``_REFERRAL_COLUMNS``."""
    return (
        referral_id,
        partner_id,
        candidate.program_id,
        candidate.external_ref,
        candidate.kind,
        status,
        candidate.identity_hash,
        candidate.mobile_hash,
        candidate.name_ct,
        candidate.mobile_ct,
        candidate.identifier_ct,
        candidate.name_masked,
        candidate.mobile_masked,
        candidate.identifier_masked,
        candidate.birth_year,
        candidate.age_band,
        candidate.declared_assets_band,
        candidate.employer,
        candidate.consent,
        now + timedelta(days=candidate.attribution_window_days),
        None if status in HOLDING_STATUSES else now,
        batch_id,
        now,
        now,
    )


async def expire_stale_holders(
    session: AsyncSession,
    now: datetime,
    hashes: Sequence[bytes] | None = None,
    partners: PartnerFilter = EVERY_PARTNER,
) -> int:
    """Rule 4: eligible referrals whose window has passed become ``expired`` (all, or those of ``hashes``; of the
    ``partners``)."""
    condition = and_(
        col(Referral.status) == ReferralStatus.eligible,
        col(Referral.window_ends_at) <= now,
        partners.where(col(Referral.partner_id)),
    )
    if hashes is not None:
        # The holders of these identities, found by the identity, then read (and locked) on their partners' rows.
        held = select(col(IdentityHolder.partner_id), col(IdentityHolder.referral_id)).where(
            equals_any(col(IdentityHolder.identity_hash), hashes)
        )
        condition = and_(condition, sa.tuple_(col(Referral.partner_id), col(Referral.id)).in_(held))
    stale = (
        await session.execute(
            select(col(Referral.id), col(Referral.partner_id))
            .where(condition)
            .order_by(col(Referral.id))
            .with_for_update()
        )
    ).all()
    await transition(
        session,
        [
            StatusChange(referral_id, partner_id, ReferralStatus.eligible, ReferralStatus.expired, "window_passed")
            for referral_id, partner_id in stale
        ],
        now,
    )
    return len(stale)


async def attribute(
    session: AsyncSession,
    partner_id: str,
    candidates: Sequence[Candidate],
    now: datetime,
    *,
    batch_id: str | None = None,
) -> list[Outcome]:
    """Attribute every candidate of one partner; returns one outcome per candidate, in their order."""
    outcomes: dict[int, Outcome] = {}
    claimants = _Pending()
    followers: list[tuple[Candidate, int]] = []  # same identity again within this call: follows the first line
    first_line_of: dict[bytes, int] = {}
    seen_refs: set[str] = set()
    for candidate in candidates:
        if candidate.external_ref in seen_refs:
            outcomes[candidate.line] = _error(candidate, "external_ref", "external_ref repeated in this submission")
            continue
        seen_refs.add(candidate.external_ref)
        if candidate.identity_hash in first_line_of:
            followers.append((candidate, first_line_of[candidate.identity_hash]))
            continue
        first_line_of[candidate.identity_hash] = candidate.line
        claimants.candidates.append(candidate)

    await expire_stale_holders(session, now, claimants.hashes())
    claimants = await _settle_known(session, partner_id, claimants, outcomes)
    registered = await _registered_identities(session, claimants.hashes(), now)

    existing_clients = [c for c in claimants.candidates if c.identity_hash in registered]
    contenders = [c for c in claimants.candidates if c.identity_hash not in registered]
    await _insert(session, partner_id, existing_clients, ReferralStatus.existing_client, now, batch_id, outcomes)
    lost = await _insert(session, partner_id, contenders, ReferralStatus.eligible, now, batch_id, outcomes)
    await _settle_lost_claims(session, partner_id, lost, now, batch_id, outcomes)

    for candidate, first_line in followers:
        first = outcomes[first_line]
        if first.referral_id is None:
            outcomes[candidate.line] = Outcome(candidate.line, None, None, False, first.error, first.error_field)
        else:
            outcomes[candidate.line] = Outcome(candidate.line, first.referral_id, first.status, created=False)
    return [outcomes[candidate.line] for candidate in candidates]


def _error(candidate: Candidate, error_field: str, message: str) -> Outcome:
    return Outcome(candidate.line, None, None, False, message, error_field)


# What the partner sent before: its references, then the identities it holds (at most one referral of all holds
# each, ``identity_holders``). Both on the partner's own rows. Statistics lag behind a table that a
# batch fills in one transaction, and a generic plan of this statement must not scan the partner's referrals: the
# identities keep one index lookup each (``ix_referrals_identity_hash``), in a lateral subquery that is never
# turned into a scan.
_SENT_BEFORE = sa.text(
    f"""
    SELECT id, external_ref, identity_hash, status FROM referrals
    WHERE partner_id = :partner AND external_ref = ANY(CAST(:refs AS varchar[]))
    UNION ALL
    SELECT r.id, r.external_ref, r.identity_hash, r.status
    FROM unnest(CAST(:hashes AS bytea[])) AS sent(identity_hash)
    CROSS JOIN LATERAL (
        SELECT id, external_ref, identity_hash, status FROM referrals
        WHERE partner_id = :partner AND identity_hash = sent.identity_hash AND {HOLDING_SQL} LIMIT 1
    ) AS r
    """
)


async def _settle_known(
    session: AsyncSession, partner_id: str, pending: _Pending, outcomes: dict[int, Outcome]
) -> _Pending:
    """What this partner already sent, in one query: a reference it used (the same person gets that referral
    back, another person is an error), or the same person under another reference (that referral back)."""
    if not pending.candidates:
        return pending
    rows = (
        await session.execute(
            _SENT_BEFORE,
            {
                "partner": partner_id,
                "refs": [candidate.external_ref for candidate in pending.candidates],
                "hashes": pending.hashes(),
            },
        )
    ).all()
    by_ref = {row.external_ref: row for row in rows}
    held = {row.identity_hash: row for row in rows if row.status in HOLDING_STATUSES}
    remaining = _Pending()
    for candidate in pending.candidates:
        known = by_ref.get(candidate.external_ref)
        if known is not None and known.identity_hash != candidate.identity_hash:
            outcomes[candidate.line] = _error(
                candidate, "external_ref", "external_ref already used for another referral"
            )
        elif (row := known or held.get(candidate.identity_hash)) is not None:
            outcomes[candidate.line] = Outcome(candidate.line, row.id, ReferralStatus(row.status), created=False)
        else:
            remaining.candidates.append(candidate)
    return remaining


async def _registered_identities(session: AsyncSession, hashes: list[bytes], now: datetime) -> set[bytes]:
    if not hashes:
        return set()
    rows = await session.scalars(
        select(col(ExistingClient.identity_hash)).where(
            equals_any(col(ExistingClient.identity_hash), hashes), col(ExistingClient.opened_on) < business_day(now)
        )
    )
    return set(rows.all())


# Rule 6: the claims on identities, taken in the order of the identities (two batches claiming the same people
# never wait on each other in a cycle); those whose identity someone holds are not taken.
_CLAIM = sa.text(
    """
    INSERT INTO identity_holders (identity_hash, referral_id, partner_id, held_since)
    SELECT claim.identity_hash, claim.referral_id, :partner, :now
    FROM unnest(CAST(:hashes AS bytea[]), CAST(:ids AS varchar[])) AS claim(identity_hash, referral_id)
    ORDER BY claim.identity_hash
    ON CONFLICT DO NOTHING
    RETURNING referral_id
    """
)
# A claim taken for a referral whose insert then lost to a concurrent use of the same reference.
_UNCLAIM = sa.text(
    """
    DELETE FROM identity_holders
    WHERE identity_hash = ANY(CAST(:hashes AS bytea[])) AND referral_id = ANY(CAST(:ids AS varchar[]))
    """
)


async def _insert(
    session: AsyncSession,
    partner_id: str,
    candidates: list[Candidate],
    status: ReferralStatus,
    now: datetime,
    batch_id: str | None,
    outcomes: dict[int, Outcome],
) -> list[Candidate]:
    """Insert with ``status`` (``eligible``: each identity claimed first); returns the candidates whose claim or
    insert lost to a concurrent holder or reference."""
    if not candidates:
        return []
    # The ids drawn at once: one read of the system's random source for the chunk, not one per referral.
    referral_ids = new_ids("ref", len(candidates))
    rows = [
        _row(candidate, referral_id, partner_id, status, now, batch_id)
        for candidate, referral_id in zip(candidates, referral_ids, strict=True)
    ]
    if status in HOLDING_STATUSES:
        claimed: set[str] = set(
            (
                await session.execute(
                    _CLAIM,
                    {
                        "partner": partner_id,
                        "now": now,
                        "hashes": [row[_IDENTITY] for row in rows],
                        "ids": [row[_ID] for row in rows],
                    },
                )
            ).scalars()
        )
        rows = [row for row in rows if row[_ID] in claimed]
    inserted = await _write_referrals(session, rows)
    await record_intake(session, partner_id, list(inserted.values()), status, now)
    if status in HOLDING_STATUSES and len(inserted) < len(rows):
        unclaimed = [row for row in rows if inserted.get(row[_EXTERNAL_REF]) != row[_ID]]
        await session.execute(
            _UNCLAIM, {"hashes": [row[_IDENTITY] for row in unclaimed], "ids": [row[_ID] for row in unclaimed]}
        )
    lost = []
    for candidate in candidates:
        referral_id = inserted.get(candidate.external_ref)
        if referral_id is None:
            lost.append(candidate)
        else:
            outcomes[candidate.line] = Outcome(candidate.line, referral_id, status, created=True)
    return lost


async def _write_referrals(session: AsyncSession, rows: list[tuple[Any, ...]]) -> dict[str, str]:
    """Insert referral rows (in the order of ``_REFERRAL_COLUMNS``) but those whose id or reference is taken;
    returns external_ref → id of the rows inserted. Many rows are COPYed straight in (``copy_rows_new``); a
    reference used meanwhile by a concurrent submission sends them through ``ON CONFLICT DO NOTHING`` instead, which
    leaves out exactly the conflicting ones: the outcome is the same either way."""
    written = await copy_rows_new(session, _REFERRALS, _REFERRAL_COLUMNS, rows, returning=("id", "external_ref"))
    return {str(external_ref): str(referral_id) for referral_id, external_ref in written}


async def _settle_lost_claims(
    session: AsyncSession,
    partner_id: str,
    lost: list[Candidate],
    now: datetime,
    batch_id: str | None,
    outcomes: dict[int, Outcome],
) -> None:
    """Claims that lost the insert: to another partner's holder (→ duplicate and a conflict), to this partner's
    own concurrent submission (→ that referral), or to a concurrent use of the same reference (→ error)."""
    if not lost:
        return
    holders = {
        row.identity_hash: row
        for row in (
            await session.execute(
                select(
                    col(IdentityHolder.identity_hash), col(IdentityHolder.referral_id), col(IdentityHolder.partner_id)
                ).where(equals_any(col(IdentityHolder.identity_hash), [candidate.identity_hash for candidate in lost]))
            )
        ).all()
    }
    own = [row.referral_id for row in holders.values() if row.partner_id == partner_id]
    own_statuses: dict[str, ReferralStatus] = {}
    if own:
        own_statuses = {
            referral_id: ReferralStatus(status)
            for referral_id, status in (
                await session.execute(
                    select(col(Referral.id), col(Referral.status)).where(
                        col(Referral.partner_id) == partner_id, equals_any(col(Referral.id), own)
                    )
                )
            ).all()
        }
    duplicates: list[Candidate] = []
    for candidate in lost:
        holder = holders.get(candidate.identity_hash)
        if holder is None:
            outcomes[candidate.line] = _error(
                candidate, "external_ref", "external_ref already used for another referral"
            )
        elif holder.partner_id == partner_id and holder.referral_id in own_statuses:
            outcomes[candidate.line] = Outcome(
                candidate.line, holder.referral_id, own_statuses[holder.referral_id], created=False
            )
        elif holder.partner_id == partner_id:
            outcomes[candidate.line] = _error(
                candidate, "external_ref", "external_ref already used for another referral"
            )
        else:
            duplicates.append(candidate)
    still_lost = await _insert(session, partner_id, duplicates, ReferralStatus.duplicate, now, batch_id, outcomes)
    for candidate in still_lost:
        outcomes[candidate.line] = _error(candidate, "external_ref", "external_ref already used for another referral")
    conflicts = [
        {
            "id": new_id("cfl"),
            "holding_referral_id": holders[candidate.identity_hash].referral_id,
            "duplicate_referral_id": outcomes[candidate.line].referral_id,
            "created_at": now,
        }
        for candidate in duplicates
        if outcomes[candidate.line].referral_id is not None
    ]
    if conflicts:
        await session.execute(insert(AttributionConflict.__table__), conflicts)  # type: ignore[attr-defined]
