"""Signals about what the referred clients do with their money inside the periods fees wait on: accounts funded
then emptied or closed inside the hold period, bundles bought then cancelled inside the cooling-off period."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import month_of
from app.risk.detectors import Detected, Window, rate_bp

# The partners with conversion events that arrived in the window (through the referral the event belongs to).
_TOUCHED = """
    touched AS (
        SELECT DISTINCT r.partner_id FROM conversion_events AS e JOIN referrals AS r ON r.id = e.referral_id
        WHERE e.created_at > :since AND e.created_at <= :now AND e.type IN ({types})
          AND {partners}
    )"""


def _emptied_sql(window: Window) -> sa.TextClause:
    touched = _TOUCHED.format(
        types="'account_funded', 'assets_snapshot', 'account_closed'", partners=window.partners.sql("r.partner_id")
    )
    return sa.text(
        f"""
        WITH {touched},
        funded AS (
            SELECT DISTINCT ON (e.client_ref) e.client_ref, r.partner_id, r.id AS referral_id, e.occurred_at,
                   e.amount_fen, e.occurred_at + make_interval(days => p.hold_period_days) AS hold_ends_at
            FROM referrals AS r JOIN touched USING (partner_id)
            JOIN conversion_events AS e ON e.referral_id = r.id
            JOIN programs AS p ON p.id = r.program_id
            WHERE e.type = 'account_funded' AND e.occurred_at > :lookback_start AND e.occurred_at <= :now
              AND e.amount_fen > 0
            ORDER BY e.client_ref, e.occurred_at
        ),
        emptied AS (
            SELECT f.partner_id, f.referral_id,
                   bool_or(x.type = 'account_closed') AS closed
            FROM funded AS f JOIN conversion_events AS x ON x.client_ref = f.client_ref
                 AND x.occurred_at >= f.occurred_at AND x.occurred_at < f.hold_ends_at
            WHERE x.type = 'account_closed'
               OR (x.type = 'assets_snapshot' AND x.amount_fen * 10000 <= f.amount_fen * :below_bp)
            GROUP BY f.partner_id, f.referral_id
        )
        SELECT f.partner_id, count(*) AS funded, count(e.referral_id) AS emptied,
               count(*) FILTER (WHERE e.closed) AS closed,
               array_agg(e.referral_id ORDER BY e.referral_id) FILTER (WHERE e.referral_id IS NOT NULL) AS referral_ids,
               min(f.occurred_at) FILTER (WHERE e.referral_id IS NOT NULL) AS first_at
        FROM funded AS f LEFT JOIN emptied AS e USING (partner_id, referral_id)
        GROUP BY f.partner_id
        HAVING count(e.referral_id) >= :min_accounts AND count(e.referral_id) * 10000 >= :min_rate_bp * count(*)
        """
    )


async def funded_then_emptied(session: AsyncSession, window: Window) -> list[Detected]:
    """A partner's referred accounts emptied (assets at or below ``risk_emptied_below_bp`` of the amount funded)
    or closed inside the hold period after funding: at least ``risk_emptied_accounts`` of them and at least
    ``risk_emptied_rate_bp`` of its accounts funded in the lookback."""
    settings = window.settings
    params = window.params(
        below_bp=settings.risk_emptied_below_bp,
        min_accounts=settings.risk_emptied_accounts,
        min_rate_bp=settings.risk_emptied_rate_bp,
    )
    # Named by the month of the pattern's first funding and its size: the same ring found week after week is one
    # signal, and a ring that grew is another one, which names (and holds) the newcomers too.
    return [
        Detected(
            kind="funded_then_emptied",
            partner_id=row.partner_id,
            referral_ids=tuple(row.referral_ids),
            evidence={
                "thresholds": {
                    "accounts": settings.risk_emptied_accounts,
                    "rate_bp": settings.risk_emptied_rate_bp,
                    "emptied_below_bp": settings.risk_emptied_below_bp,
                    "lookback_days": settings.risk_lookback_days,
                },
                "observed": {
                    "accounts_funded": row.funded,
                    "accounts_emptied_or_closed": row.emptied,
                    "accounts_closed": row.closed,
                    "rate_bp": rate_bp(row.emptied, row.funded),
                },
            },
            fingerprint=f"funded_then_emptied:{row.partner_id}:{month_of(row.first_at).name}:{row.emptied}",
        )
        for row in (await session.execute(_emptied_sql(window), params)).all()
    ]


def _churn_sql(window: Window) -> sa.TextClause:
    touched = _TOUCHED.format(
        types="'bundle_purchased', 'bundle_cancelled'", partners=window.partners.sql("r.partner_id")
    )
    return sa.text(
        f"""
        WITH {touched},
        purchased AS (
            SELECT e.id, e.client_ref, e.product_code, e.occurred_at, r.partner_id, r.id AS referral_id
            FROM referrals AS r JOIN touched USING (partner_id)
            JOIN conversion_events AS e ON e.referral_id = r.id
            WHERE e.type = 'bundle_purchased' AND e.occurred_at > :lookback_start AND e.occurred_at <= :now
        ),
        churned AS (
            SELECT p.id FROM purchased AS p
            WHERE EXISTS (
                SELECT 1 FROM conversion_events AS c
                WHERE c.client_ref = p.client_ref AND c.type = 'bundle_cancelled'
                  AND c.product_code IS NOT DISTINCT FROM p.product_code
                  AND c.occurred_at >= p.occurred_at AND c.occurred_at < p.occurred_at + :cooling_off
            )
        )
        SELECT p.partner_id, count(*) AS purchased, count(c.id) AS cancelled,
               array_agg(DISTINCT p.referral_id) FILTER (WHERE c.id IS NOT NULL) AS referral_ids,
               min(p.occurred_at) FILTER (WHERE c.id IS NOT NULL) AS first_at
        FROM purchased AS p LEFT JOIN churned AS c USING (id)
        GROUP BY p.partner_id
        HAVING count(c.id) >= :min_count AND count(c.id) * 10000 >= :min_rate_bp * count(*)
        """
    )


async def bundle_churn(session: AsyncSession, window: Window) -> list[Detected]:
    """A partner's bundles cancelled within ``risk_cooling_off_days`` of their purchase: at least
    ``risk_bundle_churn_count`` of them and at least ``risk_bundle_churn_rate_bp`` of its purchases in the
    lookback."""
    settings = window.settings
    params = window.params(
        cooling_off=timedelta(days=settings.risk_cooling_off_days),
        min_count=settings.risk_bundle_churn_count,
        min_rate_bp=settings.risk_bundle_churn_rate_bp,
    )
    return [
        Detected(
            kind="bundle_churn",
            partner_id=row.partner_id,
            referral_ids=tuple(sorted(row.referral_ids)),
            evidence={
                "thresholds": {
                    "cooling_off_days": settings.risk_cooling_off_days,
                    "count": settings.risk_bundle_churn_count,
                    "rate_bp": settings.risk_bundle_churn_rate_bp,
                    "lookback_days": settings.risk_lookback_days,
                },
                "observed": {
                    "bundles_purchased": row.purchased,
                    "bundles_cancelled_in_cooling_off": row.cancelled,
                    "rate_bp": rate_bp(row.cancelled, row.purchased),
                },
            },
            fingerprint=f"bundle_churn:{row.partner_id}:{month_of(row.first_at).name}:{row.cancelled}",
        )
        for row in (await session.execute(_churn_sql(window), params)).all()
    ]
