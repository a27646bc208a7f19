"""fee_accruals: the statement index without unstatemented lines; the partner index only for due lines

``ix_fee_accruals_statement`` serves ``statement_id = :id`` only (a statement's lines, its totals, its
reconciliation; ``docs/indexes.md``), which never matches a NULL, and every line is written with a NULL statement:
it becomes partial (``statement_id IS NOT NULL``), so the feed's lines no longer enter it until a close attaches
them.

``ix_fee_accruals_partner_status (partner_id, status)`` took every line. The only query that needs a partner's
lines by status is the month close's: its lines payable, not yet on a statement, due before the period ends
(``statements._CREATE_STATEMENTS`` and ``_ATTACH_LINES``). It is replaced by ``ix_fee_accruals_partner_due
(partner_id, hold_until) WHERE status = 'payable' AND statement_id IS NULL``, which a line enters once payable and
leaves when statemented.

Rebuilding them locks writes to ``fee_accruals`` for the time of the build.

Revision ID: f19a1ede9a01
Revises: r20s1gna1a01
Create Date: 2026-12-07 23:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f19a1ede9a01"
down_revision: str | None = "r20s1gna1a01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_fee_accruals_statement", table_name="fee_accruals")
    op.create_index(
        "ix_fee_accruals_statement",
        "fee_accruals",
        ["statement_id"],
        postgresql_where=sa.text("statement_id IS NOT NULL"),
    )
    op.drop_index("ix_fee_accruals_partner_status", table_name="fee_accruals")
    op.create_index(
        "ix_fee_accruals_partner_due",
        "fee_accruals",
        ["partner_id", "hold_until"],
        postgresql_where=sa.text("status = 'payable' AND statement_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_fee_accruals_partner_due", table_name="fee_accruals")
    op.create_index("ix_fee_accruals_partner_status", "fee_accruals", ["partner_id", "status"])
    op.drop_index("ix_fee_accruals_statement", table_name="fee_accruals")
    op.create_index("ix_fee_accruals_statement", "fee_accruals", ["statement_id"])
