"""risk cases and fee review holds

Risk cases for alliance managers (DESIGN.md, "Risk"): the case (one open per partner, by a partial unique
index), its signals (unique by fingerprint), the referrals it names and its timeline; the fees domain's holds
of referrals under review (``fee_review_holds``); and ``fee_accruals.rule`` accepts ``risk_confirmed``, the line
reversing a fee line of a referral a case confirmed (the rule's check constraint is replaced).

Revision ID: r1sk0cases01
Revises: r19a7e1ea5e0
Create Date: 2026-12-03 20:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "r1sk0cases01"
down_revision: str | None = "r19a7e1ea5e0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RULES_BEFORE = (
    "funded_bounty",
    "tier_top_up",
    "bundle_fee",
    "revenue_share",
    "cap",
    "clawback",
    "adjustment",
    "attribution_moved",
)
_RULES_AFTER = (*_RULES_BEFORE, "risk_confirmed")


def _allow(rules: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_fee_accruals_fee_rule"), "fee_accruals", type_="check")
    allowed = ", ".join(f"'{rule}'" for rule in rules)
    op.create_check_constraint(op.f("ck_fee_accruals_fee_rule"), "fee_accruals", f"rule IN ({allowed})")


def upgrade() -> None:
    _allow(_RULES_AFTER)
    op.create_table(
        "risk_cases",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="risk_case_status", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "cleared", "confirmed", name="risk_case_outcome", native_enum=False, create_constraint=True, length=32
            ),
            nullable=True,
        ),
        sa.Column("assignee_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_risk_cases_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_cases")),
    )
    op.create_index("ix_risk_cases_created_at_id", "risk_cases", ["created_at", "id"], unique=False)
    op.create_index(op.f("ix_risk_cases_partner_id"), "risk_cases", ["partner_id"], unique=False)
    op.create_index("ix_risk_cases_status_assignee", "risk_cases", ["status", "assignee_id"], unique=False)
    op.create_index(
        "uq_risk_cases_open_partner",
        "risk_cases",
        ["partner_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "risk_case_events",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "opened",
                "signal_added",
                "assigned",
                "note",
                "closed",
                name="risk_case_event_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["risk_cases.id"], name=op.f("fk_risk_case_events_case_id_risk_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_case_events")),
    )
    op.create_index("ix_risk_case_events_case_seq", "risk_case_events", ["case_id", "seq"], unique=False)
    op.create_table(
        "risk_signals",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "shared_mobile",
                "referral_burst",
                "reused_consent",
                "funded_then_emptied",
                "bundle_churn",
                "outlier_rates",
                name="risk_signal_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("referral_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["risk_cases.id"], name=op.f("fk_risk_signals_case_id_risk_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_signals")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_risk_signals_fingerprint")),
    )
    op.create_index(op.f("ix_risk_signals_case_id"), "risk_signals", ["case_id"], unique=False)
    op.create_table(
        "fee_review_holds",
        sa.Column("review_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_fee_review_holds_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("review_id", "referral_id", name=op.f("pk_fee_review_holds")),
    )
    op.create_index(
        "ix_fee_review_holds_open",
        "fee_review_holds",
        ["referral_id"],
        unique=False,
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_table(
        "risk_case_referrals",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["risk_cases.id"], name=op.f("fk_risk_case_referrals_case_id_risk_cases")),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_risk_case_referrals_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("case_id", "referral_id", name=op.f("pk_risk_case_referrals")),
    )
    op.create_index(op.f("ix_risk_case_referrals_referral_id"), "risk_case_referrals", ["referral_id"], unique=False)


def downgrade() -> None:
    # The ledger is append-only: refuse rather than drop money history.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM fee_accruals WHERE rule = 'risk_confirmed') THEN "
        "RAISE EXCEPTION 'fee_accruals holds risk_confirmed lines: the ledger cannot lose them'; END IF; END $$"
    )
    _allow(_RULES_BEFORE)
    op.drop_index(op.f("ix_risk_case_referrals_referral_id"), table_name="risk_case_referrals")
    op.drop_table("risk_case_referrals")
    op.drop_index(
        "ix_fee_review_holds_open", table_name="fee_review_holds", postgresql_where=sa.text("released_at IS NULL")
    )
    op.drop_table("fee_review_holds")
    op.drop_index(op.f("ix_risk_signals_case_id"), table_name="risk_signals")
    op.drop_table("risk_signals")
    op.drop_index("ix_risk_case_events_case_seq", table_name="risk_case_events")
    op.drop_table("risk_case_events")
    op.drop_index("uq_risk_cases_open_partner", table_name="risk_cases", postgresql_where=sa.text("status = 'open'"))
    op.drop_index("ix_risk_cases_status_assignee", table_name="risk_cases")
    op.drop_index(op.f("ix_risk_cases_partner_id"), table_name="risk_cases")
    op.drop_index("ix_risk_cases_created_at_id", table_name="risk_cases")
    op.drop_table("risk_cases")
