"""The reports: funnel, time to convert, fees and value, client structure, a partner's scorecard.

Each report asks ``app.reports.queries`` for sums per group (one or two statements), then works out rates,
percentiles and shares here, with integers and exact fractions; the answer is validated once, as a whole.
``brute_force=True`` computes the same report from the base tables alone: the recount the tests compare with.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from itertools import accumulate
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.core.models import utcnow
from app.core.money import to_fen
from app.core.problems import NotFound
from app.core.tenancy import StaffProof, Tenant
from app.reports import summary
from app.reports.queries import (
    ORGANIC,
    PERCENTILES,
    Histogram,
    Measure,
    ReportQuery,
    aggregate,
    anything_queued,
    by_partner_month,
    cohorts_for,
    corrects,
    partner_month_figures,
    partners_named,
    percentile_ranks,
    rows_of,
    series,
    sums,
)
from app.reports.schemas import (
    AGE_BANDS,
    TARGET_AGE_BAND,
    ClientStructureReport,
    FeesReport,
    FunnelCounts,
    FunnelReport,
    GroupBy,
    ReportGroup,
    ReportPack,
    Scorecard,
    TimeToConvertReport,
)

RATE_PLACES = 4
FUNNEL_STAGES = ("eligible", "account_opened", "funded", "converted")
FUNNEL_COUNTS = tuple(FunnelCounts.model_fields)
MONEY = ("assets_fen", "revenue_fen", "fees_pending_fen", "fees_payable_fen", "fees_statemented_fen", "fees_paid_fen")
TIERS = ("retail", "hnw", "institutional")
STAGES = tuple(summary.STAGES)

_GROUP_FIELDS = {
    GroupBy.partner: ("partner_id", "partner_name"),
    GroupBy.partner_kind: ("partner_kind",),
    GroupBy.program: ("program_id", "program_name"),
    GroupBy.product: ("product_code", "product_name"),
    GroupBy.tier: ("tier",),
    GroupBy.kind: ("kind",),
    GroupBy.month: ("month",),
}
_TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
_NO_GROUP: dict[str, Any] = dict.fromkeys(ReportGroup.model_fields)


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, RATE_PLACES) if denominator else None


def _group_of(row: Mapping[str, Any], group_by: Iterable[GroupBy]) -> dict[str, Any]:
    """The group's fields as the API shows them: months ``YYYY-MM``, no product or tier as ``null``; the
    dimensions not grouped by are ``null`` too (as the model shows them)."""
    group: dict[str, Any] = dict(_NO_GROUP)
    for dimension in group_by:
        for name in _GROUP_FIELDS[dimension]:
            value = row[name]
            if name == "month":
                value = f"{value:%Y-%m}"
            elif name in ("tier", "product_code", "product_name") and not value:
                value = None
            group[name] = value
    if group.get("product_code") is None and "product_name" in group:
        group["product_name"] = None
    return group


def _group_key(row: Mapping[str, Any], group_by: Iterable[GroupBy]) -> tuple[Any, ...]:
    return tuple(row[name] for dimension in group_by for name in _GROUP_FIELDS[dimension])


def _sort_key(group: Mapping[str, Any], group_by: Iterable[GroupBy]) -> tuple[Any, ...]:
    """Rows in a readable order whatever the database's collation: partners and programs by name, tiers by
    rank, months by date; no product or no tier last."""
    key: list[Any] = []
    for dimension in group_by:
        if dimension == GroupBy.partner:
            key += [group["partner_name"] or "", group["partner_id"]]
        elif dimension == GroupBy.program:
            key += [group["program_name"] or "", group["program_id"]]
        elif dimension == GroupBy.tier:
            key.append(_TIER_RANK.get(group["tier"], len(TIERS)))
        else:
            value = group[_GROUP_FIELDS[dimension][0]]
            key.append((value is None, str(value or "")))
    return tuple(key)


def _sorted(items: Iterable[dict[str, Any]], group_by: Sequence[GroupBy]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: _sort_key(item["group"], group_by))


def _summed(rows: Iterable[Mapping[str, Any]], names: Iterable[str]) -> dict[str, int]:
    names = list(names)
    totals = dict.fromkeys(names, 0)
    for row in rows:
        for name in names:
            totals[name] += int(row[name] or 0)
    return totals


Payload = dict[str, Any]  # a report as plain data, shaped as its model: JSON straight from it, or validated


def _payload(report: str, data: Payload) -> Payload:
    return {"report": report, "currency": "CNY", **data}


def _header(query: ReportQuery, group_by: Sequence[GroupBy] | None = None) -> dict[str, Any]:
    return {
        "period": query.period,
        "filters": query.filters,
        "group_by": list(query.group_by if group_by is None else group_by),
        "generated_at": utcnow(),
    }


# --- funnel -------------------------------------------------------------------------------------------------------


def _funnel_row(group: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    counts = {name: int(values[name] or 0) for name in FUNNEL_COUNTS}
    previous = ("received", *FUNNEL_STAGES)
    return {
        "group": group,
        "counts": counts,
        "stage_rates": {stage: rate(counts[stage], counts[previous[i]]) for i, stage in enumerate(FUNNEL_STAGES)},
        "overall_rates": {stage: rate(counts[stage], counts["received"]) for stage in FUNNEL_STAGES},
    }


async def funnel_payload(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> Payload:
    """Referrals received in the period, the stages they reached and the outcomes they are in, per group."""
    source = cohorts_for(query, query.group_by)
    queued = await _queued(session, brute_force)
    statement = aggregate(
        source, query, tenant, query.group_by, sums(FUNNEL_COUNTS), brute_force=brute_force, queued=queued
    )
    rows = await rows_of(session, statement, "received")
    return _payload(
        "funnel",
        {
            **_header(query),
            "rows": _sorted((_funnel_row(_group_of(row, query.group_by), row) for row in rows), query.group_by),
            "total": _funnel_row(dict(_NO_GROUP), _summed(rows, FUNNEL_COUNTS)),
        },
    )


async def monthly_funnel(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> FunnelReport:
    """The funnel by month alone, under the same filters: the trend the charts draw."""
    return await funnel(session, tenant, replace(query, group_by=(GroupBy.month,)))


# --- time to convert ------------------------------------------------------------------------------------------------


def percentile_cont(fraction: float, total: int, low: int | None, high: int | None) -> float | None:
    """What ``percentile_cont(fraction)`` gives over ``total`` values whose ranks ``floor`` and ``ceil`` of
    ``fraction * (total - 1)`` hold ``low`` and ``high``: the same double-precision arithmetic."""
    if not total or low is None:
        return None
    position = fraction * (total - 1)
    if high is None or position == math.floor(position):
        return float(low)
    return float(low) + (float(high) - float(low)) * (position - math.floor(position))


def stage_timing(pieces: Sequence[Histogram]) -> dict[str, Any]:
    """Median and p90 of the days in ``pieces`` (histograms to add up), as ``percentile_cont`` computes them; a
    single series row brings its own."""
    if len(pieces) == 1 and pieces[0].figures is not None:
        total, median, p90 = pieces[0].figures
        return {"referrals": total, "median_days": median, "p90_days": p90}
    if len(pieces) == 1:
        days_of, counts = pieces[0].counts()
    else:
        assert all(piece.packed is not None or piece.figures is None for piece in pieces), "series read unpacked"
        # Days are small integers: add the pieces up in a list indexed by day.
        unpacked = [piece.counts() for piece in pieces]
        merged = [0] * (max((max(piece_days) for piece_days, _ in unpacked if piece_days), default=-1) + 1)
        for piece_days, piece_counts in unpacked:
            for days, count in zip(piece_days, piece_counts, strict=True):
                merged[days] += count
        days_of = [days for days, count in enumerate(merged) if count]
        counts = [merged[days] for days in days_of]
    below = list(accumulate(counts))
    total = below[-1] if below else 0
    if total <= 0:
        return {"referrals": 0, "median_days": None, "p90_days": None}
    timing: dict[str, Any] = {"referrals": total}
    for name, fraction in PERCENTILES.items():
        position = fraction * (total - 1)
        # The value at 0-based rank r: the first day with more than r referrals at or below it.
        low = days_of[bisect_right(below, math.floor(position))]
        high = days_of[bisect_right(below, math.ceil(position))]
        timing[f"{name}_days"] = percentile_cont(fraction, total, low, high)
    return timing


def _timing_from_ranks(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"referrals": 0, "median_days": None, "p90_days": None}
    total = int(row["referrals"])
    return {
        "referrals": total,
        **{
            f"{name}_days": percentile_cont(fraction, total, row[f"{name}_low"], row[f"{name}_high"])
            for name, fraction in PERCENTILES.items()
        },
    }


def _timings_of_histograms(
    histograms: Iterable[Histogram], partners: Mapping[str, Mapping[str, Any]], dimensions: Sequence[GroupBy]
) -> list[dict[str, Any]]:
    """Timing rows per group of ``dimensions`` (partner, partner kind, month): the histograms of each group added
    up, then its percentiles."""
    by_partner = GroupBy.partner in dimensions
    by_kind = GroupBy.partner_kind in dimensions
    by_month = GroupBy.month in dimensions
    grouped: dict[tuple[Any, ...], dict[str, list[Histogram]]] = {}
    examples: dict[tuple[Any, ...], Histogram] = {}
    for histogram in histograms:
        key = (
            histogram.partner_id if by_partner else None,
            partners[histogram.partner_id]["kind"] if by_kind else None,
            histogram.month if by_month else None,
        )
        stages = grouped.get(key)
        if stages is None:
            stages = grouped[key] = {stage: [] for stage in STAGES}
            examples[key] = histogram
        stages[histogram.stage].append(histogram)
    rows = []
    for key, stages in grouped.items():
        example = examples[key]
        fields = {"partner_id": example.partner_id, "month": example.month}
        if by_partner or by_kind:
            partner = partners[example.partner_id]
            fields |= {"partner_name": partner["display_name"], "partner_kind": partner["kind"]}
        rows.append({"group": _group_of(fields, dimensions), **{name: stage_timing(stages[name]) for name in STAGES}})
    return rows


def _timing_of_figures(row: Mapping[str, Any], dimensions: Sequence[GroupBy]) -> dict[str, Any]:
    """A partner-month's timing row from the series' own figures (``queries.partner_month_figures``)."""
    timing: dict[str, Any] = {"group": _group_of(row, dimensions)}
    for stage in STAGES:
        referrals = row[f"{stage}_referrals"]
        timing[stage] = {
            "referrals": referrals or 0,
            "median_days": row[f"{stage}_median_days"] if referrals else None,
            "p90_days": row[f"{stage}_p90_days"] if referrals else None,
        }
    return timing


async def _timings(
    session: AsyncSession,
    tenant: Tenant,
    query: ReportQuery,
    groupings: Sequence[Sequence[GroupBy]],
    brute_force: bool,
    queued: bool,
) -> list[list[dict[str, Any]]]:
    """Timing rows for each of ``groupings``: from the series when they can answer (the alliance-wide ones for
    staff grouping by month alone, else the partner-months, read once for every grouping), else from the
    histogram's ranks in SQL."""
    answers = []
    if not brute_force and by_partner_month(query, groupings):
        filters = query.filters
        alliance_wide = tenant.partner_id is None and not filters.partner_ids and not filters.partner_kinds
        histograms: list[Histogram] | None = None
        partners: dict[str, Any] = {}
        # Each group one partner-month, nothing correcting the series: their own figures will do.
        by_partner_months = [dims for dims in groupings if not (alliance_wide and set(dims) <= {GroupBy.month})]
        one_each = all({GroupBy.partner, GroupBy.month} <= set(dims) for dims in by_partner_months)
        packed = corrects(query, queued) or not one_each
        for dimensions in groupings:
            if alliance_wide and set(dimensions) <= {GroupBy.month}:
                monthly = await series(session, tenant, query, queued=queued, alliance=True)
                answers.append(_timings_of_histograms(monthly, {}, dimensions))
                continue
            if not packed:
                statement = partner_month_figures(query, tenant, STAGES)
                answers.append(
                    [_timing_of_figures(row, dimensions) for row in await rows_of(session, statement, "month")]
                )
                continue
            if histograms is None:
                histograms = await series(session, tenant, query, queued=queued, packed=packed)
                partners = await partners_named(session, (histogram.partner_id for histogram in histograms))
            answers.append(_timings_of_histograms(histograms, partners, dimensions))
    else:
        for dimensions in groupings:
            statement = percentile_ranks(query, tenant, dimensions, brute_force, queued)
            by_group: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = defaultdict(dict)
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in await rows_of(session, statement, "referrals"):
                key = _group_key(row, dimensions)
                by_group[key][row["stage"]] = row
                groups.setdefault(key, _group_of(row, dimensions))
            answers.append(
                [
                    {"group": groups[key], **{stage: _timing_from_ranks(stages.get(stage)) for stage in STAGES}}
                    for key, stages in by_group.items()
                ]
            )
    return [[row for row in rows if any(row[stage]["referrals"] for stage in STAGES)] for rows in answers]


