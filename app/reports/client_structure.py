"""Client structure: the tiers and ages of the clients referrals brought in, against organic clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import Tenant
from app.reports import summary
from app.reports.queries import Measure, ReportQuery, aggregate, anything_queued, cohorts_for, rows_of, sums
from app.reports.schemas import AGE_BANDS, TARGET_AGE_BAND, ClientStructureReport, GroupBy
from app.reports.shaping import NO_GROUP, TIERS, Payload, group_key, group_of, header, in_order, payload, rate, summed
from app.reports.sources import ORGANIC

STRUCTURE_SUMS = (
    "received",
    *(f"{stage}_{tier}" for stage in ("converted", "funded") for tier in (*TIERS, "unknown")),
    *(f"assets_{tier}_fen" for tier in TIERS),
    *(f"{kind}_age_{suffix}" for kind in ("received", "converted") for suffix in summary.AGE_BANDS.values()),
)
_ORGANIC_MEASURES: dict[str, Measure] = {
    "accounts": lambda c: func.sum(c.accounts),
    **{
        f"organic_{suffix}": (lambda c, tier=tier: func.sum(c.accounts).filter(c.tier == tier))  # type: ignore[misc]
        for tier, suffix in summary.TIERS.items()
    },
    **{
        f"organic_assets_{tier}": (lambda c, tier=tier: func.sum(c.assets_fen).filter(c.tier == tier))  # type: ignore[misc]
        for tier in TIERS
    },
}
ORGANIC_SUMS = tuple(name for name in _ORGANIC_MEASURES if name != "accounts")


_TIER_COLUMNS = {
    prefix: tuple(f"{prefix}_{tier}" for tier in (*TIERS, "unknown")) for prefix in ("converted", "funded", "organic")
}
_AGE_COLUMNS = {
    kind: tuple((suffix, f"{kind}_age_{suffix}") for suffix in summary.AGE_BANDS.values())
    for kind in ("received", "converted")
}
_ASSET_COLUMNS = {
    prefix: tuple((f"{tier}_fen", f"{prefix}_{tier}{suffix}") for tier in TIERS)
    for prefix, suffix in (("assets", "_fen"), ("organic_assets", ""))
}


def tier_counts(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    retail, hnw, institutional, unknown = (int(values.get(column) or 0) for column in _TIER_COLUMNS[prefix])
    return {
        "retail": retail,
        "hnw": hnw,
        "institutional": institutional,
        "unknown": unknown,
        "share_hnw_institutional": rate(hnw + institutional, retail + hnw + institutional),
    }


def _difference_points(referred: Mapping[str, int], organic: Mapping[str, int]) -> float | None:
    """HNW + institutional among referred clients minus among organic ones (those with a tier), in percentage
    points: from the exact fractions, one rounding."""
    referred_known = referred["retail"] + referred["hnw"] + referred["institutional"]
    organic_known = organic["retail"] + organic["hnw"] + organic["institutional"]
    if not referred_known or not organic_known:
        return None
    referred_upper = referred["hnw"] + referred["institutional"]
    organic_upper = organic["hnw"] + organic["institutional"]
    numerator = (referred_upper * organic_known - organic_upper * referred_known) * 100
    return round(numerator / (referred_known * organic_known), 2)  # int / int: the exact ratio, rounded once


def _structure_row(group: dict[str, Any], values: Mapping[str, int], organic: Mapping[str, int]) -> dict[str, Any]:
    converted, organic_counts = tier_counts(values, "converted"), tier_counts(organic, "organic")
    received_by_age = {suffix: int(values.get(column) or 0) for suffix, column in _AGE_COLUMNS["received"]}
    converted_by_age = {suffix: int(values.get(column) or 0) for suffix, column in _AGE_COLUMNS["converted"]}
    known_age = sum(converted_by_age.values()) - converted_by_age["none"]
    return {
        "group": group,
        "converted": converted,
        "funded": tier_counts(values, "funded"),
        "assets_by_tier": {key: int(values.get(column) or 0) for key, column in _ASSET_COLUMNS["assets"]},
        "received_by_age": received_by_age,
        "converted_by_age": converted_by_age,
        "converted_share_25_35": rate(converted_by_age[TARGET_AGE_BAND], known_age),
        "organic": organic_counts,
        "organic_assets_by_tier": {
            key: int(organic.get(column) or 0) for key, column in _ASSET_COLUMNS["organic_assets"]
        },
        "share_difference_points": _difference_points(converted, organic_counts),
    }


def organic_baseline(query: ReportQuery) -> list[GroupBy]:
    """What organic clients are grouped by: the report's month and tier, if it groups by them."""
    return [dimension for dimension in query.group_by if dimension in (GroupBy.month, GroupBy.tier)]


def client_structure_of(
    query: ReportQuery, rows: Sequence[Mapping[str, Any]], organic_rows: Sequence[Mapping[str, Any]]
) -> Payload:
    """The report from the referrals' sums per group (``STRUCTURE_SUMS``) and the organic accounts' sums per group
    of ``organic_baseline`` (``ORGANIC_SUMS``)."""
    baseline = organic_baseline(query)
    organic = {group_key(row, baseline): row for row in organic_rows}
    items = []
    for row in rows:
        group = group_of(row, query.group_by)
        items.append(_structure_row(group, row, organic.get(group_key(row, baseline), {})))
    return payload(
        "client_structure",
        {
            **header(query),
            "age_bands": [
                {"band": suffix, "label": AGE_BANDS[band], "target": band == TARGET_AGE_BAND}
                for band, suffix in summary.AGE_BANDS.items()
            ],
            "rows": in_order(items, query.group_by),
            "total": _structure_row(dict(NO_GROUP), summed(rows, STRUCTURE_SUMS), summed(organic_rows, ORGANIC_SUMS)),
        },
    )


async def client_structure_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    """The tiers and ages of the clients referrals brought in, against organic clients of the same period (and
    month, and tier, when grouped so)."""
    source = cohorts_for(query, query.group_by)
    queued = await anything_queued(session)
    statement = aggregate(source, query, tenant, query.group_by, sums(STRUCTURE_SUMS), queued=queued)
    rows = await rows_of(session, statement, "received")
    organic = aggregate(ORGANIC, query, tenant, organic_baseline(query), _ORGANIC_MEASURES, queued=queued)
    return client_structure_of(query, rows, await rows_of(session, organic, "accounts"))


async def client_structure(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> ClientStructureReport:
    """The tiers and ages of the clients referrals brought in, against organic clients of the same period."""
    return ClientStructureReport.model_validate(await client_structure_payload(session, tenant, query))
