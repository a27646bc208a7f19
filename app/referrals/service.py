"""Referral rules: intake (validation → encryption → attribution), reading, withdrawal with erasure, staff
search and unmasking, the registry of existing clients, expiry and retention. Conflicts and overrides are in
``app.referrals.oversight`` and ``app.referrals.overrides``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.audit import service as audit
from app.audit.service import Actor
from app.catalog.models import Partner, PartnerStatus, Program, ProgramStatus
from app.core import clock
from app.core.bulk import JsonText
from app.core.business_time import business_day
from app.core.identifiers import national_id_birth_year
from app.core.pagination import PageParams, paginate_query
from app.core.partner_filter import EVERY_PARTNER, PartnerFilter
from app.core.problems import Conflict, NotFound, Unprocessable
from app.core.tenancy import Tenant, owned_row, scoped
from app.privacy.crypto import BlindIndex, DataCipher, mask_identifier, mask_mobile, mask_name
from app.privacy.service import EncryptedColumn
from app.referrals.attribution import Candidate, attribute
from app.referrals.models import (
    UNCONVERTED_OUTCOMES,
    Referral,
    ReferralEvent,
    ReferralKind,
    ReferralRow,
    ReferralStatus,
)
from app.referrals.schemas import EnterpriseSubject, IndividualSubject, ReferralCreate
from app.referrals.transitions import StatusChange, transition

NAME_COLUMN = "referrals.name"
MOBILE_COLUMN = "referrals.mobile"
IDENTIFIER_COLUMN = "referrals.identifier"
ENCRYPTED_COLUMNS = (
    EncryptedColumn("referrals", "name_ct", NAME_COLUMN),
    EncryptedColumn("referrals", "mobile_ct", MOBILE_COLUMN),
    EncryptedColumn("referrals", "identifier_ct", IDENTIFIER_COLUMN),
)


class ProgramNotAvailable(Unprocessable):
    slug, title = "program-not-available", "Program not available"


class ExternalRefTaken(Conflict):
    slug, title = "external-ref-taken", "External reference already used"


# --- intake -----------------------------------------------------------------------------------------------------


def age_band(birth_year: int | None, today: date) -> str | None:
    """Bands for reports; 25-35 is the seed's young-client target."""
    if birth_year is None:
        return None
    age = today.year - birth_year
    if age < 25:
        return "under_25"
    if age <= 35:
        return "25_35"
    if age <= 45:
        return "36_45"
    if age <= 55:
        return "46_55"
    return "over_55"


def identity_index(index: BlindIndex, kind: ReferralKind | str, identifier: str) -> bytes:
    """Rule 1: the blind index of the normalised ID number (individuals) or credit code (enterprises)."""
    return index.of("credit_code" if kind == ReferralKind.enterprise else "national_id", identifier)


def mobile_index(index: BlindIndex, mobile: str) -> bytes:
    return index.of("mobile", mobile)


def build_candidate(
    line: int, data: ReferralCreate, program: Program, cipher: DataCipher, index: BlindIndex, today: date
) -> Candidate:
    """Encrypt and index a validated referral; nothing in clear leaves this function but masks and age band."""
    return encrypted_candidate(line, data, program.id, program.attribution_window_days, cipher, index, today)


@dataclass(slots=True)
class PlainReferral:
    """A validated referral as the plain values intake encrypts and indexes (the identifier and mobile normalised,
    the consent evidence as its JSON)."""

    program_id: str
    external_ref: str
    kind: str
    name: str
    mobile: str | None
    identifier: str
    birth_year: int | None
    declared_assets_band: str | None
    employer: str | None
    consent: JsonText | None


def encrypted_candidate(
    line: int,
    data: ReferralCreate,
    program_id: str,
    window_days: int,
    cipher: DataCipher,
    index: BlindIndex,
    today: date,
) -> Candidate:
    """``build_candidate`` for a program known by its id and window only."""
    subject = data.subject
    mobile: str | None
    if isinstance(subject, IndividualSubject):
        identifier, mobile = subject.national_id, subject.mobile
        birth_year: int | None = national_id_birth_year(identifier)  # the schema validated the number
        assets, employer = subject.declared_assets_band, subject.employer
    else:
        assert isinstance(subject, EnterpriseSubject)
        identifier, mobile = subject.credit_code, subject.contact_mobile
        birth_year, assets, employer = None, None, None
    plain = PlainReferral(
        program_id=program_id,
        external_ref=data.external_ref,
        kind=data.kind.value,
        name=subject.name,
        mobile=mobile,
        identifier=identifier,
        birth_year=birth_year,
        declared_assets_band=assets.value if assets else None,
        employer=employer,
        consent=JsonText(data.consent.model_dump_json()) if data.consent else None,
    )
    return sealed_candidate(line, plain, window_days, cipher, index, today)


