"""How a referral is counted, and the summary kept from it: facts per referral, monthly rollups, a change queue.

``referral_facts_sql`` is the one definition of every figure: a referral's cohort (the month it was received in, in
the business timezone of ``app.core.business_time``, read when this module is imported), the stages it reached on
its timeline, its current outcome, the whole days it took to reach account opening, funding and conversion (business
time: the back office's ``occurred_at``, not when we processed the event), its account's tier and assets, the
product it converted with, the revenue recorded for it and its fee lines by status. The rollups are sums of these
facts; the recount in the tests (``tests/reports/oracle.py``) is the same definition evaluated over the base
tables, so the two can only differ if the summary missed a change.

The rollups: ``report_cohorts`` (by month, partner, program, kind, tier, product), ``report_durations`` (the same
keys and whole days: a histogram), and by partner and month alone, the grain most reports are read at,
``report_partner_months`` and ``report_duration_series`` (packed histograms with their own median and p90; the
alliance's month under the partner id ``""``); organic accounts by month and tier.

Writers never touch the summary: triggers (installed by the migration) on ``referrals``, ``client_accounts`` and
``fee_accruals`` append the referral or account a write touched to ``report_changes``. ``refresh`` recomputes
the facts of what is queued and applies the difference to the rollups, in one statement per chunk, then rebuilds
the partner-months it touched; reports read the rollups and correct them for the queue in the same statement
(``PENDING_*`` below), so a report is exact whether or not the queue has been folded yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String

from app.core.business_time import sql_day, sql_month

REFRESH_LOCK = "alliance:reports:refresh"
REFRESH_CHUNK = 20_000

# Whole days elapsed between two instants.
_DAYS = "CAST(floor(extract(epoch FROM ({end}) - r.created_at) / 86400) AS int)"

# Every referral, or those for which ``{only}`` (a condition on a column named by ``{col}``) holds.
_REFERRAL_FACTS = f"""
SELECT r.id AS referral_id,
       r.partner_id,
       r.program_id,
       r.kind,
       {sql_month("r.created_at")} AS cohort_month,
       {sql_day("r.created_at")} AS received_on,
       coalesce(r.age_band, '') AS age_band,
       r.status,
       coalesce(ev.eligible, false) AS reached_eligible,
       coalesce(ev.opened, false) AS reached_opened,
       coalesce(ev.funded, false) AS reached_funded,
       coalesce(ev.converted, false) AS reached_converted,
       CASE WHEN ev.opened THEN {_DAYS.format(end="a.opened_at")} END AS days_to_open,
       CASE WHEN ev.funded THEN {_DAYS.format(end="a.funded_at")} END AS days_to_fund,
       CASE WHEN ev.converted THEN {_DAYS.format(end="cv.occurred_at")} END AS days_to_convert,
       coalesce(a.tier, '') AS tier,
       coalesce(cv.product_code, '') AS product_code,
       CASE WHEN a.status = 'open' THEN a.assets_fen ELSE 0 END AS assets_fen,
       coalesce(rv.revenue_fen, 0) AS revenue_fen,
       coalesce(fl.pending_fen, 0) AS fees_pending_fen,
       coalesce(fl.payable_fen, 0) AS fees_payable_fen,
       coalesce(fl.statemented_fen, 0) AS fees_statemented_fen,
       coalesce(fl.paid_fen, 0) AS fees_paid_fen
