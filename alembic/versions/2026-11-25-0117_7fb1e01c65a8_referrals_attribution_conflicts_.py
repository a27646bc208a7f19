"""referrals, attribution conflicts, existing clients, data keys

Revision ID: 7fb1e01c65a8
Revises: ecfb1c57aa49
Create Date: 2026-11-25 01:17:11.332490+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7fb1e01c65a8"
down_revision: str | None = "ecfb1c57aa49"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    op.create_index("uq_data_keys_one_active", "data_keys", ["active"], unique=True, postgresql_where=sa.text("active"))
    op.create_table(
        "existing_clients",
        sa.Column("identity_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("identity_hash", name=op.f("pk_existing_clients")),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "vip",
                "employee",
                "enterprise",
                name="referral_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
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
                name="referral_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("identity_hash", sa.LargeBinary(), nullable=True),
        sa.Column("mobile_hash", sa.LargeBinary(), nullable=True),
        sa.Column("name_ct", sa.LargeBinary(), nullable=True),
        sa.Column("mobile_ct", sa.LargeBinary(), nullable=True),
        sa.Column("identifier_ct", sa.LargeBinary(), nullable=True),
        sa.Column("name_masked", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("mobile_masked", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("identifier_masked", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("age_band", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("declared_assets_band", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("employer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("consent", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ref", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_referrals_partner_id_partners")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_referrals_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("partner_id", "external_ref", name="uq_referrals_partner_external_ref"),
    )
    op.create_index(op.f("ix_referrals_client_ref"), "referrals", ["client_ref"], unique=False)
    op.create_index("ix_referrals_created_at_id", "referrals", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_referrals_eligible_window",
        "referrals",
        ["window_ends_at"],
        unique=False,
        postgresql_where=sa.text("status = 'eligible'"),
    )
    op.create_index("ix_referrals_identity_hash", "referrals", ["identity_hash"], unique=False)
    op.create_index("ix_referrals_mobile_hash", "referrals", ["mobile_hash"], unique=False)
    op.create_index("ix_referrals_partner_created", "referrals", ["partner_id", "created_at", "id"], unique=False)
    op.create_index(op.f("ix_referrals_program_id"), "referrals", ["program_id"], unique=False)
    op.create_index(op.f("ix_referrals_status"), "referrals", ["status"], unique=False)
    op.create_index(
        "uq_referrals_identity_holder",
        "referrals",
        ["identity_hash"],
        unique=True,
        postgresql_where=sa.text("status IN ('eligible', 'account_opened', 'funded', 'converted')"),
    )
    op.create_table(
        "attribution_conflicts",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("holding_referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("duplicate_referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "resolved", name="conflict_status", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("resolution", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_referral_id"],
            ["referrals.id"],
            name=op.f("fk_attribution_conflicts_duplicate_referral_id_referrals"),
        ),
        sa.ForeignKeyConstraint(
            ["holding_referral_id"],
            ["referrals.id"],
            name=op.f("fk_attribution_conflicts_holding_referral_id_referrals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_conflicts")),
        sa.UniqueConstraint("duplicate_referral_id", name=op.f("uq_attribution_conflicts_duplicate_referral_id")),
    )
    op.create_index(
        "ix_attribution_conflicts_created_at_id", "attribution_conflicts", ["created_at", "id"], unique=False
    )
    op.create_index(op.f("ix_attribution_conflicts_status"), "attribution_conflicts", ["status"], unique=False)
    op.create_table(
        "referral_events",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "from_status",
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
                name="referral_event_from",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
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
                name="referral_event_to",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_referral_events_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_events")),
    )
    op.create_index("ix_referral_events_referral", "referral_events", ["referral_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_referral_events_referral", table_name="referral_events")
    op.drop_table("referral_events")
    op.drop_index(op.f("ix_attribution_conflicts_status"), table_name="attribution_conflicts")
    op.drop_index("ix_attribution_conflicts_created_at_id", table_name="attribution_conflicts")
    op.drop_table("attribution_conflicts")
    op.drop_index(
        "uq_referrals_identity_holder",
        table_name="referrals",
        postgresql_where=sa.text("status IN ('eligible', 'account_opened', 'funded', 'converted')"),
    )
    op.drop_index(op.f("ix_referrals_status"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_program_id"), table_name="referrals")
    op.drop_index("ix_referrals_partner_created", table_name="referrals")
    op.drop_index("ix_referrals_mobile_hash", table_name="referrals")
    op.drop_index("ix_referrals_identity_hash", table_name="referrals")
    op.drop_index(
        "ix_referrals_eligible_window", table_name="referrals", postgresql_where=sa.text("status = 'eligible'")
    )
    op.drop_index("ix_referrals_created_at_id", table_name="referrals")
    op.drop_index(op.f("ix_referrals_client_ref"), table_name="referrals")
    op.drop_table("referrals")
    op.drop_table("existing_clients")
    op.drop_index("uq_data_keys_one_active", table_name="data_keys", postgresql_where=sa.text("active"))
    op.drop_table("data_keys")
