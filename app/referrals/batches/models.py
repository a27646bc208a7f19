"""The tables of a batch upload: the batch (progress and counts), its staged chunks, one result per line."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, enum_type, id_field, updated_at_field
from app.referrals.batches.files import (
    BatchFormat,
)
from app.referrals.models import ReferralStatus

CHUNK_PURPOSE = "referral_batch_chunks.payload"  # associated data of a staged chunk's ciphertext


class BatchStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"


class LineOutcome(StrEnum):
    eligible = "eligible"
    existing_client = "existing_client"
    duplicate = "duplicate"
    returned_existing = "returned_existing"
    error = "error"


OPEN_SQL = "status IN ('pending', 'processing')"


class ReferralBatch(SQLModel, table=True):
    """One upload: its idempotency key and content hash, its progress and the count of each outcome."""

    __tablename__ = "referral_batches"
    __table_args__ = (
        sa.UniqueConstraint("client_id", "idempotency_key", name="uq_referral_batches_client_key"),
        sa.Index("ix_referral_batches_partner_created", "partner_id", "created_at", "id"),
        sa.Index("ix_referral_batches_open", "created_at", postgresql_where=sa.text(OPEN_SQL)),
    )

    id: str = id_field("bat")
    partner_id: str = Field(foreign_key="partners.id", max_length=40)
    client_id: str = Field(foreign_key="oauth_clients.id", max_length=40)
    idempotency_key: str = Field(max_length=200)
    content_sha256: str | None = Field(default=None, max_length=64)
    format: BatchFormat = Field(sa_type=enum_type(BatchFormat, "referral_batch_format"), nullable=False)
    columns: list[str] | None = Field(default=None, sa_type=JSONB, description="The CSV header, in file order.")
    status: BatchStatus = Field(
        default=BatchStatus.pending, sa_type=enum_type(BatchStatus, "referral_batch_status"), nullable=False
    )
    total_lines: int = 0
    processed: int = 0
    eligible: int = 0
    existing_client: int = 0
    duplicate: int = 0
    returned_existing: int = 0
    errors: int = 0
    attempts: int = Field(default=0, description="Processing runs that failed; the batch fails after MAX_ATTEMPTS.")
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    completed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ReferralBatchChunk(SQLModel, table=True):
    """Staged lines waiting to be processed, ``(line number, raw line)`` pairs encrypted together (they hold
    personal data): one row per chunk, so staging and processing cost one row and one cipher call per chunk."""

    __tablename__ = "referral_batch_chunks"

    batch_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("referral_batches.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    first_line: int = Field(primary_key=True)
    lines: int
    payload: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class ReferralBatchResult(SQLModel, table=True):
    """What became of one line: the referral, or why it was refused. Never any personal data."""

    __tablename__ = "referral_batch_results"

    batch_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("referral_batches.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    line: int = Field(primary_key=True)
    outcome: LineOutcome = Field(sa_type=enum_type(LineOutcome, "referral_batch_outcome"), nullable=False)
    external_ref: str | None = Field(default=None, max_length=100)
    # No foreign key: the referral is written in the same transaction and never deleted (erasure keeps the row),
    # and a check per line is a sizeable share of a batch's cost.
    referral_id: str | None = Field(default=None, max_length=40)
    referral_status: ReferralStatus | None = Field(
        default=None, sa_type=enum_type(ReferralStatus, "referral_batch_referral_status")
    )
    errors: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONB)


def chunk_purpose(batch_id: str, first_line: int) -> str:
    """Associated data binding a chunk's ciphertext to its batch and place: a chunk moved elsewhere won't decrypt."""
    return f"{CHUNK_PURPOSE}:{batch_id}:{first_line}"
