"""A generated alliance for the report benches, set-based (``INSERT … SELECT generate_series``): a year of
referrals (2025, Asia/Shanghai) with their timelines, the accounts they opened, the back office's events and the
fee lines they earned, plus organic clients.

The same size gives the same rows: every random choice is a hash of the row number (``hashtext``), so two runs,
or two machines, generate one alliance. The shape follows what the service writes: a referral's timeline starts
``received`` then its attribution; 4% are existing clients, 5% duplicates; of the eligible, 45% open an account
within the window (whole days exponential, mean 8), 80% of those fund it (a tier: 70% retail, 23% HNW, 7%
institutional; enterprises are institutional) and 40% of the funded buy their program's bundle (mean 20 days
later); the rest expire or, one in twenty, are withdrawn. Funded referred clients bring four revenue events each;
fee lines (bounty, bundle fee, a tenth of revenue) are paid, on a statement, payable or held according to their
date. 200 partners (half banks, three in ten insurers, the rest corporates) with one or two programs each, larger
partners first.

Triggers are off while generating (``session_replication_role = replica``: a superuser's setting): the summary is
then rebuilt in one pass, as ``app.reports.summary.rebuild`` does after a bulk load.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PARTNERS = 200
YEAR_START, YEAR_END = "2025-01-01", "2025-12-31"
NOW = "2026-01-15 12:00+08"  # the generated alliance's present


def _u(salt: str) -> str:
    """A uniform number in [0, 1) from the row number ``g`` and a salt."""
    return f"((hashtext(g || '/{salt}') & 2147483647) / CAST(2147483648 AS float8))"


def _days(salt: str, mean: float) -> str:
    """Whole days, exponentially distributed."""
    return f"CAST(floor(-ln(1 - {_u(salt)}) * {mean}) AS int)"


CATALOG_SQL = (
    f"""
INSERT INTO partners (id, kind, legal_name, display_name, contacts, vat_rate_bp, vat_inclusive, rate_limit_tier,
                      status, created_at, updated_at)
SELECT 'ptn_r' || p,
       CASE WHEN p % 10 < 5 THEN 'bank' WHEN p % 10 < 8 THEN 'insurer' ELSE 'corporate' END,
       CASE WHEN p % 10 < 5 THEN '联盟银行' WHEN p % 10 < 8 THEN '联盟保险' ELSE '联盟实业' END || p || '号',
       CASE WHEN p % 10 < 5 THEN '联盟银行' WHEN p % 10 < 8 THEN '联盟保险' ELSE '联盟实业' END || p || '号',
       '[]', 600, false, 'standard', 'active', now(), now()
FROM generate_series(0, {PARTNERS - 1}) AS p
""",
    """
INSERT INTO bundled_products (id, code, name, components, allowed_partner_kinds, active, created_at, updated_at)
VALUES ('prd_r_bank', 'BANK_WM_PLUS_EQUITY', '银行理财+权益', '[]', ARRAY['bank'], true, now(), now()),
       ('prd_r_insurer', 'LIFE_PLUS_FUND_SIP', '寿险+基金定投', '[]', ARRAY['insurer'], true, now(), now()),
       ('prd_r_corporate', 'EMPLOYEE_WEALTH_PLAN', '员工专属财富计划', '[]', ARRAY['corporate'], true, now(), now())
""",
    """
INSERT INTO programs (id, partner_id, name, channel, attribution_window_days, qualification_period_days,
                      hold_period_days, clawback_period_days, effective_from, status, created_at, updated_at)
SELECT 'prg_r' || substr(p.id, 6) || '_' || n, p.id, p.display_name || ' 计划' || n,
       CASE p.kind WHEN 'bank' THEN 'vip_referral' WHEN 'insurer' THEN 'insurance_bundle' ELSE 'employee_plan' END,
       90, 90, 30, 180, DATE '2024-01-01', 'active', now(), now()
FROM partners p CROSS JOIN generate_series(0, 1) AS n
WHERE p.id LIKE 'ptn_r%' AND (n = 0 OR substr(p.id, 6)::int % 2 = 1)
""",
    """
