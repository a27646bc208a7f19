"""statement issued_by, approved_by, paid_by

Four eyes (DESIGN.md, "People"): a statement remembers who issued, approved and paid it (the audit actor id: an
API client's id, or ``person:<username>``), so that the approver is never the issuer and the payer never the
approver. Statements issued before this revision have no issuer on record: the rule cannot see one there.

Revision ID: i18fin4e7c01
Revises: pe0a1c5e1d01
Create Date: 2026-12-03 17:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "i18fin4e7c01"
down_revision: str | None = "pe0a1c5e1d01"  # after the people domain (merged from i18-people)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("issued_by", "approved_by", "paid_by")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("statements", sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))


def downgrade() -> None:
    for name in reversed(_COLUMNS):
        op.drop_column("statements", name)