FROM referrals r
-- The stages reached: a transition to the status on the timeline (a tier rise repeats the status: not a stage),
-- but none an override later moved to another partner's referral (they are that referral's now).
LEFT JOIN (
    SELECT referral_id,
           bool_or(to_status = 'eligible') AS eligible,
           bool_or(to_status = 'account_opened') AS opened,
           bool_or(to_status = 'funded') AS funded,
           bool_or(to_status = 'converted') AS converted
    FROM referral_events e
    WHERE from_status IS DISTINCT FROM to_status AND {{only_events}}
      AND NOT EXISTS (SELECT 1 FROM referral_events lost
                      WHERE lost.referral_id = e.referral_id AND lost.seq > e.seq
                        AND lost.cause = 'attribution_moved' AND lost.to_status = 'duplicate')
    GROUP BY referral_id
) ev ON ev.referral_id = r.id
-- The account opened inside the window (the lifecycle links exactly one).
LEFT JOIN (
    SELECT DISTINCT ON (referral_id) referral_id, opened_at, funded_at, tier, status, assets_fen
    FROM client_accounts
    WHERE referral_id IS NOT NULL AND {{only_accounts}}
    ORDER BY referral_id, opened_at, client_ref
) a ON a.referral_id = r.id
-- The purchase that converted it.
LEFT JOIN (
    SELECT DISTINCT ON (referral_id) referral_id, occurred_at, product_code
    FROM conversion_events
    WHERE type = 'bundle_purchased' AND status = 'applied' AND effects @> '{{{{"converted": true}}}}'
      AND {{only_conversions}}
    ORDER BY referral_id, occurred_at, id
) cv ON cv.referral_id = r.id
LEFT JOIN (
    SELECT referral_id, sum(amount_fen) AS revenue_fen
    FROM conversion_events
    WHERE type = 'revenue_recorded' AND status = 'applied' AND {{only_revenue}}
    GROUP BY referral_id
) rv ON rv.referral_id = r.id
-- Fee lines by status; reversed lines (a clawback inside the hold period and what it cancelled) count nowhere.
LEFT JOIN (
    SELECT referral_id,
           sum(amount_fen) FILTER (WHERE status = 'pending') AS pending_fen,
           sum(amount_fen) FILTER (WHERE status = 'payable') AS payable_fen,
           sum(amount_fen) FILTER (WHERE status = 'statemented') AS statemented_fen,
           sum(amount_fen) FILTER (WHERE status = 'paid') AS paid_fen
    FROM fee_accruals
    WHERE {{only_fees}}
    GROUP BY referral_id
) fl ON fl.referral_id = r.id
WHERE {{only_referrals}}
"""

_ORGANIC_FACTS = f"""
SELECT a.client_ref,
       {sql_month("a.opened_at")} AS opened_month,
       {sql_day("a.opened_at")} AS opened_on,
       coalesce(a.tier, '') AS tier,
       CASE WHEN a.status = 'open' THEN a.assets_fen ELSE 0 END AS assets_fen
