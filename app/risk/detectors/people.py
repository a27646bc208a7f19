"""Signals about who is referred: one mobile number on several identities, one consent record on many clients."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.risk.detectors import Detected, Window, digest


def _shared_mobile_sql(window: Window) -> sa.TextClause:
    return sa.text(
        f"""
        WITH touched AS (
            SELECT DISTINCT mobile_hash FROM referrals
            WHERE created_at > :since AND created_at <= :now AND mobile_hash IS NOT NULL
              AND {window.partners.sql("partner_id")}
        ),
        sharing AS (
            SELECT r.mobile_hash FROM referrals AS r JOIN touched AS t ON t.mobile_hash = r.mobile_hash
            WHERE r.created_at > :lookback_start AND r.created_at <= :now AND r.identity_hash IS NOT NULL
            GROUP BY r.mobile_hash HAVING count(DISTINCT r.identity_hash) >= :threshold
        )
        SELECT s.mobile_hash, r.partner_id, array_agg(r.id ORDER BY r.created_at, r.id) AS referral_ids,
               count(DISTINCT r.identity_hash) AS partner_identities,
               max(overall.identities) AS identities, max(overall.partners) AS partners
        FROM sharing AS s
        JOIN referrals AS r ON r.mobile_hash = s.mobile_hash
             AND r.created_at > :lookback_start AND r.created_at <= :now AND r.identity_hash IS NOT NULL
        JOIN LATERAL (
            SELECT count(DISTINCT o.identity_hash) AS identities, count(DISTINCT o.partner_id) AS partners
            FROM referrals AS o
            WHERE o.mobile_hash = s.mobile_hash AND o.created_at > :lookback_start AND o.created_at <= :now
              AND o.identity_hash IS NOT NULL
        ) AS overall ON true
        WHERE {window.partners.sql("r.partner_id")}
        GROUP BY s.mobile_hash, r.partner_id
        """
    )


async def shared_mobile(session: AsyncSession, window: Window) -> list[Detected]:
    """One mobile number on ``risk_shared_mobile_identities`` identities or more, within a partner or across
    partners: one signal per partner involved, naming its own referrals of that number."""
    threshold = window.settings.risk_shared_mobile_identities
    rows = (await session.execute(_shared_mobile_sql(window), window.params(threshold=threshold))).all()
    found = []
    for row in rows:
        number = digest("mobile", row.mobile_hash)  # correlates the partners' cases; not the number, nor its index
        found.append(
            Detected(
                kind="shared_mobile",
                partner_id=row.partner_id,
                referral_ids=tuple(row.referral_ids),
                evidence={
                    "thresholds": {
                        "identities_per_mobile": threshold,
                        "lookback_days": window.settings.risk_lookback_days,
                    },
                    "observed": {
                        "scope": "within_partner" if row.partner_identities >= threshold else "across_partners",
                        "identities": row.identities,
                        "identities_at_partner": row.partner_identities,
                        "partners": row.partners,
                    },
                    "items": [f"mobile:{number}"],
                },
                # With its size: a number that gains identities is a new signal naming them all.
                fingerprint=f"shared_mobile:{row.partner_id}:{number}:{row.identities}",
            )
        )
    return found


def _reused_consent_sql(window: Window) -> sa.TextClause:
    # The record reference, or the notice hash with the capture second (seconds from the epoch: the same instant
    # whatever offset it was written with).
    keys = """
        SELECT partner_id, identity_hash, id, created_at, 'evidence_ref' AS basis, consent->>'evidence_ref' AS evidence
        FROM referrals AS r WHERE {where}
        UNION ALL
        SELECT partner_id, identity_hash, id, created_at, 'notice_second',
               (consent->>'notice_sha256') || '@' ||
               floor(extract(epoch FROM CAST(consent->>'captured_at' AS timestamptz)))::bigint
        FROM referrals AS r WHERE {where}
    """
    recent = (
        f"consent IS NOT NULL AND created_at > :since AND created_at <= :now AND {window.partners.sql('partner_id')}"
    )
    judged = "consent IS NOT NULL AND created_at > :lookback_start AND created_at <= :now AND identity_hash IS NOT NULL"
    return sa.text(
        f"""
        WITH touched AS (SELECT DISTINCT partner_id, basis, evidence FROM ({keys.format(where=recent)}) AS k),
        judged AS (
            SELECT k.* FROM ({keys.format(where=judged + " AND partner_id IN (SELECT partner_id FROM touched)")}) AS k
            JOIN touched AS t USING (partner_id, basis, evidence)
        )
        SELECT partner_id, basis, evidence, count(DISTINCT identity_hash) AS clients,
               array_agg(id ORDER BY created_at, id) AS referral_ids
        FROM judged GROUP BY partner_id, basis, evidence HAVING count(DISTINCT identity_hash) >= :threshold
        """
    )


async def reused_consent(session: AsyncSession, window: Window) -> list[Detected]:
    """The same consent evidence on ``risk_reused_consent_clients`` clients or more of one partner: one signal per
    partner and record (a record found by both its reference and its notice second is one signal)."""
    threshold = window.settings.risk_reused_consent_clients
    rows = (await session.execute(_reused_consent_sql(window), window.params(threshold=threshold))).all()
    by_group: dict[tuple[str, tuple[str, ...]], list[tuple[str, str, int]]] = defaultdict(list)
    for row in rows:
        by_group[(row.partner_id, tuple(row.referral_ids))].append((row.basis, row.evidence, row.clients))
    found = []
    for (partner_id, referral_ids), bases in by_group.items():
        first = sorted(bases)[0]
        evidence_key = digest("consent", partner_id, first[0], first[1])
        found.append(
            Detected(
                kind="reused_consent",
                partner_id=partner_id,
                referral_ids=referral_ids,
                evidence={
                    "thresholds": {
                        "clients_per_consent": threshold,
                        "lookback_days": window.settings.risk_lookback_days,
                    },
                    "observed": {
                        "matched_on": sorted(basis for basis, _, _ in bases),
                        "clients": max(clients for _, _, clients in bases),
                    },
                    "items": [f"consent:{evidence_key}"],
                },
                fingerprint=f"reused_consent:{partner_id}:{evidence_key}:{len(referral_ids)}",
            )
        )
    return found