def sealed_candidate(
    line: int, plain: PlainReferral, window_days: int, cipher: DataCipher, index: BlindIndex, today: date
) -> Candidate:
    """Encrypt and index a validated referral's values; nothing in clear leaves this function but masks and age
    band."""
    mobile, identifier = plain.mobile, plain.identifier
    return Candidate(
        line=line,
        program_id=plain.program_id,
        attribution_window_days=window_days,
        external_ref=plain.external_ref,
        kind=plain.kind,
        identity_hash=identity_index(index, plain.kind, identifier),
        mobile_hash=mobile_index(index, mobile) if mobile else None,
        name_ct=cipher.encrypt(plain.name, NAME_COLUMN),
        mobile_ct=cipher.encrypt(mobile, MOBILE_COLUMN) if mobile else None,
        identifier_ct=cipher.encrypt(identifier, IDENTIFIER_COLUMN),
        name_masked=mask_name(plain.name),
        mobile_masked=mask_mobile(mobile) if mobile else None,
        identifier_masked=mask_identifier(identifier),
        birth_year=plain.birth_year,
        age_band=age_band(plain.birth_year, today),
        declared_assets_band=plain.declared_assets_band,
        employer=plain.employer,
        consent=plain.consent,
    )


async def open_programs(session: AsyncSession, partner_id: str, today: date) -> dict[str, Program]:
    """The partner's programs that accept referrals today."""
    rows = await session.scalars(
        select(Program).where(
            col(Program.partner_id) == partner_id,
            col(Program.status) == ProgramStatus.active,
            col(Program.effective_from) <= today,
        )
    )
    return {program.id: program for program in rows if program.effective_to is None or program.effective_to > today}


async def open_program(session: AsyncSession, partner_id: str, program_id: str, today: date) -> Program | None:
    """One program of an active partner that accepts referrals today (one query)."""
    program = await session.scalar(
        select(Program)
        .join(Partner, col(Partner.id) == col(Program.partner_id))
        .where(
            col(Program.id) == program_id,
            col(Program.partner_id) == partner_id,
            col(Program.status) == ProgramStatus.active,
            col(Program.effective_from) <= today,
            col(Partner.status) == PartnerStatus.active,
        )
    )
    if program is None or (program.effective_to is not None and program.effective_to <= today):
        return None
    return program


@dataclass(frozen=True)
class Submitted:
    referral: Referral
    created: bool


