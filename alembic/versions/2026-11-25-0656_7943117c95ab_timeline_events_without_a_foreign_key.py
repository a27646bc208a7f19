"""timeline events without a foreign key

``referral_events.referral_id`` loses its foreign key to ``referrals``. Events are written only by
``record_timeline``, in the transaction that creates or changes their referral, and referrals are never deleted
(erasure keeps the row). The check took a key-share lock on the referral row for every event: at intake, two per
referral, about a tenth of the database's work per batch line.

Revision ID: 7943117c95ab
Revises: 4ea01b441832
Create Date: 2026-11-25 06:56:31.602440+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7943117c95ab"
down_revision: str | None = "4ea01b441832"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("fk_referral_events_referral_id_referrals"), "referral_events", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        op.f("fk_referral_events_referral_id_referrals"), "referral_events", "referrals", ["referral_id"], ["id"]
    )