FROM client_accounts a
WHERE a.referral_id IS NULL AND a.opened_at IS NOT NULL AND {{only}}
"""

FACT_COLUMNS = (
    "referral_id",
    "partner_id",
    "program_id",
    "kind",
    "cohort_month",
    "received_on",
    "age_band",
    "status",
    "reached_eligible",
    "reached_opened",
    "reached_funded",
    "reached_converted",
    "days_to_open",
    "days_to_fund",
    "days_to_convert",
    "tier",
    "product_code",
    "assets_fen",
    "revenue_fen",
    "fees_pending_fen",
    "fees_payable_fen",
    "fees_statemented_fen",
    "fees_paid_fen",
)
ORGANIC_COLUMNS = ("client_ref", "opened_month", "opened_on", "tier", "assets_fen")

KEY = ("cohort_month", "partner_id", "program_id", "kind", "tier", "product_code")

# What one referral (a facts row ``f``) adds to each rollup column.
COHORT_MEASURES: dict[str, str] = {
    "received": "1",
    "eligible": "CAST(f.reached_eligible AS int)",
    "existing_client": "CAST(f.status = 'existing_client' AS int)",
    "duplicate": "CAST(f.status = 'duplicate' AS int)",
    "expired": "CAST(f.status = 'expired' AS int)",
    "withdrawn": "CAST(f.status = 'withdrawn' AS int)",
    "rejected": "CAST(f.status = 'rejected' AS int)",
    "account_opened": "CAST(f.reached_opened AS int)",
    "funded": "CAST(f.reached_funded AS int)",
    "converted": "CAST(f.reached_converted AS int)",
    "assets_fen": "f.assets_fen",
    "revenue_fen": "f.revenue_fen",
    "fees_pending_fen": "f.fees_pending_fen",
    "fees_payable_fen": "f.fees_payable_fen",
    "fees_statemented_fen": "f.fees_statemented_fen",
    "fees_paid_fen": "f.fees_paid_fen",
}
# Age bands as the referral records them ("" for an enterprise), and the column suffix of each.
AGE_BANDS: dict[str, str] = {
    "under_25": "under_25",
    "25_35": "25_35",
    "36_45": "36_45",
    "46_55": "46_55",
    "over_55": "over_55",
    "": "none",
}
COHORT_MEASURES |= {
    f"received_age_{suffix}": f"CAST(f.age_band = '{band}' AS int)" for band, suffix in AGE_BANDS.items()
}
COHORT_MEASURES |= {
    f"converted_age_{suffix}": f"CAST(f.age_band = '{band}' AND f.reached_converted AS int)"
    for band, suffix in AGE_BANDS.items()
}
TIERS = {"retail": "retail", "hnw": "hnw", "institutional": "institutional", "": "unknown"}
COHORT_MEASURES |= {
    f"{stage}_{suffix}": f"CAST(f.tier = '{tier}' AND f.reached_{stage} AS int)"
    for stage in ("converted", "funded")
    for tier, suffix in TIERS.items()
}
COHORT_MEASURES |= {
    f"assets_{tier}_fen": f"CASE WHEN f.tier = '{tier}' THEN f.assets_fen ELSE 0 END" for tier in TIERS if tier
}
STAGES: dict[str, str] = {"account_opened": "days_to_open", "funded": "days_to_fund", "converted": "days_to_convert"}
# One row per stage a facts row ``f`` reached: (stage, days).
STAGE_ROWS = "CROSS JOIN LATERAL (VALUES {values}) AS s(stage, days)".format(
    values=", ".join(f"('{stage}', f.{column})" for stage, column in STAGES.items())
)
ORGANIC_MEASURES: dict[str, str] = {"accounts": "1", "assets_fen": "f.assets_fen"}


def referral_facts_sql(only: str = "true") -> str:
    """The facts of the referrals whose id satisfies ``only``, written over a placeholder ``{col}``."""
    return _REFERRAL_FACTS.format(
        only_events=only.format(col="referral_id"),
        only_accounts=only.format(col="referral_id"),
        only_conversions=only.format(col="referral_id"),
        only_revenue=only.format(col="referral_id"),
        only_fees=only.format(col="referral_id"),
        only_referrals=only.format(col="r.id"),
    )


def organic_facts_sql(only: str = "true") -> str:
    return _ORGANIC_FACTS.format(only=only.format(col="a.client_ref"))


# The queue as reports see it: what is not folded into the summary yet. As an array computed once per statement
# (an init plan), so that every table is read through its index on the referral, whatever the queue's length.
PENDING_REFERRALS = "ARRAY(SELECT DISTINCT referral_id FROM report_changes WHERE referral_id IS NOT NULL)"
PENDING_ACCOUNTS = "ARRAY(SELECT DISTINCT client_ref FROM report_changes WHERE client_ref IS NOT NULL)"
ONLY_PENDING_REFERRALS = "{col} = ANY(" + PENDING_REFERRALS + ")"
ONLY_PENDING_ACCOUNTS = "{col} = ANY(" + PENDING_ACCOUNTS + ")"


# --- folding the queue ------------------------------------------------------------------------------------------


def _columns(names: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(prefix + name for name in names)


def _upsert(table: str, key: tuple[str, ...], measures: dict[str, str], source: str, extra: str = "") -> str:
    """``INSERT … SELECT`` the signed sums of ``measures`` over ``source`` (rows ``f`` with a ``sign``), adding to
    the rows already there."""
    sums = ", ".join(f"sum(f.sign * {expression})" for expression in measures.values())
    updates = ", ".join(f"{name} = t.{name} + excluded.{name}" for name in measures)
    return (
        f"INSERT INTO {table} AS t ({_columns(key)}, {_columns(tuple(measures))}) "
        f"SELECT {_columns(key, 'f.')}, {sums} FROM {source} f {extra} GROUP BY {_columns(key, 'f.')} "
        f"ON CONFLICT ({_columns(key)}) DO UPDATE SET {updates}"
    )


def _save(table: str, columns: tuple[str, ...]) -> str:
    """Upsert the ``fresh`` facts into ``table`` (keyed by its first column)."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in columns[1:])
    return (
        f"INSERT INTO {table} ({_columns(columns)}) SELECT {_columns(columns)} FROM fresh "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
    )


