"""Signals about how much a partner sends: a burst far above its own normal, and a rejection or existing-client
rate far above its peers' in the same business month."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.business_time import business_day
from app.risk.detectors import Detected, Window, rate_bp


def _burst_sql(window: Window) -> sa.TextClause:
    # The baseline is the partner's busiest window of the same length in the previous days (aligned on the
    # recent window's end): a partner that sends a roster once a month has that roster as its normal, where an
    # average would flag every roster.
    return sa.text(
        f"""
        WITH touched AS (
            SELECT DISTINCT partner_id FROM referrals
            WHERE created_at > :since AND created_at <= :now AND {window.partners.sql("partner_id")}
        ),
        recent AS (
            SELECT r.partner_id, count(*) AS referrals, array_agg(r.id ORDER BY r.created_at, r.id) AS referral_ids
            FROM referrals AS r JOIN touched USING (partner_id)
            WHERE r.created_at > :window_start AND r.created_at <= :now
            GROUP BY r.partner_id HAVING count(*) >= :min_referrals
        ),
        baseline AS (
            SELECT r.partner_id, count(*) AS referrals,
                   floor(extract(epoch FROM (:window_start - r.created_at)) / :window_s) AS slot
            FROM referrals AS r JOIN recent USING (partner_id)
            WHERE r.created_at > :baseline_start AND r.created_at <= :window_start
            GROUP BY r.partner_id, slot
        )
        SELECT recent.partner_id, recent.referrals, recent.referral_ids,
               coalesce(max(baseline.referrals), 0) AS busiest,
               CAST(coalesce(sum(baseline.referrals), 0) AS bigint) AS baseline_total
        FROM recent LEFT JOIN baseline USING (partner_id)
        WHERE EXISTS (  -- a full baseline: a new partner's first intake is not a burst
            SELECT 1 FROM referrals AS o WHERE o.partner_id = recent.partner_id AND o.created_at <= :baseline_start
        )
        GROUP BY recent.partner_id, recent.referrals, recent.referral_ids
        HAVING recent.referrals > :factor * coalesce(max(baseline.referrals), 0)
        """
    )


async def referral_burst(session: AsyncSession, window: Window) -> list[Detected]:
    """A partner's referrals in the last ``risk_burst_window_hours``: at least ``risk_burst_min_referrals`` and
    more than ``risk_burst_factor`` times its busiest window of the baseline period."""
    settings = window.settings
    span = timedelta(hours=settings.risk_burst_window_hours)
    window_start = window.now - span
    baseline_start = window_start - timedelta(days=settings.risk_burst_baseline_days)
    params = window.params(
        window_start=window_start,
        baseline_start=baseline_start,
        window_s=span.total_seconds(),
        min_referrals=settings.risk_burst_min_referrals,
        factor=settings.risk_burst_factor,
    )
    rows = (await session.execute(_burst_sql(window), params)).all()
    windows = settings.risk_burst_baseline_days * 24 / settings.risk_burst_window_hours
    return [
        Detected(
            kind="referral_burst",
            partner_id=row.partner_id,
            referral_ids=tuple(row.referral_ids),
            evidence={
                "thresholds": {
                    "window_hours": settings.risk_burst_window_hours,
                    "baseline_days": settings.risk_burst_baseline_days,
                    "factor": settings.risk_burst_factor,
                    "min_referrals": settings.risk_burst_min_referrals,
                },
                "observed": {
                    "referrals_in_window": row.referrals,
                    "baseline_busiest_window": int(row.busiest),
                    "baseline_mean_per_window": round(int(row.baseline_total) / windows, 2),
                },
            },
            fingerprint=f"referral_burst:{row.partner_id}:{business_day(window.now).isoformat()}",
        )
        for row in rows
    ]


def _outlier_sql(window: Window) -> sa.TextClause:
    # A month is judged again when it received referrals since the last look, or when one of its referrals became
    # rejected or an existing client since then: a rejection comes days after the referral (a risk case confirmed),
    # long after its month was last looked at. ``outcome_at`` is when a referral reached its outcome
    # (``ix_referrals_awaiting_erasure``).
    local_month = "date_trunc('month', created_at AT TIME ZONE :tz)"
    return sa.text(
        f"""
        WITH months AS (
            SELECT {local_month} AS starts FROM referrals WHERE created_at > :since AND created_at <= :now
            UNION
            SELECT {local_month} FROM referrals
            WHERE outcome_at > :since AND outcome_at <= :now AND erased_at IS NULL
              AND status IN ('rejected', 'existing_client') AND created_at > :lookback_start
        ),
        counts AS (
            SELECT r.partner_id, to_char(m.starts, 'YYYY-MM') AS month, count(*) AS received,
                   count(*) FILTER (WHERE r.status = 'rejected') AS rejected,
                   count(*) FILTER (WHERE r.status = 'existing_client') AS existing_client,
                   array_agg(r.id ORDER BY r.created_at, r.id) FILTER (WHERE r.status = 'rejected') AS rejected_ids,
                   array_agg(r.id ORDER BY r.created_at, r.id) FILTER (WHERE r.status = 'existing_client')
                       AS existing_client_ids
            FROM months AS m
            JOIN referrals AS r ON r.created_at >= (m.starts AT TIME ZONE :tz)
                 AND r.created_at < ((m.starts + interval '1 month') AT TIME ZONE :tz) AND r.created_at <= :now
            GROUP BY r.partner_id, m.starts
        ),
        pooled AS (
            SELECT month, CAST(sum(received) AS bigint) AS received, CAST(sum(rejected) AS bigint) AS rejected,
                   CAST(sum(existing_client) AS bigint) AS existing_client, count(*) AS partners
            FROM counts GROUP BY month
        )
        SELECT c.partner_id, c.month, c.received, c.rejected, c.existing_client, c.rejected_ids, c.existing_client_ids,
               p.received - c.received AS peer_received, p.rejected - c.rejected AS peer_rejected,
               p.existing_client - c.existing_client AS peer_existing_client, p.partners - 1 AS peers
        FROM counts AS c JOIN pooled AS p USING (month)
        WHERE c.received >= :min_referrals AND p.received - c.received >= :min_referrals
          AND {window.partners.sql("c.partner_id")}
        """
    )


async def outlier_rates(session: AsyncSession, window: Window) -> list[Detected]:
    """In each business month that received referrals, rejections or existing clients since the last look: a partner
    (with at least ``risk_outlier_min_referrals``) whose rejection or existing-client rate is at least
    ``risk_outlier_min_rate_bp`` and ``risk_outlier_factor`` times its peers' pooled rate (the other partners of
    that month)."""
    settings = window.settings
    params = window.params(tz=settings.business_timezone, min_referrals=settings.risk_outlier_min_referrals)
    found = []
    for row in (await session.execute(_outlier_sql(window), params)).all():
        for metric, count, peer_count, referral_ids in (
            ("rejection_rate", row.rejected, row.peer_rejected, row.rejected_ids),
            ("existing_client_rate", row.existing_client, row.peer_existing_client, row.existing_client_ids),
        ):
            rate, peer_rate = rate_bp(count, row.received), rate_bp(peer_count, row.peer_received)
            if rate < settings.risk_outlier_min_rate_bp or rate < settings.risk_outlier_factor * peer_rate:
                continue
            found.append(
                Detected(
                    kind="outlier_rates",
                    partner_id=row.partner_id,
                    referral_ids=tuple(referral_ids or ()),  # the referrals that make the rate
                    evidence={
                        "thresholds": {
                            "factor": settings.risk_outlier_factor,
                            "min_rate_bp": settings.risk_outlier_min_rate_bp,
                            "min_referrals": settings.risk_outlier_min_referrals,
                        },
                        "observed": {
                            "month": row.month,
                            "metric": metric,
                            "received": row.received,
                            "count": count,
                            "rate_bp": rate,
                            "peers": row.peers,
                            "peer_received": row.peer_received,
                            "peer_count": peer_count,
                            "peer_rate_bp": peer_rate,
                        },
                    },
                    fingerprint=f"outlier_rates:{row.partner_id}:{row.month}:{metric}",
                )
            )
    return found