async def submit_referral(
    session: AsyncSession, tenant: Tenant, data: ReferralCreate, cipher: DataCipher, index: BlindIndex
) -> Submitted:
    """Validate, encrypt and attribute one referral; ``created`` is False when an existing one is returned."""
    partner_id = tenant.own_partner_id
    now = clock.now()
    program = await open_program(session, partner_id, data.program_id, business_day(now))
    if program is None:
        # Another partner's program is indistinguishable from a missing one.
        raise ProgramNotAvailable("No active program with this id accepts your referrals.", field="program_id")
    candidate = build_candidate(0, data, program, cipher, index, business_day(now))
    [outcome] = await attribute(session, partner_id, [candidate], now)
    if outcome.referral_id is None:
        raise ExternalRefTaken(outcome.error or "external_ref already used", field=outcome.error_field)
    # Read on the partner's own rows (its shard on a cluster, docs/scaling.md).
    referral = (
        await session.scalars(
            select(Referral)
            .where(col(Referral.partner_id) == partner_id, col(Referral.id) == outcome.referral_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    return Submitted(referral, outcome.created)


# --- reading ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralFilters:
    status: ReferralStatus | None = None
    program_id: str | None = None
    kind: ReferralKind | None = None
    external_ref: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    partner_id: str | None = None
    identity_hash: bytes | None = None
    mobile_hash: bytes | None = None


async def list_referrals(
    session: AsyncSession, tenant: Tenant, params: PageParams, filters: ReferralFilters
) -> list[Referral]:
    statement = scoped(select(Referral), tenant, col(Referral.partner_id))
    for column, value in (
        (Referral.status, filters.status),
        (Referral.program_id, filters.program_id),
        (Referral.kind, filters.kind),
        (Referral.external_ref, filters.external_ref),
        (Referral.partner_id, filters.partner_id),
        (Referral.identity_hash, filters.identity_hash),
        (Referral.mobile_hash, filters.mobile_hash),
    ):
        if value is not None:
            statement = statement.where(col(column) == value)
    if filters.created_from:
        statement = statement.where(col(Referral.created_at) >= filters.created_from)
    if filters.created_to:
        statement = statement.where(col(Referral.created_at) < filters.created_to)
    statement = paginate_query(statement, params, col(Referral.created_at), col(Referral.id))
    return list((await session.scalars(statement)).all())


async def get_referral(
    session: AsyncSession, tenant: Tenant, referral_id: str, *, for_update: bool = False
) -> Referral:
    statement = owned_row(Referral, referral_id, tenant)
    if for_update:
        statement = statement.with_for_update()
    referral = (await session.scalars(statement)).one_or_none()
    if referral is None:
        raise NotFound("No such referral.")
    return referral


async def referral_events(session: AsyncSession, tenant: Tenant, referral_id: str) -> list[ReferralEvent]:
    await get_referral(session, tenant, referral_id)
    rows = await session.scalars(
        select(ReferralEvent).where(col(ReferralEvent.referral_id) == referral_id).order_by(col(ReferralEvent.seq))
    )
    return list(rows.all())


_LOCK_FOR_ACCOUNTS = sa.text(
    """
    SELECT id, partner_id, program_id, external_ref, status, identity_hash, window_ends_at, created_at
    FROM referrals
    WHERE (partner_id, id) IN (
            SELECT partner_id, referral_id FROM identity_holders
            WHERE identity_hash = ANY(CAST(:identities AS bytea[]))
            UNION ALL
            SELECT partner_id, id FROM referrals
            WHERE id = ANY(CAST(:ids AS varchar[]))
              AND (cardinality(CAST(:partners AS varchar[])) = 0 OR partner_id = ANY(CAST(:partners AS varchar[]))))
      AND (status = 'eligible' OR id = ANY(CAST(:ids AS varchar[])))
    ORDER BY id
    FOR UPDATE
    """
)


async def lock_for_accounts(
    session: AsyncSession,
    identities: Sequence[bytes],
    referral_ids: Sequence[str],
    partner_ids: Sequence[str] = (),
) -> list[ReferralRow]:
    """For the conversion feed, the referrals its accounts may touch, locked until the transaction ends (in one
    statement, in key order): the eligible referrals of the ``identities`` accounts open for (found through their
    holders, then read on their partner's rows), and the referrals ``referral_ids`` (of the partners
    ``partner_ids``, when given) accounts are linked to. Their status changes only through
    ``app.referrals.transitions.transition``."""
    if not identities and not referral_ids:
        return []
    rows = await session.execute(
        _LOCK_FOR_ACCOUNTS,
        {
            "identities": list(identities),
            "ids": list(referral_ids),
            "partners": sorted(set(partner_ids)),
        },
    )
    return [
        ReferralRow(row[0], row[1], row[2], row[3], ReferralStatus(row[4]), row[5], row[6], row[7])
        for row in rows.all()
    ]


# --- withdrawal and erasure -----------------------------------------------------------------------------------------

_PERSONAL_COLUMNS: dict[str, Any] = {
    "identity_hash": None,
    "mobile_hash": None,
    "name_ct": None,
    "mobile_ct": None,
    "identifier_ct": None,
    "name_masked": None,
    "mobile_masked": None,
    "identifier_masked": None,
    "employer": None,
    "consent": None,
}


async def withdraw_referral(
    session: AsyncSession, tenant: Tenant, actor: Actor, referral_id: str, reason: str, note: str | None
) -> Referral:
    """Withdraw and erase the personal data; the row, its timeline and its money history stay."""
    referral = await get_referral(session, tenant, referral_id, for_update=True)
    if referral.status is ReferralStatus.withdrawn:
        return referral
    now = clock.now()
    await transition(
        session,
        [StatusChange(referral.id, referral.partner_id, referral.status, ReferralStatus.withdrawn, reason)],
        now,
    )
    await session.execute(
        update(Referral)
        .where(col(Referral.id) == referral.id)
        .values(erased_at=now, updated_at=now, **_PERSONAL_COLUMNS)
    )
    await audit.record(
        session, actor, "referral.withdrawn", object_type="referral", object_id=referral.id, reason=reason, note=note
    )
    await session.refresh(referral)
    return referral


async def erase_unconverted(
    session: AsyncSession,
    retention: timedelta,
    now: datetime | None = None,
    partners: PartnerFilter = EVERY_PARTNER,
) -> int:
    """PIPL art. 47: erase the personal data of referrals (of the ``partners``) whose unconverted outcome is older
    than ``retention``."""
    now = now or clock.now()
    result = await session.execute(
        update(Referral)
        .where(
            col(Referral.status).in_(UNCONVERTED_OUTCOMES),
            col(Referral.erased_at).is_(None),
            col(Referral.outcome_at) < now - retention,
            partners.where(col(Referral.partner_id)),
        )
        .values(erased_at=now, updated_at=now, **_PERSONAL_COLUMNS)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- staff ------------------------------------------------------------------------------------------------------


async def unmask_referral(
    session: AsyncSession, actor: Actor, referral_id: str, cipher: DataCipher, purpose: str
) -> dict[str, str | None]:
    """The personal data in clear, for staff with ``pii:unmask``; every read is audited."""
    referral = await get_referral(session, Tenant.everyone(actor), referral_id)
    await audit.record(
        session, actor, "referral.unmasked", object_type="referral", object_id=referral.id, purpose=purpose
    )
    return {
        "name": cipher.decrypt(referral.name_ct, NAME_COLUMN) if referral.name_ct else None,
        "mobile": cipher.decrypt(referral.mobile_ct, MOBILE_COLUMN) if referral.mobile_ct else None,
        "identifier": cipher.decrypt(referral.identifier_ct, IDENTIFIER_COLUMN) if referral.identifier_ct else None,
    }


async def owned_ids(session: AsyncSession, partner_id: str, referral_ids: Sequence[str]) -> set[str]:
    """Which of ``referral_ids`` are the partner's (one query, whatever their number)."""
    if not referral_ids:
        return set()
    rows = await session.scalars(
        select(col(Referral.id)).where(col(Referral.partner_id) == partner_id, col(Referral.id).in_(list(referral_ids)))
    )
    return set(rows.all())
