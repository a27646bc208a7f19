"""fee rule attribution_moved

``fee_accruals.rule`` accepts ``attribution_moved``: the line reversing one of a referral's fee lines when an
alliance manager moves its attribution to another partner's referral (DESIGN.md, "Attribution override after
conversion"). The rule is a string column with a check constraint: the constraint is replaced.

Revision ID: 9f4fd152ce4d
Revises: 7943117c95ab
Create Date: 2026-12-03 14:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9f4fd152ce4d"
down_revision: str | None = "7943117c95ab"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("funded_bounty", "tier_top_up", "bundle_fee", "revenue_share", "cap", "clawback", "adjustment")
_AFTER = (*_BEFORE, "attribution_moved")


def _allow(rules: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_fee_accruals_fee_rule"), "fee_accruals", type_="check")
    allowed = ", ".join(f"'{rule}'" for rule in rules)
    op.create_check_constraint(op.f("ck_fee_accruals_fee_rule"), "fee_accruals", f"rule IN ({allowed})")


def upgrade() -> None:
    _allow(_AFTER)


def downgrade() -> None:
    # The ledger is append-only: refuse rather than drop money history.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM fee_accruals WHERE rule = 'attribution_moved') THEN "
        "RAISE EXCEPTION 'fee_accruals holds attribution_moved lines: the ledger cannot lose them'; END IF; END $$"
    )
    _allow(_BEFORE)
