"""batch chunks; leaner referral indexes and batch results

Staged batch lines are kept one row per chunk (``referral_batch_chunks``: the chunk's lines encrypted together)
instead of one row per line. Lines still staged under the old layout cannot be moved by SQL (they are encrypted
with the application's keys), so the upgrade (and the downgrade) refuses to run until the worker has processed
them.

Three indexes of ``referrals`` were maintained on every insert for the benefit of rare queries: ``status`` (used
by the retention job only) becomes a partial index of the referrals awaiting erasure, ``client_ref`` (empty until
an account opens) a partial index of the linked ones, and ``program_id`` goes (a program's referrals are always
read through the partner's index).

``referral_batch_results.referral_id`` loses its foreign key: the referral is written in the same transaction as
the result and is never deleted, and the check cost a share of every batch line.

Revision ID: 7d04a6decc9e
Revises: 10be9c529013
Create Date: 2026-11-25 04:04:59.637299+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7d04a6decc9e"
down_revision: str | None = "10be9c529013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING_ERASURE = "erased_at IS NULL AND status IN ('expired', 'duplicate', 'existing_client', 'rejected')"


def _refuse_while_staged(table: str) -> None:
    staged = op.get_bind().scalar(sa.text(f"SELECT count(*) FROM {table}"))
    if staged:
        raise RuntimeError(f"{table} still holds staged batch lines: let `alliance worker` process them first.")


def upgrade() -> None:
    _refuse_while_staged("referral_batch_lines")
    op.create_table(
        "referral_batch_chunks",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["referral_batches.id"],
            name=op.f("fk_referral_batch_chunks_batch_id_referral_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "first_line", name=op.f("pk_referral_batch_chunks")),
    )
    op.drop_table("referral_batch_lines")
    op.drop_constraint(
        op.f("fk_referral_batch_results_referral_id_referrals"), "referral_batch_results", type_="foreignkey"
    )
    op.drop_index(op.f("ix_referrals_program_id"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_status"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_client_ref"), table_name="referrals")
    op.create_index(
        "ix_referrals_awaiting_erasure",
        "referrals",
        ["outcome_at"],
        unique=False,
        postgresql_where=sa.text(AWAITING_ERASURE),
    )
    op.create_index(
        "ix_referrals_client_ref",
        "referrals",
        ["client_ref"],
        unique=False,
        postgresql_where=sa.text("client_ref IS NOT NULL"),
    )


def downgrade() -> None:
    _refuse_while_staged("referral_batch_chunks")
    op.drop_index("ix_referrals_client_ref", table_name="referrals")
    op.drop_index("ix_referrals_awaiting_erasure", table_name="referrals")
    op.create_index(op.f("ix_referrals_client_ref"), "referrals", ["client_ref"], unique=False)
    op.create_index(op.f("ix_referrals_status"), "referrals", ["status"], unique=False)
    op.create_index(op.f("ix_referrals_program_id"), "referrals", ["program_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_referral_batch_results_referral_id_referrals"),
        "referral_batch_results",
        "referrals",
        ["referral_id"],
        ["id"],
    )
    op.create_table(
        "referral_batch_lines",
        sa.Column("batch_id", sa.VARCHAR(length=40), autoincrement=False, nullable=False),
        sa.Column("line", sa.INTEGER(), autoincrement=False, nullable=False),
        sa.Column("payload", postgresql.BYTEA(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["referral_batches.id"],
            name=op.f("fk_referral_batch_lines_batch_id_referral_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "line", name=op.f("pk_referral_batch_lines")),
    )
    op.drop_table("referral_batch_chunks")