async def _queued(session: AsyncSession, brute_force: bool) -> bool:
    """Whether the report must correct the rollups for a queue (asked once, when the report begins)."""
    return not brute_force and await anything_queued(session)


def _no_timing() -> dict[str, Any]:
    return {"group": dict(_NO_GROUP), **{stage: _timing_from_ranks(None) for stage in STAGES}}


async def time_to_convert_payload(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> Payload:
    """Median and 90th percentile of the whole days from receipt to account opened, funded and converted."""
    queued = await _queued(session, brute_force)
    rows, totals = await _timings(session, tenant, query, [query.group_by, ()], brute_force, queued)
    return _payload(
        "time_to_convert",
        {**_header(query), "rows": _sorted(rows, query.group_by), "total": totals[0] if totals else _no_timing()},
    )


# --- fees ---------------------------------------------------------------------------------------------------------


def _fees_row(group: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    money = {name: int(values[name] or 0) for name in MONEY}
    accrued = money["fees_pending_fen"] + money["fees_payable_fen"] + money["fees_statemented_fen"]
    accrued += money["fees_paid_fen"]
    funded = int(values["funded"] or 0)
    return {
        "group": group,
        "funded_accounts": funded,
        "converted": int(values["converted"] or 0),
        "fees_accrued_fen": accrued,
        "cost_per_funded_account_fen": to_fen(Decimal(accrued) / funded) if funded else None,
        "revenue_to_fee_ratio": rate(money["revenue_fen"], accrued),
        **money,
    }


async def fees_payload(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> Payload:
    """Assets, revenue and fees of the referrals received in the period; cost per funded account."""
    names = (*MONEY, "funded", "converted")
    source = cohorts_for(query, query.group_by)
    queued = await _queued(session, brute_force)
    statement = aggregate(source, query, tenant, query.group_by, sums(names), brute_force=brute_force, queued=queued)
    rows = await rows_of(session, statement, "funded")
    return _payload(
        "fees",
        {
            **_header(query),
            "rows": _sorted((_fees_row(_group_of(row, query.group_by), row) for row in rows), query.group_by),
            "total": _fees_row(dict(_NO_GROUP), _summed(rows, names)),
        },
    )


# --- client structure ----------------------------------------------------------------------------------------------


_STRUCTURE_SUMS = (
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
_ORGANIC_SUMS = tuple(name for name in _ORGANIC_MEASURES if name != "accounts")


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


def _tier_counts(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
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
    converted, organic_counts = _tier_counts(values, "converted"), _tier_counts(organic, "organic")
    received_by_age = {suffix: int(values.get(column) or 0) for suffix, column in _AGE_COLUMNS["received"]}
    converted_by_age = {suffix: int(values.get(column) or 0) for suffix, column in _AGE_COLUMNS["converted"]}
    known_age = sum(converted_by_age.values()) - converted_by_age["none"]
    return {
        "group": group,
        "converted": converted,
        "funded": _tier_counts(values, "funded"),
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


async def client_structure_payload(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> Payload:
    """The tiers and ages of the clients referrals brought in, against organic clients of the same period (and
    month, and tier, when grouped so)."""
    source = cohorts_for(query, query.group_by)
    measures = sums(("received", *_STRUCTURE_SUMS))
    queued = await _queued(session, brute_force)
    statement = aggregate(source, query, tenant, query.group_by, measures, brute_force=brute_force, queued=queued)
    rows = await rows_of(session, statement, "received")
    baseline = [dimension for dimension in query.group_by if dimension in (GroupBy.month, GroupBy.tier)]
    organic_rows = await rows_of(
        session,
        aggregate(ORGANIC, query, tenant, baseline, _ORGANIC_MEASURES, brute_force=brute_force, queued=queued),
        "accounts",
    )
    organic = {_group_key(row, baseline): row for row in organic_rows}
    items = []
    for row in rows:
        group = _group_of(row, query.group_by)
        items.append(_structure_row(group, row, organic.get(_group_key(row, baseline), {})))
    return _payload(
        "client_structure",
        {
            **_header(query),
            "age_bands": [
                {"band": suffix, "label": AGE_BANDS[band], "target": band == TARGET_AGE_BAND}
                for band, suffix in summary.AGE_BANDS.items()
            ],
            "rows": _sorted(items, query.group_by),
            "total": _structure_row(
                dict(_NO_GROUP), _summed(rows, _STRUCTURE_SUMS), _summed(organic_rows, _ORGANIC_SUMS)
            ),
        },
    )


# --- scorecard ----------------------------------------------------------------------------------------------------

# (name, label, unit, basis): volumes are compared with the average partner, the rest pooled.
_SCORECARD = (
    ("received", "Referrals received", "count", "per_partner"),
    ("eligible_rate", "Eligible / received", "rate", "pooled"),
    ("opened_rate", "Account opened / received", "rate", "pooled"),
    ("funded_rate", "Funded / received", "rate", "pooled"),
    ("conversion_rate", "Converted / received", "rate", "pooled"),
    ("median_days_to_open", "Median days to account opened", "days", "pooled"),
    ("median_days_to_fund", "Median days to funded", "days", "pooled"),
    ("median_days_to_convert", "Median days to converted", "days", "pooled"),
    ("p90_days_to_convert", "90th percentile days to converted", "days", "pooled"),
    ("funded", "Funded accounts", "count", "per_partner"),
    ("converted", "Converted referrals", "count", "per_partner"),
    ("assets_fen", "Assets brought in", "fen", "per_partner"),
    ("revenue_fen", "Revenue recorded", "fen", "per_partner"),
    ("fees_accrued_fen", "Fees accrued", "fen", "per_partner"),
    ("fees_paid_fen", "Fees paid", "fen", "per_partner"),
    ("cost_per_funded_account_fen", "Cost per funded account", "fen", "pooled"),
    ("revenue_to_fee_ratio", "Revenue / fees", "ratio", "pooled"),
    ("share_hnw_institutional", "HNW + institutional among converted", "rate", "pooled"),
)
_SCORE_MEASURES = sums((*FUNNEL_COUNTS, *MONEY, *(f"converted_{tier}" for tier in TIERS)))


def _scores(totals: Mapping[str, int], timing: Mapping[str, Any]) -> dict[str, float | None]:
    fees_row = _fees_row(dict(_NO_GROUP), totals)
    received = totals["received"]
    return {
        "received": received,
        "eligible_rate": rate(totals["eligible"], received),
        "opened_rate": rate(totals["account_opened"], received),
        "funded_rate": rate(totals["funded"], received),
        "conversion_rate": rate(totals["converted"], received),
        "median_days_to_open": timing["account_opened"]["median_days"],
        "median_days_to_fund": timing["funded"]["median_days"],
        "median_days_to_convert": timing["converted"]["median_days"],
        "p90_days_to_convert": timing["converted"]["p90_days"],
        "funded": totals["funded"],
        "converted": totals["converted"],
        "assets_fen": totals["assets_fen"],
        "revenue_fen": totals["revenue_fen"],
        "fees_accrued_fen": fees_row["fees_accrued_fen"],
        "fees_paid_fen": totals["fees_paid_fen"],
        "cost_per_funded_account_fen": fees_row["cost_per_funded_account_fen"],
        "revenue_to_fee_ratio": fees_row["revenue_to_fee_ratio"],
        "share_hnw_institutional": _tier_counts({**totals, "converted_unknown": 0}, "converted")[
            "share_hnw_institutional"
        ],
    }


async def _scorecard_timings(
    session: AsyncSession, everyone: Tenant, query: ReportQuery, partner: Partner, brute_force: bool, queued: bool
) -> dict[str, dict[str, Any]]:
    """Days to each stage for the partner, its peers and the alliance."""
    narrowed = {
        "partner": replace(query, filters=query.filters.model_copy(update={"partner_ids": [partner.id]})),
        "peers": replace(query, filters=query.filters.model_copy(update={"partner_kinds": [partner.kind]})),
        "alliance": query,
    }
    timings = {}
    for who, narrowed_query in narrowed.items():
        [rows] = await _timings(session, everyone, narrowed_query, [()], brute_force, queued)
        timings[who] = rows[0] if rows else _no_timing()
    return timings


async def scorecard_payload(
    session: AsyncSession, staff: StaffProof, partner_id: str, query: ReportQuery, *, brute_force: bool = False
) -> Payload:
    """One partner against the alliance and against its peers (partners of its kind) over the same period and
    filters: volumes against the average partner with referrals in the period; rates, days and ratios pooled."""
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("No such partner.")
    alliance = replace(
        query, filters=query.filters.model_copy(update={"partner_ids": [], "partner_kinds": []}), group_by=()
    )
    dimensions = [GroupBy.partner, GroupBy.partner_kind]
    queued = await _queued(session, brute_force)
    statement = aggregate(
        cohorts_for(alliance, dimensions), alliance, Tenant.everyone(staff), dimensions, _SCORE_MEASURES,
        brute_force=brute_force, queued=queued,
    )  # fmt: skip
    per_partner = {row["partner_id"]: row for row in await rows_of(session, statement, "received")}
    peers = [pid for pid, row in per_partner.items() if row["partner_kind"] == partner.kind]
    names = tuple(_SCORE_MEASURES)
    totals = {
        "partner": _summed([per_partner[partner.id]] if partner.id in per_partner else [], names),
        "peers": _summed((per_partner[pid] for pid in peers), names),
        "alliance": _summed(per_partner.values(), names),
    }
    timings = await _scorecard_timings(session, Tenant.everyone(staff), alliance, partner, brute_force, queued)
    scores = {who: _scores(totals[who], timings[who]) for who in totals}
    counts = {"partner": 1, "peers": len(peers), "alliance": len(per_partner)}

    def compared(who: str, name: str, basis: str) -> float | None:
        value = scores[who][name]
        if who == "partner" or basis == "pooled" or value is None:
            return value
        return round(value / counts[who], 2) if counts[who] else None

    metrics = [
        {
            "name": name,
            "label": label,
            "unit": unit,
            "basis": basis,
            **{who: compared(who, name, basis) for who in ("partner", "alliance", "peers")},
        }
        for name, label, unit, basis in _SCORECARD
    ]
    return _payload(
        "scorecard",
        {
            **_header(alliance, []),
            "partner": {"id": partner.id, "name": partner.display_name, "kind": partner.kind},
            "partners_in_alliance": counts["alliance"],
            "partners_in_peers": counts["peers"],
            "metrics": metrics,
        },
    )


async def funnel(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> FunnelReport:
    """Referrals received in the period, the stages they reached and the outcomes they are in, per group."""
    return FunnelReport.model_validate(await funnel_payload(session, tenant, query, brute_force=brute_force))


async def time_to_convert(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> TimeToConvertReport:
    """Median and 90th percentile of the whole days from receipt to account opened, funded and converted."""
    payload = await time_to_convert_payload(session, tenant, query, brute_force=brute_force)
    return TimeToConvertReport.model_validate(payload)


async def fees(session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False) -> FeesReport:
    """Assets, revenue and fees of the referrals received in the period; cost per funded account."""
    return FeesReport.model_validate(await fees_payload(session, tenant, query, brute_force=brute_force))


async def client_structure(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> ClientStructureReport:
    """The tiers and ages of the clients referrals brought in, against organic clients of the same period."""
    payload = await client_structure_payload(session, tenant, query, brute_force=brute_force)
    return ClientStructureReport.model_validate(payload)


async def scorecard(
    session: AsyncSession, staff: StaffProof, partner_id: str, query: ReportQuery, *, brute_force: bool = False
) -> Scorecard:
    """One partner against the alliance and against its peers over the same period and filters."""
    return Scorecard.model_validate(await scorecard_payload(session, staff, partner_id, query, brute_force=brute_force))


async def pack(session: AsyncSession, staff: StaffProof, query: ReportQuery) -> ReportPack:
    """Every staff report over the same period, filters and grouping."""
    everyone = Tenant.everyone(staff)
    return ReportPack(
        funnel=await funnel(session, everyone, query),
        time_to_convert=await time_to_convert(session, everyone, query),
        fees=await fees(session, everyone, query),
        client_structure=await client_structure(session, everyone, query),
    )
