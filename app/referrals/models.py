"""Referral tables: the referral (personal data encrypted, matched through blind indexes), its timeline, the
attribution conflicts, the registry of the firm's existing clients, and batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field


class ReferralKind(StrEnum):
    vip = "vip"
    employee = "employee"
    enterprise = "enterprise"


class ReferralStatus(StrEnum):
    received = "received"
    eligible = "eligible"
    account_opened = "account_opened"
    funded = "funded"
    converted = "converted"
    existing_client = "existing_client"
    duplicate = "duplicate"
    expired = "expired"
    withdrawn = "withdrawn"
    rejected = "rejected"


# A referral in one of these holds its identity: no other partner can be credited for the same person.
HOLDING_STATUSES = (
    ReferralStatus.eligible,
    ReferralStatus.account_opened,
    ReferralStatus.funded,
    ReferralStatus.converted,
)
HOLDING_SQL = "status IN ('eligible', 'account_opened', 'funded', 'converted')"
# Outcomes after which the personal data is no longer needed (erased after the retention period).
UNCONVERTED_OUTCOMES = (
    ReferralStatus.expired,
    ReferralStatus.duplicate,
    ReferralStatus.existing_client,
    ReferralStatus.rejected,
)
AWAITING_ERASURE_SQL = "erased_at IS NULL AND status IN ('expired', 'duplicate', 'existing_client', 'rejected')"


class Referral(SQLModel, table=True):
    __tablename__ = "referrals"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "external_ref", name="uq_referrals_partner_external_ref"),
        sa.Index("ix_referrals_partner_created", "partner_id", "created_at", "id"),
        sa.Index("ix_referrals_created_at_id", "created_at", "id"),
        # Staff search by the blind indexes (equality only): erased rows (NULL) are left out.
        sa.Index("ix_referrals_identity_hash", "identity_hash", postgresql_where=sa.text("identity_hash IS NOT NULL")),
        sa.Index("ix_referrals_mobile_hash", "mobile_hash", postgresql_where=sa.text("mobile_hash IS NOT NULL")),
        sa.Index("ix_referrals_eligible_window", "window_ends_at", postgresql_where=sa.text("status = 'eligible'")),
        # A partial index where most rows would be dead weight: every insert of an eligible referral (the bulk of
        # batch intake) skips it. Each index and the query that needs it: docs/indexes.md.
        sa.Index("ix_referrals_awaiting_erasure", "outcome_at", postgresql_where=sa.text(AWAITING_ERASURE_SQL)),
    )

    id: str = id_field("ref")
    partner_id: str = Field(foreign_key="partners.id", max_length=40)
    program_id: str = Field(foreign_key="programs.id", max_length=40)
    external_ref: str = Field(max_length=100)
    kind: ReferralKind = Field(sa_type=enum_type(ReferralKind, "referral_kind"), nullable=False)
    status: ReferralStatus = Field(sa_type=enum_type(ReferralStatus, "referral_status"), nullable=False)

    # Personal data: ciphertexts (AES-GCM, key id inside), blind indexes, and masked forms for display.
    identity_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    mobile_hash: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    name_ct: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    mobile_ct: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    identifier_ct: bytes | None = Field(default=None, sa_type=sa.LargeBinary, description="ID number or credit code")
    name_masked: str | None = Field(default=None, max_length=60)
    mobile_masked: str | None = Field(default=None, max_length=20)
    identifier_masked: str | None = Field(default=None, max_length=20)

    # Kept in clear for reports.
    birth_year: int | None = None
    age_band: str | None = Field(default=None, max_length=10)
    declared_assets_band: str | None = Field(default=None, max_length=20)
    employer: str | None = Field(default=None, max_length=200)

    consent: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    window_ends_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    client_ref: str | None = Field(default=None, max_length=80)
    outcome_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    erased_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    batch_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


@dataclass(slots=True, frozen=True)
class ReferralRow:
    """What the conversion feed and the fee engine read of a referral (locked by ``lock_for_accounts``), as plain
    data: its status changes only through ``app.referrals.transitions.transition``."""

    id: str
    partner_id: str
    program_id: str
    external_ref: str
    status: ReferralStatus
    identity_hash: bytes | None
    window_ends_at: datetime
    created_at: datetime


class IdentityHolder(SQLModel, table=True):
    """The referral that holds an identity now (rule 6 of attribution: at most one, whoever races for it), keyed by
    the identity alone, so that the race is one unique key on one shard however the referrals are distributed
    (docs/scaling.md). Written only by the referrals domain, in the statement or transaction that makes a referral
    take, keep or give up its person: intake (``attribution``, ``submission``) and ``transitions.transition``."""

    __tablename__ = "identity_holders"

    identity_hash: bytes = Field(sa_type=sa.LargeBinary, primary_key=True)
    # No foreign key: on a cluster the referral lives on its partner's shard, this row on its identity's.
    referral_id: str = Field(max_length=40)
    partner_id: str = Field(max_length=40)
    held_since: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class ReferralEvent(SQLModel, table=True):
    """One transition on a referral's timeline, with its time and cause."""

    __tablename__ = "referral_events"
    __table_args__ = (sa.Index("ix_referral_events_referral_seq", "referral_id", "seq"),)

    id: str = id_field("rev")
    # Insertion order: events written in one instant (received, then eligible) keep their order.
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), nullable=False))
    # No foreign key: events are written only by ``app.referrals.transitions``, in the transaction that creates or
    # changes the referral, and referrals are never deleted (erasure keeps the row). The check locked the referral
    # row for every event, a sizeable share of batch intake.
    referral_id: str = Field(max_length=40)
    partner_id: str = Field(max_length=40)
    from_status: ReferralStatus | None = Field(default=None, sa_type=enum_type(ReferralStatus, "referral_event_from"))
    to_status: ReferralStatus = Field(sa_type=enum_type(ReferralStatus, "referral_event_to"), nullable=False)
    cause: str = Field(max_length=60)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    created_at: datetime = created_at_field()


class ConflictStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class AttributionConflict(SQLModel, table=True):
    """A later referral of an identity another partner holds: the later one is ``duplicate``."""

    __tablename__ = "attribution_conflicts"
    __table_args__ = (sa.Index("ix_attribution_conflicts_created_at_id", "created_at", "id"),)

    id: str = id_field("cfl")
    holding_referral_id: str = Field(foreign_key="referrals.id", max_length=40)
    duplicate_referral_id: str = Field(foreign_key="referrals.id", max_length=40, unique=True)
    status: ConflictStatus = Field(
        default=ConflictStatus.open, sa_type=enum_type(ConflictStatus, "conflict_status"), nullable=False, index=True
    )
    resolution: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=500)
    resolved_by: str | None = Field(default=None, max_length=80)
    resolved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = created_at_field()


class ExistingClient(SQLModel, table=True):
    """The firm's clients before any referral: matched by blind index only, the raw identifier is never kept."""

    __tablename__ = "existing_clients"

    identity_hash: bytes = Field(sa_type=sa.LargeBinary, primary_key=True)
    opened_on: date
    updated_at: datetime = updated_at_field()
