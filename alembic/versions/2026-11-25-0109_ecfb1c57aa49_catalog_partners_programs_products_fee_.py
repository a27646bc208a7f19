"""catalog: partners, programs, products, fee schedules; idempotency keys

Revision ID: ecfb1c57aa49
Revises: a90008cba2fc
Create Date: 2026-11-25 01:09:22.159225+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ecfb1c57aa49"
down_revision: str | None = "a90008cba2fc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bundled_products",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("components", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("allowed_partner_kinds", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundled_products")),
        sa.UniqueConstraint("code", name=op.f("uq_bundled_products_code")),
    )
    op.create_index("ix_bundled_products_created_at_id", "bundled_products", ["created_at", "id"], unique=False)
    op.create_table(
        "idempotency_records",
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_index(op.f("ix_idempotency_records_expires_at"), "idempotency_records", ["expires_at"], unique=False)
    op.create_table(
        "programs",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "vip_referral",
                "insurance_bundle",
                "employee_plan",
                "enterprise_services",
                name="program_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attribution_window_days", sa.Integer(), nullable=False),
        sa.Column("qualification_period_days", sa.Integer(), nullable=False),
        sa.Column("hold_period_days", sa.Integer(), nullable=False),
        sa.Column("clawback_period_days", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "paused",
                "closed",
                name="program_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "attribution_window_days > 0 AND qualification_period_days >= 0 AND hold_period_days >= 0 AND clawback_period_days >= 0",
            name=op.f("ck_programs_periods_non_negative"),
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name=op.f("ck_programs_effective_range")
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_programs_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
    )
    op.create_index("ix_programs_created_at_id", "programs", ["created_at", "id"], unique=False)
    op.create_index(op.f("ix_programs_partner_id"), "programs", ["partner_id"], unique=False)
    op.create_table(
        "fee_schedules",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft", "active", name="fee_schedule_status", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("first_accrual_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name=op.f("ck_fee_schedules_effective_range")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_fee_schedules_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_schedules")),
        sa.UniqueConstraint("program_id", "version", name="uq_fee_schedules_program_version"),
    )
    op.create_index("ix_fee_schedules_created_at_id", "fee_schedules", ["created_at", "id"], unique=False)
    op.create_index(op.f("ix_fee_schedules_program_id"), "fee_schedules", ["program_id"], unique=False)
    op.create_table(
        "program_products",
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("product_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["bundled_products.id"], name=op.f("fk_program_products_product_id_bundled_products")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_program_products_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "product_id", name=op.f("pk_program_products")),
    )
    op.create_index(op.f("ix_program_products_product_id"), "program_products", ["product_id"], unique=False)
    op.add_column("partners", sa.Column("credit_code", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True))
    op.add_column(
        "partners", sa.Column("contacts", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False)
    )
    op.add_column("partners", sa.Column("vat_rate_bp", sa.Integer(), server_default="600", nullable=False))
    op.add_column("partners", sa.Column("vat_inclusive", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column(
        "partners", sa.Column("payout_account_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
    )
    op.add_column(
        "partners",
        sa.Column(
            "rate_limit_tier",
            sa.Enum(
                "standard",
                "elevated",
                "bulk",
                name="rate_limit_tier",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            server_default="standard",
            nullable=False,
        ),
    )
    op.add_column("partners", sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    op.add_column(
        "partners", sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
    )
    op.create_index("ix_partners_created_at_id", "partners", ["created_at", "id"], unique=False)
    op.create_unique_constraint(op.f("uq_partners_credit_code"), "partners", ["credit_code"])
    op.create_check_constraint(op.f("ck_partners_vat_rate_in_range"), "partners", "vat_rate_bp BETWEEN 0 AND 10000")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_partners_vat_rate_in_range"), "partners", type_="check")
    op.drop_constraint(op.f("uq_partners_credit_code"), "partners", type_="unique")
    op.drop_index("ix_partners_created_at_id", table_name="partners")
    op.drop_column("partners", "updated_at")
    op.drop_column("partners", "status_reason")
    op.drop_column("partners", "rate_limit_tier")
    op.drop_column("partners", "payout_account_ref")
    op.drop_column("partners", "vat_inclusive")
    op.drop_column("partners", "vat_rate_bp")
    op.drop_column("partners", "contacts")
    op.drop_column("partners", "credit_code")
    op.drop_index(op.f("ix_program_products_product_id"), table_name="program_products")
    op.drop_table("program_products")
    op.drop_index(op.f("ix_fee_schedules_program_id"), table_name="fee_schedules")
    op.drop_index("ix_fee_schedules_created_at_id", table_name="fee_schedules")
    op.drop_table("fee_schedules")
    op.drop_index(op.f("ix_programs_partner_id"), table_name="programs")
    op.drop_index("ix_programs_created_at_id", table_name="programs")
    op.drop_table("programs")
    op.drop_index(op.f("ix_idempotency_records_expires_at"), table_name="idempotency_records")
    op.drop_table("idempotency_records")
    op.drop_index("ix_bundled_products_created_at_id", table_name="bundled_products")
    op.drop_table("bundled_products")
