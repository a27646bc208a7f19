"""report duration series: packed histograms with their own median and p90

``report_duration_series`` kept each partner-month's histogram of days as two integer arrays, which the driver
takes tens of milliseconds to decode for a year of partner-months. It now keeps them packed (``histogram``:
(days, referrals) pairs, days ascending, as big-endian 32-bit integers), with the partner-month's referrals,
median and p90 beside them; the whole alliance's month is kept too, under the partner id ``''``.

The series is derived from ``report_durations``: the upgrade (and the downgrade) recomputes it from there, in the
shape of ``app.reports.summary``.

Revision ID: 4ea01b441832
Revises: 7d04a6decc9e
Create Date: 2026-11-25 04:08:02.481188+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4ea01b441832"
down_revision: str | None = "7d04a6decc9e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The histogram by partner (``{partner}``: d.partner_id, or '' for the alliance), month and stage.
_HISTOGRAM = """
SELECT d.cohort_month, {partner} AS partner_id, d.stage, d.days, CAST(sum(d.referrals) AS int) AS referrals
FROM report_durations d
GROUP BY 1, 2, 3, 4
HAVING sum(d.referrals) <> 0
"""
_PACKED = """
WITH h AS ({histogram}),
percentiles AS (
    SELECT h.cohort_month, h.partner_id, h.stage,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY h.days) AS median_days,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY h.days) AS p90_days
    FROM h CROSS JOIN LATERAL generate_series(1, h.referrals) AS one_each
    GROUP BY h.cohort_month, h.partner_id, h.stage
)
SELECT h.cohort_month, h.partner_id, h.stage,
       string_agg(int4send(h.days) || int4send(h.referrals), ''::bytea ORDER BY h.days) AS histogram,
       CAST(sum(h.referrals) AS int) AS referrals, min(p.median_days) AS median_days, min(p.p90_days) AS p90_days
FROM h JOIN percentiles p USING (cohort_month, partner_id, stage)
GROUP BY h.cohort_month, h.partner_id, h.stage
"""
_ARRAYS = """
SELECT h.cohort_month, h.partner_id, h.stage,
       array_agg(h.days ORDER BY h.days) AS days, array_agg(h.referrals ORDER BY h.days) AS referrals
FROM ({histogram}) h
GROUP BY h.cohort_month, h.partner_id, h.stage
"""


def upgrade() -> None:
    op.execute("DELETE FROM report_duration_series")
    op.drop_column("report_duration_series", "days")
    op.drop_column("report_duration_series", "referrals")
    op.add_column("report_duration_series", sa.Column("histogram", sa.LargeBinary(), nullable=False))
    op.add_column("report_duration_series", sa.Column("referrals", sa.Integer(), nullable=False))
    op.add_column("report_duration_series", sa.Column("median_days", sa.Float(), nullable=False))
    op.add_column("report_duration_series", sa.Column("p90_days", sa.Float(), nullable=False))
    for partner in ("d.partner_id", "''"):
        op.execute(
            "INSERT INTO report_duration_series (cohort_month, partner_id, stage, histogram, referrals, median_days, "
            "p90_days) " + _PACKED.format(histogram=_HISTOGRAM.format(partner=partner))
        )


def downgrade() -> None:
    op.execute("DELETE FROM report_duration_series")
    op.drop_column("report_duration_series", "p90_days")
    op.drop_column("report_duration_series", "median_days")
    op.drop_column("report_duration_series", "referrals")
    op.drop_column("report_duration_series", "histogram")
    op.add_column("report_duration_series", sa.Column("days", postgresql.ARRAY(sa.Integer()), nullable=False))
    op.add_column("report_duration_series", sa.Column("referrals", postgresql.ARRAY(sa.Integer()), nullable=False))
    op.execute(
        "INSERT INTO report_duration_series (cohort_month, partner_id, stage, days, referrals) "
        + _ARRAYS.format(histogram=_HISTOGRAM.format(partner="d.partner_id"))
    )
