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
from fractions import Fraction
from itertools import accumulate
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Partner
from app.core.models import utcnow
from app.core.money import to_fen
from app.core.problems import NotFound
from app.core.tenancy import Tenant
from app.reports import summary
from app.reports.queries import (
    ORGANIC,
    PERCENTILES,
    Histogram,
    Measure,
    ReportQuery,
    aggregate,
    by_partner_month,
    cohorts_for,
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


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, RATE_PLACES) if denominator else None


def _group_of(row: Mapping[str, Any], group_by: Iterable[GroupBy]) -> dict[str, Any]:
    """The group's fields as the API shows them: months ``YYYY-MM``, no product or tier as ``null``."""
    group: dict[str, Any] = {}
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


async def funnel(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> FunnelReport:
    """Referrals received in the period, the stages they reached and the outcomes they are in, per group."""
    source = cohorts_for(query, query.group_by)
    statement = aggregate(source, query, tenant, query.group_by, sums(FUNNEL_COUNTS), brute_force=brute_force)
    rows = await rows_of(session, statement, "received")
    return FunnelReport.model_validate(
        {
            **_header(query),
            "rows": _sorted((_funnel_row(_group_of(row, query.group_by), row) for row in rows), query.group_by),
            "total": _funnel_row({}, _summed(rows, FUNNEL_COUNTS)),
        }
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


Piece = tuple[Sequence[int], Sequence[int]]  # a histogram: days ascending, and the referrals of each


def stage_timing(pieces: Sequence[Piece]) -> dict[str, Any]:
    """Median and p90 of the days in ``pieces`` (histograms to add up), as ``percentile_cont`` computes them."""
    if len(pieces) == 1:
        days_of, counts = pieces[0]
    else:
        # Days are small integers: add the pieces up in a list indexed by day.
        merged = [0] * (max((max(piece_days) for piece_days, _ in pieces if piece_days), default=-1) + 1)
        for piece_days, piece_counts in pieces:
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
    grouped: dict[tuple[Any, ...], dict[str, list[Piece]]] = defaultdict(lambda: defaultdict(list))
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for histogram in histograms:
        partner = partners[histogram.partner_id]
        fields = {
            "partner_id": histogram.partner_id,
            "partner_name": partner["display_name"],
            "partner_kind": partner["kind"],
            "month": histogram.month,
        }
        key = _group_key(fields, dimensions)
        grouped[key][histogram.stage].append((histogram.days, histogram.referrals))
        if key not in groups:
            groups[key] = _group_of(fields, dimensions)
    return [
        {"group": groups[key], **{stage: stage_timing(stages.get(stage, [])) for stage in STAGES}}
        for key, stages in grouped.items()
    ]


async def _timings(
    session: AsyncSession,
    tenant: Tenant,
    query: ReportQuery,
    groupings: Sequence[Sequence[GroupBy]],
    brute_force: bool,
) -> list[list[dict[str, Any]]]:
    """Timing rows for each of ``groupings``: from the partner-month series when they can answer (one read for
    every grouping), else from the histogram's ranks in SQL."""
    if not brute_force and by_partner_month(query, groupings):
        histograms = await series(session, tenant, query)
        partners = await partners_named(session, (histogram.partner_id for histogram in histograms))
        answers = [_timings_of_histograms(histograms, partners, dimensions) for dimensions in groupings]
    else:
        answers = []
        for dimensions in groupings:
            found = await rows_of(session, percentile_ranks(query, tenant, dimensions, brute_force), "referrals")
            by_group: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = defaultdict(dict)
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in found:
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


def _no_timing() -> dict[str, Any]:
    return {"group": {}, **{stage: _timing_from_ranks(None) for stage in STAGES}}


async def time_to_convert(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> TimeToConvertReport:
    """Median and 90th percentile of the whole days from receipt to account opened, funded and converted."""
    rows, totals = await _timings(session, tenant, query, [query.group_by, ()], brute_force)
    return TimeToConvertReport.model_validate(
        {**_header(query), "rows": _sorted(rows, query.group_by), "total": totals[0] if totals else _no_timing()}
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


async def fees(session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False) -> FeesReport:
    """Assets, revenue and fees of the referrals received in the period; cost per funded account."""
    names = (*MONEY, "funded", "converted")
    source = cohorts_for(query, query.group_by)
    statement = aggregate(source, query, tenant, query.group_by, sums(names), brute_force=brute_force)
    rows = await rows_of(session, statement, "funded")
    return FeesReport.model_validate(
        {
            **_header(query),
            "rows": _sorted((_fees_row(_group_of(row, query.group_by), row) for row in rows), query.group_by),
            "total": _fees_row({}, _summed(rows, names)),
        }
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


def _tier_counts(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    retail = int(values.get(f"{prefix}_retail") or 0)
    hnw = int(values.get(f"{prefix}_hnw") or 0)
    institutional = int(values.get(f"{prefix}_institutional") or 0)
    unknown = int(values.get(f"{prefix}_unknown") or 0)
    return {
        "retail": retail,
        "hnw": hnw,
        "institutional": institutional,
        "unknown": unknown,
        "share_hnw_institutional": rate(hnw + institutional, retail + hnw + institutional),
    }


def _upper_share(counts: Mapping[str, int]) -> Fraction | None:
    """HNW + institutional among the clients with a tier, exactly."""
    known = counts["retail"] + counts["hnw"] + counts["institutional"]
    return Fraction(counts["hnw"] + counts["institutional"], known) if known else None


def _structure_row(group: dict[str, Any], values: Mapping[str, int], organic: Mapping[str, int]) -> dict[str, Any]:
    converted, organic_counts = _tier_counts(values, "converted"), _tier_counts(organic, "organic")
    referred_share = _upper_share(converted)
    organic_share = _upper_share(organic_counts)
    difference = None
    if referred_share is not None and organic_share is not None:
        difference = round(float((referred_share - organic_share) * 100), 2)
    received = {suffix: int(values.get(f"received_age_{suffix}") or 0) for suffix in summary.AGE_BANDS.values()}
    converted_by_age = {
        suffix: int(values.get(f"converted_age_{suffix}") or 0) for suffix in summary.AGE_BANDS.values()
    }
    known_age = sum(count for suffix, count in converted_by_age.items() if suffix != "none")
    return {
        "group": group,
        "converted": converted,
        "funded": _tier_counts(values, "funded"),
        "assets_by_tier": {f"{tier}_fen": int(values.get(f"assets_{tier}_fen") or 0) for tier in TIERS},
        "received_by_age": received,
        "converted_by_age": converted_by_age,
        "converted_share_25_35": rate(converted_by_age[TARGET_AGE_BAND], known_age),
        "organic": organic_counts,
        "organic_assets_by_tier": {f"{tier}_fen": int(organic.get(f"organic_assets_{tier}") or 0) for tier in TIERS},
        "share_difference_points": difference,
    }


async def client_structure(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, *, brute_force: bool = False
) -> ClientStructureReport:
    """The tiers and ages of the clients referrals brought in, against organic clients of the same period (and
    month, and tier, when grouped so)."""
    source = cohorts_for(query, query.group_by)
    measures = sums(("received", *_STRUCTURE_SUMS))
    statement = aggregate(source, query, tenant, query.group_by, measures, brute_force=brute_force)
    rows = await rows_of(session, statement, "received")
    baseline = [dimension for dimension in query.group_by if dimension in (GroupBy.month, GroupBy.tier)]
    organic_rows = await rows_of(
        session, aggregate(ORGANIC, query, tenant, baseline, _ORGANIC_MEASURES, brute_force=brute_force), "accounts"
    )
    organic = {_group_key(row, baseline): row for row in organic_rows}
    items = []
    for row in rows:
        group = _group_of(row, query.group_by)
        items.append(_structure_row(group, row, organic.get(_group_key(row, baseline), {})))
    return ClientStructureReport.model_validate(
        {
            **_header(query),
            "age_bands": [
                {"band": suffix, "label": AGE_BANDS[band], "target": band == TARGET_AGE_BAND}
                for band, suffix in summary.AGE_BANDS.items()
            ],
            "rows": _sorted(items, query.group_by),
            "total": _structure_row({}, _summed(rows, _STRUCTURE_SUMS), _summed(organic_rows, _ORGANIC_SUMS)),
        }
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
    fees_row = _fees_row({}, totals)
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
    session: AsyncSession, query: ReportQuery, partner: Partner, brute_force: bool
) -> dict[str, dict[str, Any]]:
    """Days to each stage for the partner, its peers and the alliance: one read of the series when they can
    answer, else three histogram queries."""
    everyone = Tenant.everyone()
    narrowed = {
        "partner": replace(query, filters=query.filters.model_copy(update={"partner_ids": [partner.id]})),
        "peers": replace(query, filters=query.filters.model_copy(update={"partner_kinds": [partner.kind]})),
        "alliance": query,
    }
    if not brute_force and by_partner_month(query, [()]):
        histograms = await series(session, everyone, query)
        partners = await partners_named(session, (histogram.partner_id for histogram in histograms))
        chosen = {
            "partner": [h for h in histograms if h.partner_id == partner.id],
            "peers": [h for h in histograms if partners[h.partner_id]["kind"] == partner.kind],
            "alliance": histograms,
        }
        timings = {who: _timings_of_histograms(found, partners, ()) for who, found in chosen.items()}
    else:
        timings = {
            who: (await _timings(session, everyone, narrowed_query, [()], brute_force))[0]
            for who, narrowed_query in narrowed.items()
        }
    return {who: (rows[0] if rows else _no_timing()) for who, rows in timings.items()}


async def scorecard(
    session: AsyncSession, partner_id: str, query: ReportQuery, *, brute_force: bool = False
) -> Scorecard:
    """One partner against the alliance and against its peers (partners of its kind) over the same period and
    filters: volumes against the average partner with referrals in the period; rates, days and ratios pooled."""
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("No such partner.")
    alliance = replace(
        query, filters=query.filters.model_copy(update={"partner_ids": [], "partner_kinds": []}), group_by=()
    )
    dimensions = [GroupBy.partner, GroupBy.partner_kind]
    statement = aggregate(
        cohorts_for(alliance, dimensions), alliance, Tenant.everyone(), dimensions, _SCORE_MEASURES,
        brute_force=brute_force,
    )  # fmt: skip
    per_partner = {row["partner_id"]: row for row in await rows_of(session, statement, "received")}
    peers = [pid for pid, row in per_partner.items() if row["partner_kind"] == partner.kind]
    names = tuple(_SCORE_MEASURES)
    totals = {
        "partner": _summed([per_partner[partner.id]] if partner.id in per_partner else [], names),
        "peers": _summed((per_partner[pid] for pid in peers), names),
        "alliance": _summed(per_partner.values(), names),
    }
    timings = await _scorecard_timings(session, alliance, partner, brute_force)
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
    return Scorecard.model_validate(
        {
            **_header(alliance, []),
            "partner": {"id": partner.id, "name": partner.display_name, "kind": partner.kind},
            "partners_in_alliance": counts["alliance"],
            "partners_in_peers": counts["peers"],
            "metrics": metrics,
        }
    )


async def pack(session: AsyncSession, query: ReportQuery) -> ReportPack:
    """Every staff report over the same period, filters and grouping."""
    everyone = Tenant.everyone()
    return ReportPack(
        funnel=await funnel(session, everyone, query),
        time_to_convert=await time_to_convert(session, everyone, query),
        fees=await fees(session, everyone, query),
        client_structure=await client_structure(session, everyone, query),
    )