INSERT INTO program_products (program_id, product_id)
SELECT pr.id, 'prd_r_' || pa.kind FROM programs pr JOIN partners pa ON pa.id = pr.partner_id
WHERE pr.id LIKE 'prg_r%'
""",
)

# One row per referral: every choice made once, the tables below are derived from it.
PLAN_SQL = f"""
CREATE TEMP TABLE plan ON COMMIT DROP AS
WITH base AS (
    SELECT g,
           CAST(floor(power({_u("partner")}, 1.6) * {PARTNERS}) AS int) AS p,
           timestamptz '{YEAR_START} 00:00+08' + (g - 1) * (interval '365 days' / CAST(:count AS int))
               + CAST(floor({_u("minute")} * 600) AS int) * interval '1 minute' AS received_at,
           {_u("kind")} AS u_kind, {_u("outcome")} AS u_outcome, {_u("open")} AS u_open, {_u("fund")} AS u_fund,
           {_u("convert")} AS u_convert, {_u("tier")} AS u_tier, {_u("assets")} AS u_assets,
           {_u("withdraw")} AS u_withdraw, {_u("program")} AS u_program,
           20 + CAST(floor({_u("age")} * 46) AS int) AS age,
           least(89, {_days("d_open", 8)}) AS d_open, {_days("d_fund", 2)} AS d_fund, {_days("d_convert", 20)} AS d_conv
    FROM generate_series(1, CAST(:count AS int)) AS g
), shaped AS (
    SELECT b.*,
           CASE WHEN b.p % 10 < 5 THEN 'bank' WHEN b.p % 10 < 8 THEN 'insurer' ELSE 'corporate' END AS partner_kind,
           'prg_r' || b.p || '_' || CASE WHEN b.p % 2 = 1 AND b.u_program < 0.4 THEN 1 ELSE 0 END AS program_id,
           CASE WHEN b.u_outcome < 0.04 THEN 'existing_client' WHEN b.u_outcome < 0.09 THEN 'duplicate'
                ELSE 'eligible' END AS attribution
    FROM base b
)
SELECT s.g, 'ref_r' || s.g AS id, 'ptn_r' || s.p AS partner_id, s.program_id, s.partner_kind, s.received_at,
       CASE WHEN s.partner_kind = 'corporate' THEN CASE WHEN s.u_kind < 0.2 THEN 'enterprise' ELSE 'employee' END
            WHEN s.partner_kind = 'bank' AND s.u_kind < 0.1 THEN 'employee' ELSE 'vip' END AS kind,
       s.attribution, s.age, s.u_assets, s.u_withdraw,
       s.attribution = 'eligible' AND s.u_open < 0.45 AS opened,
       s.attribution = 'eligible' AND s.u_open < 0.45 AND s.u_fund < 0.8 AS funded,
       s.attribution = 'eligible' AND s.u_open < 0.45 AND s.u_fund < 0.8 AND s.u_convert < 0.4 AS converted,
       s.d_open, s.d_open + s.d_fund AS d_fund, s.d_open + s.d_fund + s.d_conv AS d_conv,
       CASE WHEN s.u_tier < 0.70 THEN 'retail' WHEN s.u_tier < 0.93 THEN 'hnw' ELSE 'institutional' END AS tier,
       CASE s.partner_kind WHEN 'bank' THEN 'BANK_WM_PLUS_EQUITY' WHEN 'insurer' THEN 'LIFE_PLUS_FUND_SIP'
            ELSE 'EMPLOYEE_WEALTH_PLAN' END AS product_code
FROM shaped s
"""

REFERRALS_SQL = f"""
INSERT INTO referrals (id, partner_id, program_id, external_ref, kind, status, identity_hash, birth_year, age_band,
                       window_ends_at, client_ref, outcome_at, created_at, updated_at)
SELECT p.id, p.partner_id, p.program_id, 'EXT-' || p.g, p.kind,
       CASE WHEN p.attribution <> 'eligible' THEN p.attribution
            WHEN p.converted THEN 'converted' WHEN p.funded THEN 'funded' WHEN p.opened THEN 'account_opened'
            WHEN p.u_withdraw < 0.05 THEN 'withdrawn'
            WHEN p.received_at + interval '90 days' > timestamptz '{NOW}' THEN 'eligible'
            ELSE 'expired' END,
       decode(md5('identity:' || p.g), 'hex'),
       CASE WHEN p.kind <> 'enterprise' THEN 2025 - p.age END,
       CASE WHEN p.kind = 'enterprise' THEN NULL WHEN p.age < 25 THEN 'under_25' WHEN p.age <= 35 THEN '25_35'
            WHEN p.age <= 45 THEN '36_45' WHEN p.age <= 55 THEN '46_55' ELSE 'over_55' END,
       p.received_at + interval '90 days', CASE WHEN p.opened THEN 'CR' || p.g END,
       CASE WHEN p.attribution <> 'eligible' THEN p.received_at END,
       p.received_at, p.received_at
