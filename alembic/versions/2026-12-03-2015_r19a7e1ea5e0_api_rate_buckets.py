"""api rate buckets shared by every API process

One row per client: the tokens left in its bucket and when they were last refilled. Each API process leases
tokens from it in chunks (``app/auth/rate_leases.py``), so that a client's rate limit holds across processes
while costing a round trip only every few calls. UNLOGGED: after a crash the buckets start full again.

Revision ID: r19a7e1ea5e0
Revises: h19d3e7a4c20
Create Date: 2026-12-03 20:15:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r19a7e1ea5e0"
down_revision: str | None = "h19d3e7a4c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_rate_buckets",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("granted", sa.Double(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_api_rate_buckets")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("api_rate_buckets")
