"""conversion events and client accounts; timeline order

Revision ID: 101986cfdbda
Revises: 7fb1e01c65a8
Create Date: 2026-11-25 01:24:15.647073+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "101986cfdbda"
down_revision: str | None = "7fb1e01c65a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("referral_events", sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False))
    op.drop_index("ix_referral_events_referral", table_name="referral_events")
    op.create_index("ix_referral_events_referral_seq", "referral_events", ["referral_id", "seq"], unique=False)
    op.create_table(
        "conversion_events",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("source_event_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "account_opened",
                "account_funded",
                "assets_snapshot",
                "bundle_purchased",
                "bundle_cancelled",
                "revenue_recorded",
                "account_closed",
                name="conversion_event_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ref", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("product_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("identity_hash", sa.LargeBinary(), nullable=True),
        sa.Column("enterprise", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "applied",
                "deferred",
                name="conversion_event_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("organic", sa.Boolean(), nullable=True),
        sa.Column("effects", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "amount_fen IS NULL OR currency IS NOT NULL", name=op.f("ck_conversion_events_amount_has_currency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_events")),
        sa.UniqueConstraint("source_event_id", name=op.f("uq_conversion_events_source_event_id")),
    )
    op.create_index(
        "ix_conversion_events_client_occurred", "conversion_events", ["client_ref", "occurred_at"], unique=False
    )
    op.create_index("ix_conversion_events_created_at_id", "conversion_events", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_conversion_events_deferred",
        "conversion_events",
        ["client_ref"],
        unique=False,
        postgresql_where=sa.text("status = 'deferred'"),
    )
    op.create_index(op.f("ix_conversion_events_referral_id"), "conversion_events", ["referral_id"], unique=False)
    op.create_table(
        "client_accounts",
        sa.Column("client_ref", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "unopened",
                "open",
                "closed",
                name="account_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("identity_hash", sa.LargeBinary(), nullable=True),
        sa.Column("enterprise", sa.Boolean(), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("funded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.Column(
            "tier",
            sa.Enum(
                "retail",
                "hnw",
                "institutional",
                name="client_tier",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_client_accounts_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("client_ref", name=op.f("pk_client_accounts")),
    )
    op.create_index(op.f("ix_client_accounts_identity_hash"), "client_accounts", ["identity_hash"], unique=False)
    op.create_index(op.f("ix_client_accounts_partner_id"), "client_accounts", ["partner_id"], unique=False)
    op.create_index(op.f("ix_client_accounts_referral_id"), "client_accounts", ["referral_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_referral_events_referral_seq", table_name="referral_events")
    op.create_index("ix_referral_events_referral", "referral_events", ["referral_id", "created_at"], unique=False)
    op.drop_column("referral_events", "seq")
    op.drop_index(op.f("ix_client_accounts_referral_id"), table_name="client_accounts")
    op.drop_index(op.f("ix_client_accounts_partner_id"), table_name="client_accounts")
    op.drop_index(op.f("ix_client_accounts_identity_hash"), table_name="client_accounts")
    op.drop_table("client_accounts")
    op.drop_index(op.f("ix_conversion_events_referral_id"), table_name="conversion_events")
    op.drop_index(
        "ix_conversion_events_deferred", table_name="conversion_events", postgresql_where=sa.text("status = 'deferred'")
    )
    op.drop_index("ix_conversion_events_created_at_id", table_name="conversion_events")
    op.drop_index("ix_conversion_events_client_occurred", table_name="conversion_events")
    op.drop_table("conversion_events")
