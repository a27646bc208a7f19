"""The recount the tests compare the reports with: every figure summed straight from the facts of every referral
and organic account evaluated over the base tables (``summary.referral_facts_sql``, the one definition of a
figure), in plain SQL of its own: no rollup, no queue, no correction, and the percentiles taken by PostgreSQL's
own ``percentile_cont``. The reports' shaping of sums into rates and shares (``*_of``) is then applied as is, so
that the two can only differ if the summary or the way reports read it missed something."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.core.tenancy import Tenant
from app.reports import summary
from app.reports.client_structure import STRUCTURE_SUMS, client_structure_of, organic_baseline
from app.reports.fees import FEES_SUMS, fees_of
from app.reports.funnel import FUNNEL_COUNTS, funnel_of
from app.reports.queries import PERCENTILES, ReportQuery
from app.reports.schemas import (
    ClientStructureReport,
    FeesReport,
    FunnelReport,
    GroupBy,
    Scorecard,
    TimeToConvertReport,
)
from app.reports.scorecard import SCORE_DIMENSIONS, SCORE_SUMS, alliance_wide, narrowed, scorecard_of, scored_partner
from app.reports.shaping import STAGES, Payload, group_key, group_of
from app.reports.time_to_convert import no_timing, time_to_convert_of

EVERYONE = Tenant.everyone(Actor.system("oracle"))  # every partner's rows, as staff see them

_COLUMNS = {
    GroupBy.partner: ("f.partner_id", "p.display_name AS partner_name"),
    GroupBy.partner_kind: ("p.kind AS partner_kind",),
    GroupBy.program: ("f.program_id", "pg.name AS program_name"),
    GroupBy.product: ("f.product_code", "bp.name AS product_name"),
    GroupBy.tier: ("f.tier",),
    GroupBy.kind: ("f.kind",),
    GroupBy.month: ("f.cohort_month AS month",),
}
_NAMES = """
LEFT JOIN partners p ON p.id = f.partner_id
LEFT JOIN programs pg ON pg.id = f.program_id
LEFT JOIN bundled_products bp ON bp.code = f.product_code
"""


def _where(query: ReportQuery, tenant: Tenant, day: str, *, referrals: bool) -> tuple[str, dict[str, Any]]:
    conditions = [f"f.{day} BETWEEN :start AND :end"]
    params: dict[str, Any] = {"start": query.start, "end": query.end}
    filters = query.filters
    wanted = {"tier": [tier.value for tier in filters.tiers]}
    if referrals:
        wanted |= {
            "partner_id": list(filters.partner_ids),
            "program_id": list(filters.program_ids),
            "kind": [kind.value for kind in filters.kinds],
            "product_code": list(filters.product_codes),
        }
        if filters.partner_kinds:
            conditions.append("p.kind = ANY(:partner_kinds)")
            params["partner_kinds"] = [kind.value for kind in filters.partner_kinds]
        if tenant.partner_id is not None:
            conditions.append("f.partner_id = :tenant")
            params["tenant"] = tenant.partner_id
    for column, values in wanted.items():
        if values:
            conditions.append(f"f.{column} = ANY(:{column})")
            params[column] = values
    return " AND ".join(conditions), params


async def _rows(session: AsyncSession, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in (await session.execute(sa.text(sql), params)).mappings().all()]


async def referral_sums(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, dimensions: Sequence[GroupBy], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Each of ``names`` (a column of the cohort rollups) summed over the referrals received in the period, per
    group of ``dimensions``; no row for a group with no referral."""
    columns = [column for dimension in dimensions for column in _COLUMNS[dimension]]
    keys = [column.split(" AS ")[0] for column in columns]
    sums = [f"CAST(sum({summary.COHORT_MEASURES[name]}) AS bigint) AS {name}" for name in names]
    where, params = _where(query, tenant, "received_on", referrals=True)
    group = f"GROUP BY {', '.join(keys)}" if keys else "HAVING count(*) > 0"
    sql = (
        f"SELECT {', '.join([*columns, *sums])} FROM ({summary.referral_facts_sql()}) f {_NAMES} WHERE {where} {group}"
    )
    return await _rows(session, sql, params)