DURATION_KEY = (*KEY, "stage", "days")
ORGANIC_KEY = ("opened_month", "tier")


def _fold_referrals_sql() -> str:
    """One statement: recompute the facts of ``:ids``, replace them, and add (new - old) to every rollup.

    Every part of a statement sees the same snapshot: ``stale`` reads the facts as they were before ``saved``
    overwrites them, whatever order PostgreSQL runs the parts in."""
    stage_source = (
        "(SELECT g.sign, g.cohort_month, g.partner_id, g.program_id, g.kind, g.tier, g.product_code, s.stage, s.days "
        f"FROM signed g {STAGE_ROWS.replace('f.', 'g.')} WHERE s.days IS NOT NULL)"
    )
    return f"""
WITH fresh AS MATERIALIZED ({referral_facts_sql("{col} = ANY(:ids)")}),
stale AS (SELECT {_columns(FACT_COLUMNS)} FROM report_referral_facts WHERE referral_id = ANY(:ids)),
saved AS ({_save("report_referral_facts", FACT_COLUMNS)}),
gone AS (
    DELETE FROM report_referral_facts
    WHERE referral_id = ANY(:ids) AND referral_id NOT IN (SELECT referral_id FROM fresh)
),
signed AS (
    SELECT 1 AS sign, {_columns(FACT_COLUMNS)} FROM fresh
    UNION ALL
    SELECT -1 AS sign, {_columns(FACT_COLUMNS)} FROM stale
),
cohorts AS ({_upsert("report_cohorts", KEY, COHORT_MEASURES, "signed")}),
durations AS ({_upsert("report_durations", DURATION_KEY, {"referrals": "1"}, stage_source)})
SELECT t.cohort_month, t.partner_id, (SELECT count(*) FROM fresh) AS referrals
FROM (SELECT DISTINCT cohort_month, partner_id FROM signed) t
"""


# The series of the partner-months a fold touched (and of the whole alliance in those months, under the partner
# id ''), rebuilt from the histogram after it was updated.
# Each with its median and p90, by PostgreSQL's own percentile_cont over the days (one value per referral).
_SERIES_OF = """
WITH h AS (
    SELECT d.cohort_month, {partner} AS partner_id, d.stage, d.days, CAST(sum(d.referrals) AS int) AS referrals
    FROM report_durations d {join}
    GROUP BY 1, 2, 3, 4
    HAVING sum(d.referrals) <> 0
),
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
ALLIANCE = ""  # the partner id of the alliance-wide series
_NO_PARTNER = "''"  # ALLIANCE as SQL
_TOUCHED = "unnest(CAST(:months AS date[]), CAST(:partners AS text[])) AS t(cohort_month, partner_id)"
_JOIN_TOUCHED = "JOIN touched t USING (cohort_month, partner_id)"
_REBUILD_SERIES = f"""
WITH touched AS (SELECT * FROM {_TOUCHED}),
months AS (SELECT DISTINCT cohort_month FROM touched),
fresh AS (
    SELECT * FROM ({_SERIES_OF.format(partner="d.partner_id", join=_JOIN_TOUCHED)}) AS partners
    UNION ALL
    SELECT * FROM ({_SERIES_OF.format(partner=_NO_PARTNER, join="JOIN months m USING (cohort_month)")}) AS alliance
),
scope AS (SELECT cohort_month, partner_id FROM touched UNION SELECT cohort_month, '' FROM months),
gone AS (
    DELETE FROM report_duration_series s USING scope t
    WHERE s.cohort_month = t.cohort_month AND s.partner_id = t.partner_id
      AND NOT EXISTS (SELECT 1 FROM fresh f
                      WHERE f.cohort_month = s.cohort_month AND f.partner_id = s.partner_id AND f.stage = s.stage)
)
INSERT INTO report_duration_series (cohort_month, partner_id, stage, histogram, referrals, median_days, p90_days)
SELECT cohort_month, partner_id, stage, histogram, referrals, median_days, p90_days FROM fresh
ON CONFLICT (cohort_month, partner_id, stage) DO UPDATE
SET histogram = excluded.histogram, referrals = excluded.referrals, median_days = excluded.median_days,
    p90_days = excluded.p90_days
