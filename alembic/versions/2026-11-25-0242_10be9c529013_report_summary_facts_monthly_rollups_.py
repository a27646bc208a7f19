"""report summary: facts, monthly rollups, change queue

The summary tables of ``app/reports/models.py``, and the triggers that queue, in the writer's own transaction, the
referral or client account each write touches (statement-level, with transition tables: one ``INSERT … SELECT``
per statement, whatever the number of rows).

Three tables carry every change a referral's facts depend on: ``referrals`` (status, dates), ``client_accounts``
(opening, funding, tier, assets) and ``fee_accruals`` (amounts and statuses). ``referral_events`` and
``conversion_events`` need no trigger of their own: a status change is always written on the referral as well, and
the lifecycle stamps the account with every event it applies (a revenue or a purchase included); a trigger there
would queue the same referral again, for about 35 us per statement on the conversion feed's hot path. The
brute-force recount in ``tests/reports`` drives every kind of event through the real services to hold this true.

What exists already is queued here and folded into the summary by the first refresh; reports are exact meanwhile,
they correct for the queue.

Revision ID: 10be9c529013
Revises: 4c4e07c75e16
Create Date: 2026-11-25 02:42:57.561279+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "10be9c529013"
down_revision: str | None = "4c4e07c75e16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (table, the function that queues what a statement on it touched)
QUEUED = (
    ("referrals", "report_queue_referrals"),
    ("client_accounts", "report_queue_accounts"),
    ("fee_accruals", "report_queue_fee_lines"),
)
FUNCTIONS = {
    "report_queue_referrals": "INSERT INTO report_changes (referral_id) SELECT id FROM changed;",
    "report_queue_fee_lines": (
        "INSERT INTO report_changes (referral_id) "
        "SELECT DISTINCT referral_id FROM changed WHERE referral_id IS NOT NULL;"
    ),
    "report_queue_accounts": "INSERT INTO report_changes (referral_id, client_ref) SELECT referral_id, client_ref FROM changed;",
}


def upgrade() -> None:
    op.create_table(
        "report_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("client_ref", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_changes")),
    )
    op.create_table(
        "report_cohorts",
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("existing_client", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("account_opened", sa.Integer(), nullable=False),
        sa.Column("funded", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_pending_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_statemented_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("received_age_under_25", sa.Integer(), nullable=False),
        sa.Column("received_age_25_35", sa.Integer(), nullable=False),
        sa.Column("received_age_36_45", sa.Integer(), nullable=False),
        sa.Column("received_age_46_55", sa.Integer(), nullable=False),
        sa.Column("received_age_over_55", sa.Integer(), nullable=False),
        sa.Column("received_age_none", sa.Integer(), nullable=False),
        sa.Column("converted_age_under_25", sa.Integer(), nullable=False),
        sa.Column("converted_age_25_35", sa.Integer(), nullable=False),
        sa.Column("converted_age_36_45", sa.Integer(), nullable=False),
        sa.Column("converted_age_46_55", sa.Integer(), nullable=False),
        sa.Column("converted_age_over_55", sa.Integer(), nullable=False),
        sa.Column("converted_age_none", sa.Integer(), nullable=False),
        sa.Column("converted_retail", sa.Integer(), nullable=False),
        sa.Column("converted_hnw", sa.Integer(), nullable=False),
        sa.Column("converted_institutional", sa.Integer(), nullable=False),
        sa.Column("converted_unknown", sa.Integer(), nullable=False),
        sa.Column("funded_retail", sa.Integer(), nullable=False),
        sa.Column("funded_hnw", sa.Integer(), nullable=False),
        sa.Column("funded_institutional", sa.Integer(), nullable=False),
        sa.Column("funded_unknown", sa.Integer(), nullable=False),
        sa.Column("assets_retail_fen", sa.BigInteger(), nullable=False),
        sa.Column("assets_hnw_fen", sa.BigInteger(), nullable=False),
        sa.Column("assets_institutional_fen", sa.BigInteger(), nullable=False),
        sa.Column("cohort_month", sa.Date(), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("product_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint(
            "cohort_month", "partner_id", "program_id", "kind", "tier", "product_code", name=op.f("pk_report_cohorts")
        ),
    )
    op.create_index(
        "ix_report_cohorts_empty",
        "report_cohorts",
        ["cohort_month"],
        unique=False,
        postgresql_where=sa.text("received = 0"),
    )
    op.create_table(
        "report_duration_series",
        sa.Column("cohort_month", sa.Date(), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("days", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("referrals", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.PrimaryKeyConstraint("cohort_month", "partner_id", "stage", name=op.f("pk_report_duration_series")),
    )
    op.create_table(
        "report_durations",
        sa.Column("cohort_month", sa.Date(), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("product_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("referrals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "cohort_month",
            "partner_id",
            "program_id",
            "kind",
            "tier",
            "product_code",
            "stage",
            "days",
            name=op.f("pk_report_durations"),
        ),
    )
    op.create_index(
        "ix_report_durations_empty",
        "report_durations",
        ["cohort_month"],
        unique=False,
        postgresql_where=sa.text("referrals = 0"),
    )
    op.create_table(
        "report_organic",
        sa.Column("opened_month", sa.Date(), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("opened_month", "tier", name=op.f("pk_report_organic")),
    )
    op.create_index(
        "ix_report_organic_empty",
        "report_organic",
        ["opened_month"],
        unique=False,
        postgresql_where=sa.text("accounts = 0"),
    )
    op.create_table(
        "report_organic_accounts",
        sa.Column("client_ref", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("opened_month", sa.Date(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_ref", name=op.f("pk_report_organic_accounts")),
    )
    op.create_index("ix_report_organic_accounts_opened_on", "report_organic_accounts", ["opened_on"], unique=False)
    op.create_table(
        "report_partner_months",
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("existing_client", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("account_opened", sa.Integer(), nullable=False),
        sa.Column("funded", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_pending_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_statemented_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("received_age_under_25", sa.Integer(), nullable=False),
        sa.Column("received_age_25_35", sa.Integer(), nullable=False),
        sa.Column("received_age_36_45", sa.Integer(), nullable=False),
        sa.Column("received_age_46_55", sa.Integer(), nullable=False),
        sa.Column("received_age_over_55", sa.Integer(), nullable=False),
        sa.Column("received_age_none", sa.Integer(), nullable=False),
        sa.Column("converted_age_under_25", sa.Integer(), nullable=False),
        sa.Column("converted_age_25_35", sa.Integer(), nullable=False),
        sa.Column("converted_age_36_45", sa.Integer(), nullable=False),
        sa.Column("converted_age_46_55", sa.Integer(), nullable=False),
        sa.Column("converted_age_over_55", sa.Integer(), nullable=False),
        sa.Column("converted_age_none", sa.Integer(), nullable=False),
        sa.Column("converted_retail", sa.Integer(), nullable=False),
        sa.Column("converted_hnw", sa.Integer(), nullable=False),
        sa.Column("converted_institutional", sa.Integer(), nullable=False),
        sa.Column("converted_unknown", sa.Integer(), nullable=False),
        sa.Column("funded_retail", sa.Integer(), nullable=False),
        sa.Column("funded_hnw", sa.Integer(), nullable=False),
        sa.Column("funded_institutional", sa.Integer(), nullable=False),
        sa.Column("funded_unknown", sa.Integer(), nullable=False),
        sa.Column("assets_retail_fen", sa.BigInteger(), nullable=False),
        sa.Column("assets_hnw_fen", sa.BigInteger(), nullable=False),
        sa.Column("assets_institutional_fen", sa.BigInteger(), nullable=False),
        sa.Column("cohort_month", sa.Date(), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint("cohort_month", "partner_id", name=op.f("pk_report_partner_months")),
    )
    op.create_table(
        "report_referral_facts",
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("program_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("cohort_month", sa.Date(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("age_band", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reached_eligible", sa.Boolean(), nullable=False),
        sa.Column("reached_opened", sa.Boolean(), nullable=False),
        sa.Column("reached_funded", sa.Boolean(), nullable=False),
        sa.Column("reached_converted", sa.Boolean(), nullable=False),
        sa.Column("days_to_open", sa.Integer(), nullable=True),
        sa.Column("days_to_fund", sa.Integer(), nullable=True),
        sa.Column("days_to_convert", sa.Integer(), nullable=True),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("product_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("assets_fen", sa.BigInteger(), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_pending_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_statemented_fen", sa.BigInteger(), nullable=False),
        sa.Column("fees_paid_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_report_referral_facts")),
    )
    op.create_index("ix_report_referral_facts_received_on", "report_referral_facts", ["received_on"], unique=False)

    for name, body in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$")
    # A trigger with transition tables fires on one event only: one for INSERT, one for UPDATE.
    for table, function in QUEUED:
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER report_queue_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    op.execute("INSERT INTO report_changes (referral_id) SELECT id FROM referrals ORDER BY created_at, id")
    op.execute(
        "INSERT INTO report_changes (client_ref) SELECT client_ref FROM client_accounts WHERE referral_id IS NULL"
    )


def downgrade() -> None:
    for table, _ in QUEUED:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER report_queue_{event} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_report_referral_facts_received_on", table_name="report_referral_facts")
    op.drop_table("report_referral_facts")
    op.drop_table("report_partner_months")
    op.drop_index("ix_report_organic_accounts_opened_on", table_name="report_organic_accounts")
    op.drop_table("report_organic_accounts")
    op.drop_index("ix_report_organic_empty", table_name="report_organic", postgresql_where=sa.text("accounts = 0"))
    op.drop_table("report_organic")
    op.drop_index("ix_report_durations_empty", table_name="report_durations", postgresql_where=sa.text("referrals = 0"))
    op.drop_table("report_durations")
    op.drop_table("report_duration_series")
    op.drop_index("ix_report_cohorts_empty", table_name="report_cohorts", postgresql_where=sa.text("received = 0"))
    op.drop_table("report_cohorts")
    op.drop_table("report_changes")