FROM plan p
"""

# The timeline: received, the attribution, then each stage reached, or how it ended.
EVENTS_SQL = f"""
INSERT INTO referral_events (id, referral_id, partner_id, from_status, to_status, cause, details, created_at)
SELECT 'rev_r' || p.g || '_' || e.n, p.id, p.partner_id, e.from_status, e.to_status, e.cause, '{{}}', e.at
FROM plan p
CROSS JOIN LATERAL (VALUES
    (0, NULL, 'received', 'submitted', p.received_at, true),
    (1, 'received', p.attribution, 'attribution', p.received_at, true),
    (2, 'eligible', 'account_opened', 'account_opened', p.received_at + p.d_open * interval '1 day', p.opened),
    (3, 'account_opened', 'funded', 'account_funded', p.received_at + p.d_fund * interval '1 day', p.funded),
    (4, 'funded', 'converted', 'bundle_purchased', p.received_at + p.d_conv * interval '1 day', p.converted),
    (5, 'eligible', 'withdrawn', 'consent_revoked', p.received_at + interval '10 days',
        p.attribution = 'eligible' AND NOT p.opened AND p.u_withdraw < 0.05),
    (6, 'eligible', 'expired', 'window_passed', p.received_at + interval '90 days',
        p.attribution = 'eligible' AND NOT p.opened AND p.u_withdraw >= 0.05
        AND p.received_at + interval '90 days' <= timestamptz '{NOW}')
) AS e(n, from_status, to_status, cause, at, happened)
WHERE e.happened
"""

ASSETS = (
    "CASE p.tier WHEN 'retail' THEN 1000000 + CAST(floor(p.u_assets * 89000000) AS bigint) "
    "WHEN 'hnw' THEN 100000000 + CAST(floor(p.u_assets * 400000000) AS bigint) "
    "ELSE 500000000 + CAST(floor(p.u_assets * 1500000000) AS bigint) END"
)
TIER = "CASE WHEN p.kind = 'enterprise' THEN 'institutional' ELSE p.tier END"

ACCOUNTS_SQL = f"""
INSERT INTO client_accounts (client_ref, status, identity_hash, enterprise, referral_id, partner_id, opened_at,
                             funded_at, assets_fen, tier, created_at, updated_at)
SELECT 'CR' || p.g, 'open', decode(md5('identity:' || p.g), 'hex'), p.kind = 'enterprise', p.id, p.partner_id,
       p.received_at + p.d_open * interval '1 day' + interval '2 hours',
       CASE WHEN p.funded THEN p.received_at + p.d_fund * interval '1 day' + interval '4 hours' END,
       CASE WHEN p.funded THEN {ASSETS} ELSE 0 END,
       CASE WHEN p.funded THEN {TIER} END,
       p.received_at, p.received_at
FROM plan p WHERE p.opened
"""

ORGANIC_SQL = f"""
INSERT INTO client_accounts (client_ref, status, identity_hash, enterprise, opened_at, funded_at, assets_fen, tier,
                             created_at, updated_at)
SELECT 'CO' || g, 'open', decode(md5('organic:' || g), 'hex'), false, o.opened_at,
       CASE WHEN {_u("o_fund")} < 0.85 THEN o.opened_at + interval '1 day' END,
       CASE WHEN {_u("o_fund")} < 0.85 THEN CASE WHEN {_u("o_tier")} < 0.85 THEN 2000000
            WHEN {_u("o_tier")} < 0.97 THEN 200000000 ELSE 800000000 END ELSE 0 END,
       CASE WHEN {_u("o_fund")} < 0.85 THEN CASE WHEN {_u("o_tier")} < 0.85 THEN 'retail'
            WHEN {_u("o_tier")} < 0.97 THEN 'hnw' ELSE 'institutional' END END,
       o.opened_at, o.opened_at
FROM generate_series(1, CAST(:organic AS int)) AS g
CROSS JOIN LATERAL (
    SELECT timestamptz '{YEAR_START} 09:00+08' + (g - 1) * (interval '365 days' / CAST(:organic AS int)) AS opened_at
) AS o
"""

# The back office's events: an opening per account, a funding per funded one, the converting purchase, and four
# revenue events per funded referred client.
CONVERSIONS_SQL = """
INSERT INTO conversion_events (id, source_event_id, type, occurred_at, client_ref, amount_fen, currency, product_code,
                               enterprise, status, referral_id, partner_id, organic, effects, applied_at, created_at)
