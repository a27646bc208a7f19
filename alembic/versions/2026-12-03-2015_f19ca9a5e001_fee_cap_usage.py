"""fee cap usage

``fee_cap_usage`` holds what each partner's capped lines use of its monthly cap per business month (the sum of the
lines of the capped rules that are not reversed), so that accrual locks and reads one row per partner and month
instead of taking an advisory lock and summing the ledger (a sum no index serves, whose cost grew with the ledger).
Backfilled from the ledger, in the business timezone of the settings.

Revision ID: f19ca9a5e001
Revises: c19a5e0d7b21
Create Date: 2026-12-03 20:15:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from app.core.business_time import timezone_name

revision: str = "f19ca9a5e001"
down_revision: str | None = "c19a5e0d7b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# app.fees.engine.CAPPED_RULES as of this revision
_CAPPED_RULES = ("funded_bounty", "tier_top_up", "bundle_fee", "revenue_share", "cap", "attribution_moved")


def upgrade() -> None:
    op.create_table(
        "fee_cap_usage",
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("month", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("used_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_fee_cap_usage_partner_id_partners")),
        sa.PrimaryKeyConstraint("partner_id", "month", name=op.f("pk_fee_cap_usage")),
    )
    rules = ", ".join(f"'{rule}'" for rule in _CAPPED_RULES)
    op.execute(
        sa.text(
            f"""
            INSERT INTO fee_cap_usage (partner_id, month, used_fen)
            SELECT partner_id, to_char(occurred_at AT TIME ZONE :zone, 'YYYY-MM'), sum(amount_fen)
            FROM fee_accruals
            WHERE rule IN ({rules}) AND status <> 'reversed'
            GROUP BY 1, 2
            """
        ).bindparams(zone=timezone_name())
    )


def downgrade() -> None:
    op.drop_table("fee_cap_usage")
