"""fee accruals, statements, claims, reconciliation

Revision ID: 95549a508eda
Revises: 9f2ec3b7973d
Create Date: 2026-11-25 01:34:32.134294+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "95549a508eda"
down_revision: str | None = "9f2ec3b7973d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "issued",
                "disputed",
                "approved",
                "paid",
                name="statement_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("lines_total_fen", sa.BigInteger(), nullable=False),
        sa.Column("carried_forward_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.Column("vat_inclusive", sa.Boolean(), nullable=False),
        sa.Column("vat_fen", sa.BigInteger(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_statements_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
        sa.UniqueConstraint("partner_id", "period", name="uq_statements_partner_period"),
    )
    op.create_index("ix_statements_created_at_id", "statements", ["created_at", "id"], unique=False)
    op.create_index(op.f("ix_statements_period"), "statements", ["period"], unique=False)
    op.create_table(
        "claims",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("statement_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("claimed_total_fen", sa.BigInteger(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["statement_id"], ["statements.id"], name=op.f("fk_claims_statement_id_statements")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    op.create_index(op.f("ix_claims_statement_id"), "claims", ["statement_id"], unique=False)
    op.create_table(
        "claim_lines",
        sa.Column("claim_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("fee_type", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_lines_claim_id_claims")),
        sa.PrimaryKeyConstraint("claim_id", "line_no", name=op.f("pk_claim_lines")),
    )
    op.create_index("ix_claim_lines_claim_ref", "claim_lines", ["claim_id", "external_ref", "fee_type"], unique=False)
    op.create_table(
        "fee_accruals",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("conversion_event_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("fee_schedule_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column(
            "rule",
            sa.Enum(
                "funded_bounty",
                "tier_top_up",
                "bundle_fee",
                "revenue_share",
                "cap",
                "clawback",
                "adjustment",
                name="fee_rule",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "payable",
                "statemented",
                "paid",
                "reversed",
                name="accrual_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reverses_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("statement_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("arithmetic", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["fee_schedule_id"], ["fee_schedules.id"], name=op.f("fk_fee_accruals_fee_schedule_id_fee_schedules")
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_fee_accruals_partner_id_partners")),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"], name=op.f("fk_fee_accruals_referral_id_referrals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_accruals")),
        sa.UniqueConstraint("source_key", name=op.f("uq_fee_accruals_source_key")),
    )
    op.create_index("ix_fee_accruals_created_at_id", "fee_accruals", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_fee_accruals_hold",
        "fee_accruals",
        ["hold_until"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_fee_accruals_partner_status", "fee_accruals", ["partner_id", "status"], unique=False)
    op.create_index("ix_fee_accruals_referral", "fee_accruals", ["referral_id", "rule"], unique=False)
    op.create_index("ix_fee_accruals_statement", "fee_accruals", ["statement_id"], unique=False)
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("statement_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("claim_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("fee_type", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column(
            "match_class",
            sa.Enum(
                "matched",
                "amount_mismatch",
                "unclaimed",
                "unknown",
                "duplicate_claim",
                name="match_class",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("ours_fen", sa.BigInteger(), nullable=True),
        sa.Column("theirs_fen", sa.BigInteger(), nullable=True),
        sa.Column("difference_fen", sa.BigInteger(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("disputed", sa.Boolean(), nullable=False),
        sa.Column("dispute_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column(
            "resolution",
            sa.Enum(
                "accept_ours",
                "accept_theirs",
                "write_off",
                name="reconciliation_resolution",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("resolution_note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("adjustment_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_reconciliation_items_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["statement_id"], ["statements.id"], name=op.f("fk_reconciliation_items_statement_id_statements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
    )
    op.create_index(
        "ix_reconciliation_items_statement", "reconciliation_items", ["statement_id", "match_class"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_items_statement", table_name="reconciliation_items")
    op.drop_table("reconciliation_items")
    op.drop_index("ix_fee_accruals_statement", table_name="fee_accruals")
    op.drop_index("ix_fee_accruals_referral", table_name="fee_accruals")
    op.drop_index("ix_fee_accruals_partner_status", table_name="fee_accruals")
    op.drop_index("ix_fee_accruals_hold", table_name="fee_accruals", postgresql_where=sa.text("status = 'pending'"))
    op.drop_index("ix_fee_accruals_created_at_id", table_name="fee_accruals")
    op.drop_table("fee_accruals")
    op.drop_index("ix_claim_lines_claim_ref", table_name="claim_lines")
    op.drop_table("claim_lines")
    op.drop_index(op.f("ix_claims_statement_id"), table_name="claims")
    op.drop_table("claims")
    op.drop_index(op.f("ix_statements_period"), table_name="statements")
    op.drop_index("ix_statements_created_at_id", table_name="statements")
    op.drop_table("statements")