"""


def _fold_accounts_sql() -> str:
    return f"""
WITH fresh AS MATERIALIZED ({organic_facts_sql("{col} = ANY(:refs)")}),
stale AS (SELECT {_columns(ORGANIC_COLUMNS)} FROM report_organic_accounts WHERE client_ref = ANY(:refs)),
saved AS ({_save("report_organic_accounts", ORGANIC_COLUMNS)}),
gone AS (
    DELETE FROM report_organic_accounts
    WHERE client_ref = ANY(:refs) AND client_ref NOT IN (SELECT client_ref FROM fresh)
),
signed AS (
    SELECT 1 AS sign, {_columns(ORGANIC_COLUMNS)} FROM fresh
    UNION ALL
    SELECT -1 AS sign, {_columns(ORGANIC_COLUMNS)} FROM stale
),
organic AS ({_upsert("report_organic", ORGANIC_KEY, ORGANIC_MEASURES, "signed")})
SELECT count(*) FROM fresh
"""


_FOLD_REFERRALS = text(_fold_referrals_sql()).bindparams(bindparam("ids", type_=ARRAY(String)))
_FOLD_ACCOUNTS = text(_fold_accounts_sql()).bindparams(bindparam("refs", type_=ARRAY(String)))
_TAKE_CHANGES = text(
    "DELETE FROM report_changes WHERE id IN (SELECT id FROM report_changes ORDER BY id LIMIT :limit) "
    "RETURNING referral_id, client_ref"
)
# A rollup row nobody is counted in any more (every measure is a sum over its referrals, so all are zero).
_PARTNER_MONTHS_OF = (
    f"SELECT c.cohort_month, c.partner_id, {', '.join(f'sum(c.{name})' for name in COHORT_MEASURES)} "
    "FROM report_cohorts c {join} GROUP BY c.cohort_month, c.partner_id"
)
_REBUILD_PARTNER_MONTHS = f"""
WITH touched AS (SELECT * FROM {_TOUCHED}),
fresh AS ({_PARTNER_MONTHS_OF.format(join="JOIN touched t USING (cohort_month, partner_id)")}),
gone AS (
    DELETE FROM report_partner_months p USING touched t
    WHERE p.cohort_month = t.cohort_month AND p.partner_id = t.partner_id
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.cohort_month = p.cohort_month AND f.partner_id = p.partner_id)
)
INSERT INTO report_partner_months (cohort_month, partner_id, {_columns(tuple(COHORT_MEASURES))})
SELECT * FROM fresh
ON CONFLICT (cohort_month, partner_id) DO UPDATE SET {", ".join(f"{m} = excluded.{m}" for m in COHORT_MEASURES)}
"""
# A rollup row nobody is counted in any more (every measure is a sum over its referrals, so all are zero).
_DROP_EMPTY_REFERRALS = (
    text("DELETE FROM report_cohorts WHERE received = 0"),
    text("DELETE FROM report_durations WHERE referrals = 0"),
)
_DROP_EMPTY_ORGANIC = text("DELETE FROM report_organic WHERE accounts = 0")
# What is kept by partner and month is rebuilt, for the partner-months a fold touched, from the rollups.
_BY_PARTNER_MONTH = (text(_REBUILD_SERIES), text(_REBUILD_PARTNER_MONTHS))


@dataclass(frozen=True)
class Refreshed:
    changes: int = 0
    referrals: int = 0
    accounts: int = 0
    skipped: bool = False  # another refresh held the lock


async def refresh(session: AsyncSession, *, chunk: int = REFRESH_CHUNK, max_chunks: int | None = None) -> Refreshed:
    """Fold the change queue into the facts and rollups, ``chunk`` queued changes per statement, until it is
    empty (or ``max_chunks`` were done). One refresh at a time: if another holds the lock this returns at once.

    The caller owns the transaction. Writers keep queueing meanwhile; what they queue is folded by a later
    refresh, and reports correct for it until then."""
    locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": REFRESH_LOCK})
    if not locked:
        return Refreshed(skipped=True)
    changes = referrals = accounts = chunks = 0
    while max_chunks is None or chunks < max_chunks:
        taken = (await session.execute(_TAKE_CHANGES, {"limit": chunk})).all()
        if not taken:
            break
        chunks += 1
        changes += len(taken)
        referral_ids = sorted({row.referral_id for row in taken if row.referral_id})
        client_refs = sorted({row.client_ref for row in taken if row.client_ref})
        if referral_ids:
            touched = (await session.execute(_FOLD_REFERRALS, {"ids": referral_ids})).all()
            referrals += int(touched[0].referrals) if touched else 0
            for statement in _DROP_EMPTY_REFERRALS:
                await session.execute(statement)
            if touched:
                pairs = {
                    "months": [row.cohort_month for row in touched],
                    "partners": [row.partner_id for row in touched],
                }
                for statement in _BY_PARTNER_MONTH:
                    await session.execute(statement, pairs)
        if client_refs:
            accounts += int(await session.scalar(_FOLD_ACCOUNTS, {"refs": client_refs}) or 0)
            await session.execute(_DROP_EMPTY_ORGANIC)
    return Refreshed(changes=changes, referrals=referrals, accounts=accounts)


async def pending_changes(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM report_changes")) or 0)


def _rollup_from_facts(table: str, key: tuple[str, ...], measures: dict[str, str], source: str) -> str:
    sums = ", ".join(f"sum({expression})" for expression in measures.values())
    return (
        f"INSERT INTO {table} ({_columns(key)}, {_columns(tuple(measures))}) "
        f"SELECT {_columns(key, 'f.')}, {sums} FROM {source} GROUP BY {_columns(key, 'f.')}"
    )


_REBUILD = (
    text(
        "TRUNCATE report_referral_facts, report_cohorts, report_partner_months, report_durations, "
        "report_duration_series, "
        "report_organic_accounts, report_organic"
    ),
    text(f"INSERT INTO report_referral_facts ({_columns(FACT_COLUMNS)}) {referral_facts_sql()}"),
    text(_rollup_from_facts("report_cohorts", KEY, COHORT_MEASURES, "report_referral_facts f")),
    text(
        f"INSERT INTO report_partner_months (cohort_month, partner_id, {_columns(tuple(COHORT_MEASURES))}) "
        + _PARTNER_MONTHS_OF.format(join="")
    ),
    text(
        _rollup_from_facts(
            "report_durations",
            DURATION_KEY,
            {"referrals": "1"},
            f"(SELECT f.cohort_month, f.partner_id, f.program_id, f.kind, f.tier, f.product_code, s.stage, s.days "
            f"FROM report_referral_facts f {STAGE_ROWS} WHERE s.days IS NOT NULL) f",
        )
    ),
    text(
        "INSERT INTO report_duration_series (cohort_month, partner_id, stage, histogram, referrals, median_days, "
        "p90_days) "
        f"SELECT * FROM ({_SERIES_OF.format(partner='d.partner_id', join='')}) AS partners "
        f"UNION ALL SELECT * FROM ({_SERIES_OF.format(partner=_NO_PARTNER, join='')}) AS alliance"
    ),
    text(f"INSERT INTO report_organic_accounts ({_columns(ORGANIC_COLUMNS)}) {organic_facts_sql()}"),
    text(_rollup_from_facts("report_organic", ORGANIC_KEY, ORGANIC_MEASURES, "report_organic_accounts f")),
)


async def rebuild(session: AsyncSession) -> Refreshed:
    """Recompute the whole summary from the base tables (after a bulk load, or to repair it): set-based, a few
    statements whatever the size. Changes queued before it started are covered; later ones stay queued."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": REFRESH_LOCK})
    upto = await session.scalar(text("SELECT max(id) FROM report_changes"))
    if upto is not None:
        await session.execute(text("DELETE FROM report_changes WHERE id <= :upto"), {"upto": upto})
    for statement in _REBUILD:
        await session.execute(statement)
    referrals = int(await session.scalar(text("SELECT count(*) FROM report_referral_facts")) or 0)
    accounts = int(await session.scalar(text("SELECT count(*) FROM report_organic_accounts")) or 0)
    return Refreshed(referrals=referrals, accounts=accounts)
