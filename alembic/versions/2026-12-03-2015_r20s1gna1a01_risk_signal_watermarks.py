"""risk signal watermarks

Where the risk signal job last looked, per scope (DESIGN.md, "Risk"; ``app.risk.watermarks``).

Revision ID: r20s1gna1a01
Revises: r1sk0cases01
Create Date: 2026-12-03 20:15:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r20s1gna1a01"
down_revision: str | None = "r1sk0cases01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_signal_watermarks",
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("looked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_risk_signal_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("risk_signal_watermarks")
