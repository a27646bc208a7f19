"""referral batches: uploads, staged lines, per-line results

Revision ID: 4c4e07c75e16
Revises: 95549a508eda
Create Date: 2026-11-25 01:35:18.072327+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4c4e07c75e16"
down_revision: str | None = "95549a508eda"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_batches",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("content_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column(
            "format",
            sa.Enum("csv", "jsonl", name="referral_batch_format", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("columns", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "processing",
                "completed",
                "failed",
                name="referral_batch_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("total_lines", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("existing_client", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("returned_existing", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["oauth_clients.id"], name=op.f("fk_referral_batches_client_id_oauth_clients")
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_referral_batches_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_batches")),
        sa.UniqueConstraint("client_id", "idempotency_key", name="uq_referral_batches_client_key"),
    )
    op.create_index(
        "ix_referral_batches_open",
        "referral_batches",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.create_index(
        "ix_referral_batches_partner_created", "referral_batches", ["partner_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "referral_batch_lines",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["referral_batches.id"],
            name=op.f("fk_referral_batch_lines_batch_id_referral_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "line", name=op.f("pk_referral_batch_lines")),
    )
    op.create_table(
        "referral_batch_results",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "eligible",
                "existing_client",
                "duplicate",
                "returned_existing",
                "error",
                name="referral_batch_outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column(
            "referral_status",
            sa.Enum(
                "received",
                "eligible",
                "account_opened",
                "funded",
                "converted",
                "existing_client",
                "duplicate",
                "expired",
                "withdrawn",
                "rejected",
                name="referral_batch_referral_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("errors", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["referral_batches.id"],
            name=op.f("fk_referral_batch_results_batch_id_referral_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_referral_batch_results_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("batch_id", "line", name=op.f("pk_referral_batch_results")),
    )


def downgrade() -> None:
    op.drop_table("referral_batch_results")
    op.drop_table("referral_batch_lines")
    op.drop_index("ix_referral_batches_partner_created", table_name="referral_batches")
    op.drop_index(
        "ix_referral_batches_open",
        table_name="referral_batches",
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.drop_table("referral_batches")
