"""Time to convert: median and 90th percentile of the whole days from receipt to account opened, funded and
converted, as PostgreSQL's ``percentile_cont`` gives them."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import Tenant
from app.reports.queries import (
    PERCENTILES,
    Histogram,
    ReportQuery,
    anything_queued,
    by_partner_month,
    corrects,
    partner_month_figures,
    partners_named,
    percentile_ranks,
    rows_of,
    series,
)
from app.reports.schemas import GroupBy, TimeToConvertReport
from app.reports.shaping import NO_GROUP, STAGES, Payload, group_key, group_of, header, in_order, payload


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
        rows.append({"group": group_of(fields, dimensions), **{name: stage_timing(stages[name]) for name in STAGES}})
    return rows


def _timing_of_figures(row: Mapping[str, Any], dimensions: Sequence[GroupBy]) -> dict[str, Any]:
    """A partner-month's timing row from the series' own figures (``queries.partner_month_figures``)."""
    timing: dict[str, Any] = {"group": group_of(row, dimensions)}
    for stage in STAGES:
        referrals = row[f"{stage}_referrals"]
        timing[stage] = {
            "referrals": referrals or 0,
            "median_days": row[f"{stage}_median_days"] if referrals else None,
            "p90_days": row[f"{stage}_p90_days"] if referrals else None,
        }
    return timing


async def timings(
    session: AsyncSession,
    tenant: Tenant,
    query: ReportQuery,
    groupings: Sequence[Sequence[GroupBy]],
    queued: bool,
) -> list[list[dict[str, Any]]]:
    """Timing rows for each of ``groupings``: from the series when they can answer (the alliance-wide ones for
    staff grouping by month alone, else the partner-months, read once for every grouping), else from the
    histogram's ranks in SQL."""
    answers = []
    if by_partner_month(query, groupings):
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
            statement = percentile_ranks(query, tenant, dimensions, queued)
            by_group: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = defaultdict(dict)
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in await rows_of(session, statement, "referrals"):
                key = group_key(row, dimensions)
                by_group[key][row["stage"]] = row
                groups.setdefault(key, group_of(row, dimensions))
            answers.append(
                [
                    {"group": groups[key], **{stage: _timing_from_ranks(stages.get(stage)) for stage in STAGES}}
                    for key, stages in by_group.items()
                ]
            )
    return [[row for row in rows if any(row[stage]["referrals"] for stage in STAGES)] for rows in answers]


def no_timing() -> dict[str, Any]:
    return {"group": dict(NO_GROUP), **{stage: _timing_from_ranks(None) for stage in STAGES}}


def time_to_convert_of(query: ReportQuery, rows: Sequence[dict[str, Any]], totals: Sequence[dict[str, Any]]) -> Payload:
    """The report from its timing rows per group of ``query.group_by`` and over everything (one row, or none)."""
    return payload(
        "time_to_convert",
        {**header(query), "rows": in_order(rows, query.group_by), "total": totals[0] if totals else no_timing()},
    )


async def time_to_convert_payload(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> Payload:
    """Median and 90th percentile of the whole days from receipt to account opened, funded and converted."""
    queued = await anything_queued(session)
    rows, totals = await timings(session, tenant, query, [query.group_by, ()], queued)
    return time_to_convert_of(query, rows, totals)


async def time_to_convert(session: AsyncSession, tenant: Tenant, query: ReportQuery) -> TimeToConvertReport:
    """Median and 90th percentile of the whole days from receipt to account opened, funded and converted."""
    return TimeToConvertReport.model_validate(await time_to_convert_payload(session, tenant, query))