async def organic_sums(
    session: AsyncSession, query: ReportQuery, dimensions: Sequence[GroupBy]
) -> list[dict[str, Any]]:
    """Organic accounts opened in the period by tier (``ORGANIC_SUMS``), per group of ``dimensions`` (month, tier)."""
    columns = ["f.opened_month AS month" if dimension == GroupBy.month else "f.tier" for dimension in dimensions]
    keys = [column.split(" AS ")[0] for column in columns]
    sums = [
        *(f"count(*) FILTER (WHERE f.tier = '{tier}') AS organic_{suffix}" for tier, suffix in summary.TIERS.items()),
        *(
            f"sum(f.assets_fen) FILTER (WHERE f.tier = '{tier}') AS organic_assets_{tier}"
            for tier in summary.TIERS
            if tier
        ),
    ]
    where, params = _where(query, EVERYONE, "opened_on", referrals=False)
    group = f"GROUP BY {', '.join(keys)}" if keys else "HAVING count(*) > 0"
    sql = f"SELECT {', '.join([*columns, *sums])} FROM ({summary.organic_facts_sql()}) f WHERE {where} {group}"
    return await _rows(session, sql, params)


async def timing_rows(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, dimensions: Sequence[GroupBy]
) -> list[dict[str, Any]]:
    """Per group of ``dimensions``, for each stage: the referrals that reached it, the median and p90 of their
    whole days, by ``percentile_cont``."""
    columns = [column for dimension in dimensions for column in _COLUMNS[dimension]]
    keys = [column.split(" AS ")[0] for column in columns]
    percentiles = [
        f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY s.days) AS {name}_days"
        for name, fraction in PERCENTILES.items()
    ]
    where, params = _where(query, tenant, "received_on", referrals=True)
    sql = (
        f"SELECT {', '.join([*columns, 's.stage', 'count(*) AS referrals', *percentiles])}"
        f" FROM ({summary.referral_facts_sql()}) f {summary.STAGE_ROWS} {_NAMES}"
        f" WHERE s.days IS NOT NULL AND {where} GROUP BY {', '.join([*keys, 's.stage'])}"
    )
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in await _rows(session, sql, params):
        timing = groups.setdefault(group_key(row, dimensions), {**no_timing(), "group": group_of(row, dimensions)})
        timing[row["stage"]] = {name: row[name] for name in ("referrals", "median_days", "p90_days")}
    assert all(stage in STAGES for timing in groups.values() for stage in timing if stage != "group")
    return list(groups.values())


async def funnel_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    return funnel_of(query, await referral_sums(session, tenant, query, query.group_by, FUNNEL_COUNTS))


async def fees_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    return fees_of(query, await referral_sums(session, tenant, query, query.group_by, FEES_SUMS))


async def client_structure_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    rows = await referral_sums(session, tenant, query, query.group_by, STRUCTURE_SUMS)
    return client_structure_of(query, rows, await organic_sums(session, query, organic_baseline(query)))


async def time_to_convert_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    rows = await timing_rows(session, tenant, query, query.group_by)
    return time_to_convert_of(query, rows, await timing_rows(session, tenant, query, ()))


async def scorecard_payload(session: AsyncSession, partner_id: str, query: ReportQuery) -> Payload:
    partner = await scored_partner(session, partner_id)
    alliance = alliance_wide(query)
    per_partner = await referral_sums(session, EVERYONE, alliance, SCORE_DIMENSIONS, SCORE_SUMS)
    timings = {}
    for who, narrowed_query in narrowed(alliance, partner).items():
        rows = await timing_rows(session, EVERYONE, narrowed_query, ())
        timings[who] = rows[0] if rows else no_timing()
    return scorecard_of(query, partner, per_partner, timings)


async def funnel(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FunnelReport:
    return FunnelReport.model_validate(await funnel_payload(session, tenant, query))


async def fees(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FeesReport:
    return FeesReport.model_validate(await fees_payload(session, tenant, query))


async def client_structure(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> ClientStructureReport:
    return ClientStructureReport.model_validate(await client_structure_payload(session, tenant, query))


async def time_to_convert(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> TimeToConvertReport:
    return TimeToConvertReport.model_validate(await time_to_convert_payload(session, tenant, query))


async def scorecard(session: AsyncSession, partner_id: str, query: ReportQuery) -> Scorecard:
    return Scorecard.model_validate(await scorecard_payload(session, partner_id, query))
