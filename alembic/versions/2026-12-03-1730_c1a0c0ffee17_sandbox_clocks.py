"""sandbox clocks

A partner's test clock in a sandbox (DESIGN.md, "Time" and "Sandbox"): no row, the partner follows real time; a
row, its time stands at ``now`` until the clock is advanced again.

Revision ID: c1a0c0ffee17
Revises: i18fin4e7c01
Create Date: 2026-12-03 17:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c1a0c0ffee17"
down_revision: str | None = "i18fin4e7c01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_clocks",
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("now", sa.DateTime(timezone=True), nullable=False),
        sa.Column("advanced_by_s", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_sandbox_clocks_partner_id_partners")),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_sandbox_clocks")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_clocks")
