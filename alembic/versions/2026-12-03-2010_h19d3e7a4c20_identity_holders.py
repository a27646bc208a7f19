"""identity holders

The referral holding an identity now gets its own table keyed by the identity (``identity_holders``): rule 6 of
attribution (two partners racing for one person, exactly one wins) stays one unique key, and on a cluster one
shard, however ``referrals`` is distributed (by ``partner_id``, docs/scaling.md). The holders of today are moved in
from the referrals that hold their person; the unique index across all partners on ``referrals.identity_hash``,
which a table distributed by partner cannot enforce, is dropped (``ix_referrals_identity_hash`` still serves the
lookups by identity).

Revision ID: h19d3e7a4c20
Revises: b47c1d0e9a13
Create Date: 2026-12-03 20:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "h19d3e7a4c20"
down_revision: str | None = "b47c1d0e9a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDING = "status IN ('eligible', 'account_opened', 'funded', 'converted')"


def upgrade() -> None:
    op.create_table(
        "identity_holders",
        sa.Column("identity_hash", sa.LargeBinary(), nullable=False),
        sa.Column("referral_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("partner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identity_hash", name=op.f("pk_identity_holders")),
    )
    # Held since the last time the referral became eligible (attribution, or a move to it), else its creation.
    op.execute(
        f"""
        INSERT INTO identity_holders (identity_hash, referral_id, partner_id, held_since)
        SELECT r.identity_hash, r.id, r.partner_id,
               COALESCE((SELECT max(e.created_at) FROM referral_events AS e
                         WHERE e.referral_id = r.id AND e.to_status = 'eligible'), r.created_at)
        FROM referrals AS r
        WHERE r.identity_hash IS NOT NULL AND r.{_HOLDING}
        """
    )
    op.drop_index("uq_referrals_identity_holder", table_name="referrals", postgresql_where=sa.text(_HOLDING))


def downgrade() -> None:
    op.create_index(
        "uq_referrals_identity_holder",
        "referrals",
        ["identity_hash"],
        unique=True,
        postgresql_where=sa.text(_HOLDING),
    )
    op.drop_table("identity_holders")