SELECT 'cev_' || e.key, e.key, e.type, e.at, a.client_ref, e.amount, CASE WHEN e.amount IS NOT NULL THEN 'CNY' END,
       e.product, a.enterprise, 'applied', a.referral_id, a.partner_id, a.referral_id IS NULL, e.effects, e.at, e.at
FROM client_accounts a
LEFT JOIN plan p ON a.referral_id = p.id
CROSS JOIN LATERAL (VALUES
    ('o' || a.client_ref, 'account_opened', a.opened_at, NULL::bigint, NULL, '{"attributed": true}'::jsonb, true),
    ('f' || a.client_ref, 'account_funded', a.funded_at, a.assets_fen, NULL, '{}'::jsonb, a.funded_at IS NOT NULL),
    ('b' || a.client_ref, 'bundle_purchased', p.received_at + p.d_conv * interval '1 day' + interval '6 hours',
        a.assets_fen / 10, p.product_code, '{"converted": true}'::jsonb, coalesce(p.converted, false))
) AS e(key, type, at, amount, product, effects, happened)
WHERE e.happened
UNION ALL
SELECT 'cev_r' || a.client_ref || '_' || k, 'r' || a.client_ref || '_' || k, 'revenue_recorded',
       a.funded_at + k * interval '30 days', a.client_ref, 1000 + (hashtext(a.client_ref || k) & 65535),
       'CNY', NULL, a.enterprise, 'applied', a.referral_id, a.partner_id, false, '{}', a.funded_at, a.funded_at
FROM client_accounts a CROSS JOIN generate_series(1, 4) AS k
WHERE a.referral_id IS NOT NULL AND a.funded_at IS NOT NULL
"""

STATUS = (
    f"CASE WHEN e.occurred_at < timestamptz '2025-10-01 00:00+08' THEN 'paid' "
    f"WHEN e.occurred_at < timestamptz '2025-12-01 00:00+08' THEN 'statemented' "
    f"WHEN e.occurred_at + interval '30 days' <= timestamptz '{NOW}' THEN 'payable' ELSE 'pending' END"
)

FEES_SQL = f"""
INSERT INTO fee_accruals (id, source_key, partner_id, referral_id, external_ref, conversion_event_id, rule,
                          amount_fen, currency, status, occurred_at, hold_until, arithmetic, created_at, updated_at)
SELECT 'acr_' || e.id, e.id || ':' || rule, e.partner_id, e.referral_id, NULL, e.id, rule, amount, 'CNY',
       {STATUS}, e.occurred_at, e.occurred_at + interval '30 days', '{{}}', e.occurred_at, e.occurred_at
FROM conversion_events e
JOIN client_accounts a ON a.client_ref = e.client_ref
CROSS JOIN LATERAL (
    SELECT CASE e.type WHEN 'account_funded' THEN 'funded_bounty' WHEN 'bundle_purchased' THEN 'bundle_fee'
                ELSE 'revenue_share' END AS rule,
           CASE e.type WHEN 'account_funded' THEN CASE a.tier WHEN 'retail' THEN 20000 WHEN 'hnw' THEN 150000
                                                  ELSE 500000 END
                       WHEN 'bundle_purchased' THEN least(500000, 10000 + e.amount_fen * 30 / 10000)
                       ELSE e.amount_fen / 10 END AS amount
) AS f
WHERE e.referral_id IS NOT NULL AND e.type IN ('account_funded', 'bundle_purchased', 'revenue_recorded')
"""


@dataclass
class Generated:
    referrals: int
    conversion_events: int
    fee_lines: int
    client_accounts: int
    timeline_events: int


async def generate(session: AsyncSession, count: int, organic: int) -> Generated:
    """Write the alliance into the (migrated, empty) database, triggers off; the caller commits."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    for statement in CATALOG_SQL:
        await session.execute(text(statement))
    await session.execute(text(PLAN_SQL), {"count": count})
    await session.execute(text(REFERRALS_SQL))
    await session.execute(text(EVENTS_SQL))
    await session.execute(text(ACCOUNTS_SQL))
    await session.execute(text(ORGANIC_SQL), {"organic": organic})
    await session.execute(text(CONVERSIONS_SQL))
    await session.execute(text(FEES_SQL))
    counts = {
        table: int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        for table in ("referrals", "conversion_events", "fee_accruals", "client_accounts", "referral_events")
    }
    return Generated(
        referrals=counts["referrals"],
        conversion_events=counts["conversion_events"],
        fee_lines=counts["fee_accruals"],
        client_accounts=counts["client_accounts"],
        timeline_events=counts["referral_events"],
    )
