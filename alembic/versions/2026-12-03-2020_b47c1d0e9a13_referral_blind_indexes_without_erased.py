"""referral blind indexes without the erased rows; no client_ref index

The two lookup indexes on the blind indexes of ``referrals`` (``ix_referrals_identity_hash`` and
``ix_referrals_mobile_hash``) serve equality searches only (staff search by ID number, credit code or mobile;
``docs/indexes.md``), which never match a NULL. Erasure empties both columns of every unconverted referral after
the retention period, which over the years is most referrals; enterprises may have no contact mobile. The indexes
become partial (``IS NOT NULL``): erased rows leave them instead of piling up as NULL entries. The unique index of
identity holders (``uq_referrals_identity_holder``) is unchanged.

``ix_referrals_client_ref`` goes: no query reads referrals by their client account (an account points to its
referral, ``client_accounts.referral_id``, and is read by that), and every account opening wrote into it.

Rebuilding them locks writes to ``referrals`` for the time of the build.

Revision ID: b47c1d0e9a13
Revises: f19ca9a5e001
Create Date: 2026-12-03 20:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b47c1d0e9a13"
down_revision: str | None = "f19ca9a5e001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BLIND_INDEXES = (("ix_referrals_identity_hash", "identity_hash"), ("ix_referrals_mobile_hash", "mobile_hash"))


def upgrade() -> None:
    for name, column in _BLIND_INDEXES:
        op.drop_index(name, table_name="referrals")
        op.create_index(name, "referrals", [column], postgresql_where=sa.text(f"{column} IS NOT NULL"))
    op.drop_index("ix_referrals_client_ref", table_name="referrals")


def downgrade() -> None:
    op.create_index(
        "ix_referrals_client_ref", "referrals", ["client_ref"], postgresql_where=sa.text("client_ref IS NOT NULL")
    )
    for name, column in _BLIND_INDEXES:
        op.drop_index(name, table_name="referrals")
        op.create_index(name, "referrals", [column])
