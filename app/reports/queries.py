"""What a report reads, in SQL: the period, the filters, and the sums over the summary (``app.reports.summary``).

A report sums contributions from up to four parts, in one statement (one snapshot):

* the monthly rollups, for the whole months of the period;
* the stored facts of the days at either end of the period that are not a whole month;
* minus the stored facts of the referrals queued since the last refresh, plus their facts recomputed now, for
  the period: so the sum is exact at the statement's snapshot whether or not the queue has been folded.

When the queue is empty as a report begins, the last two parts are left out: the report reads the summary as
last folded, which then holds every change committed before it began.

What is kept by partner and month (``report_partner_months``, ``report_duration_series``) answers the reports
grouped and filtered by partner, partner kind and month alone; the finer rollups answer the rest.

Sums are taken by the key columns alone (ids: no text to sort), then joined to the names. Partners see their own
referrals only: every query passes through the one scoping helper (``app.core.tenancy.scoped``), and every part
filters on the caller's partner as well, by the tenant rule its source cannot be built without
(``app.reports.sources``).
"""

from __future__ import annotations

import calendar
import re
import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import BundledProduct, Partner, Program
from app.core.problems import Unprocessable
from app.core.tenancy import Tenant, scoped
from app.reports import summary
from app.reports.models import DurationSeries
from app.reports.schemas import GroupBy, ReportFilters, ReportPeriod
from app.reports.sources import COHORTS, DURATIONS, PARTNER_MONTHS, Source

MAX_PERIOD_DAYS = 3 * 366 + 1
# Days outside these are no referral's: refused rather than carried to the calendar's ends, where month arithmetic
# overflows.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
_BIND = re.compile(r"(?<![:\w]):(\w+)")  # a bound parameter in SQL text, as SQLAlchemy's text() reads them

PARTNERS = Partner.__table__  # type: ignore[attr-defined]
PROGRAMS = Program.__table__  # type: ignore[attr-defined]
PRODUCTS = BundledProduct.__table__  # type: ignore[attr-defined]
SERIES = DurationSeries.__table__  # type: ignore[attr-defined]


class InvalidReportQuery(Unprocessable):
    slug, title = "invalid-report-query", "Invalid report query"


@dataclass(frozen=True)
class ReportQuery:
    """What a report covers: a period of days (business timezone, both ends included), filters, the grouping."""

    start: date
    end: date
    filters: ReportFilters = field(default_factory=ReportFilters)
    group_by: tuple[GroupBy, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidReportQuery("The period ends before it starts.")
        if (self.end - self.start).days >= MAX_PERIOD_DAYS:
            raise InvalidReportQuery("A report covers at most three years.")
        if self.start < EARLIEST_DAY or self.end > LATEST_DAY:
            raise InvalidReportQuery(f"Reports cover {EARLIEST_DAY} to {LATEST_DAY}.")

    @property
    def period(self) -> ReportPeriod:
        return ReportPeriod(start=self.start, end=self.end)


def default_period(today: date) -> tuple[date, date]:
    """The twelve months up to today: from the first day of the month eleven months back."""
    month = today.month - 11
    year = today.year + (month - 1) // 12
    if year < date.min.year:  # a period ending in the first year of the calendar starts with it
        return date.min, today
    return date(year, (month - 1) % 12 + 1, 1), today


def _month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


@dataclass(frozen=True)
class Split:
    """The whole months inside a period (first days of the first and last), and whether days remain around."""

    whole: tuple[date, date] | None
    partial: bool

    @classmethod
    def of(cls, start: date, end: date) -> Split:
        first = start if start.day == 1 else _month_end(start) + timedelta(days=1)
        last = end.replace(day=1) if _month_end(end) == end else (end.replace(day=1) - timedelta(days=1)).replace(day=1)
        if first > last:
            return cls(None, True)
        return cls((first, last), start != first or _month_end(last) != end)


def _conditions(source: Source, filters: ReportFilters, tenant: Tenant) -> tuple[list[str], dict[str, Any]]:
    """The filters as conditions every part applies on its own rows (so that each part reads only those)."""
    values: dict[str, list[str]] = {
        "partner_id": filters.partner_ids,
        "program_id": filters.program_ids,
        "kind": [kind.value for kind in filters.kinds],
        "tier": [tier.value for tier in filters.tiers],
        "product_code": filters.product_codes,
    }
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for column, wanted in values.items():
        if wanted and column in source.key:
            conditions.append(f"f.{column} = ANY(:filter_{column})")
            params[f"filter_{column}"] = list(wanted)
    if filters.partner_kinds and "partner_id" in source.key:
        conditions.append("f.partner_id IN (SELECT id FROM partners WHERE kind = ANY(:filter_partner_kind))")
        params["filter_partner_kind"] = [kind.value for kind in filters.partner_kinds]
    tenant_condition = source.tenant_condition(tenant)
    if tenant_condition is not None:
        conditions.append(tenant_condition)
        params["tenant_partner_id"] = tenant.partner_id
    return conditions, params


def _fact_part(source: Source, relation: str, sign: int, conditions: list[str]) -> str:
    keys = ", ".join(source.expanded.get(name, f"f.{name}") for name in source.key)
    measures = ", ".join(
        f"{expression if sign > 0 else f'-({expression})'} AS {name}" for name, expression in source.measures.items()
    )
    where = " AND ".join([source.keep, *conditions])
    return f"SELECT {keys}, {measures} FROM {relation} f {source.expand} WHERE {where}"


def corrects(query: ReportQuery, queued: bool) -> bool:
    """Whether anything corrects the whole months' rollups: days around them, or a queue."""
    return queued or Split.of(query.start, query.end).partial


def contributions(
    source: Source,
    query: ReportQuery,
    tenant: Tenant,
    *,
    rollup: bool = True,
    queued: bool = True,
) -> sa.Subquery:
    """The UNION ALL of the parts for the period, filtered. Without ``rollup``, only what corrects the whole
    months: the days outside them and the queue. Without ``queued`` (the queue was empty when the report
    began), no correction for the queue."""
    conditions, params = _conditions(source, query.filters, tenant)
    params |= {"period_start": query.start, "period_end": query.end}
    in_period = f"f.{source.day} BETWEEN :period_start AND :period_end"
    parts = []
    split = Split.of(query.start, query.end)
    in_whole = "false"
    if split.whole is not None and (rollup or split.partial):
        params |= {"whole_first": split.whole[0], "whole_last": split.whole[1]}
        in_whole = f"f.{source.month} BETWEEN :whole_first AND :whole_last"
        if rollup:
            where = " AND ".join([in_whole, *conditions])
            parts.append(f"SELECT {', '.join(source.columns)} FROM {source.rollup} f WHERE {where}")
    if split.partial:
        parts.append(_fact_part(source, source.facts, 1, [in_period, f"NOT ({in_whole})", *conditions]))
    if queued:
        parts.append(_fact_part(source, source.facts, -1, [source.pending, in_period, *conditions]))
        parts.append(_fact_part(source, f"({source.fresh})", 1, [in_period, *conditions]))
    types: dict[str, sa.types.TypeEngine[Any]] = {source.month: sa.Date(), "days": sa.Integer()}
    columns = [
        sa.column(name, types.get(name, sa.BigInteger() if name in source.measures else sa.String()))
        for name in source.columns
    ]
    sql = "\nUNION ALL\n".join(parts)
    used = set(_BIND.findall(sql))
    bound = {name: value for name, value in params.items() if name in used}
    return sa.text(sql).bindparams(**bound).columns(*columns).subquery("c")


# --- sums per group -----------------------------------------------------------------------------------------------

_BASE_COLUMNS = {
    GroupBy.partner: "partner_id",
    GroupBy.partner_kind: "partner_id",
    GroupBy.program: "program_id",
    GroupBy.product: "product_code",
    GroupBy.tier: "tier",
    GroupBy.kind: "kind",
}
Measure = Callable[[sa.ColumnCollection[str, Any]], sa.ColumnElement[Any]]


def _base_column(source: Source, dimension: GroupBy | str) -> str:
    if dimension == GroupBy.month:
        return source.month
    if isinstance(dimension, GroupBy):
        return _BASE_COLUMNS[dimension]
    return dimension


def sums(names: Iterable[str]) -> dict[str, Measure]:
    return {name: (lambda c, name=name: func.sum(c[name])) for name in names}  # type: ignore[misc]


def aggregate(
    source: Source,
    query: ReportQuery,
    tenant: Tenant,
    dimensions: Sequence[GroupBy | str],
    measures: Mapping[str, Measure],
    *,
    queued: bool = True,
) -> Select[Any]:
    """``measures`` (aggregates over the source's columns) per group of ``dimensions``: ``GroupBy`` members, or
    key columns of the source such as ``stage``. Summed by the key columns first, then joined to the names: the
    joins and the roll-up of partners into kinds see the groups, not the rollup's rows."""
    relation = contributions(source, query, tenant, queued=queued)
    c = relation.c
    base = list(dict.fromkeys(_base_column(source, dimension) for dimension in dimensions))
    inner = select(*(c[name] for name in base), *(measure(c).label(name) for name, measure in measures.items()))
    inner = inner.group_by(*(c[name] for name in base))
    if source.tenant_column is not None:
        inner = scoped(inner, tenant, c[source.tenant_column])
    g = inner.subquery("g")
    columns: list[sa.ColumnElement[Any]] = []
    joined: sa.FromClause = g
    for dimension in dimensions:
        if dimension == GroupBy.partner:
            columns += [g.c.partner_id, PARTNERS.c.display_name.label("partner_name")]
        elif dimension == GroupBy.partner_kind:
            columns.append(PARTNERS.c.kind.label("partner_kind"))
        elif dimension == GroupBy.program:
            columns += [g.c.program_id, PROGRAMS.c.name.label("program_name")]
            joined = joined.join(PROGRAMS, PROGRAMS.c.id == g.c.program_id)
        elif dimension == GroupBy.product:
            columns += [g.c.product_code, PRODUCTS.c.name.label("product_name")]
            joined = joined.outerjoin(PRODUCTS, PRODUCTS.c.code == g.c.product_code)
        elif dimension == GroupBy.month:
            columns.append(g.c[source.month].label("month"))
        else:
            columns.append(g.c[str(dimension)])
    if GroupBy.partner in dimensions or GroupBy.partner_kind in dimensions:
        joined = joined.join(PARTNERS, PARTNERS.c.id == g.c.partner_id)
    # Sums as bigint (PostgreSQL's sum of bigint is numeric, which the driver would hand over as Decimal).
    totals = [sa.cast(func.sum(g.c[name]), sa.BigInteger).label(name) for name in measures]
    return select(*columns, *totals).select_from(joined).group_by(*columns)


Row = Mapping[str, Any]


async def rows_of(session: AsyncSession, statement: Select[Any], measure: str) -> list[Row]:
    """The groups with something in them (without grouping, an empty period still gives one row of nulls)."""
    result = await session.execute(statement)
    keys = list(result.keys())
    index = keys.index(measure)
    # Plain dicts: reading a figure from one is several times cheaper than from a row mapping.
    return [dict(zip(keys, row, strict=True)) for row in result.all() if row[index] is not None]


async def cohort_sums(
    session: AsyncSession, tenant: Tenant, query: ReportQuery, names: Iterable[str], measure: str
) -> list[Row]:
    """``names`` (cohort columns) summed per group of the query, from the smallest rollup that answers it; the
    groups where ``measure`` has something (``rows_of``)."""
    queued = await anything_queued(session)
    source = cohorts_for(query, query.group_by)
    return await rows_of(session, aggregate(source, query, tenant, query.group_by, sums(names), queued=queued), measure)


# --- durations ----------------------------------------------------------------------------------------------------

PERCENTILES = {"median": 0.5, "p90": 0.9}
SERIES_DIMENSIONS = frozenset({GroupBy.partner, GroupBy.partner_kind, GroupBy.month})


def percentile_ranks(
    query: ReportQuery, tenant: Tenant, dimensions: Sequence[GroupBy], queued: bool = True
) -> Select[Any]:
    """Per group and stage: how many referrals, and the values at the ranks ``percentile_cont`` interpolates
    between, read off the histogram of whole days (ranks computed in double precision, as PostgreSQL does)."""
    histogram = aggregate(
        DURATIONS,
        query,
        tenant,
        [*dimensions, "stage", "days"],
        sums(["referrals"]),
        queued=queued,
    ).subquery("h")
    keys = [
        histogram.c[column.name]
        for column in histogram.c
        if column.name not in ("days", "referrals") and not column.name.endswith("_name")
    ]
    running = select(
        *histogram.c,
        func.sum(histogram.c.referrals).over(partition_by=keys, order_by=histogram.c.days).label("below"),
        func.sum(histogram.c.referrals).over(partition_by=keys).label("total"),
    ).subquery("w")
    w = running.c
    ranks = []
    for name, fraction in PERCENTILES.items():
        position = sa.literal(fraction, sa.Float()) * (sa.cast(w.total, sa.Float()) - 1)
        ranks += [
            func.min(w.days).filter(w.below > func.floor(position)).label(f"{name}_low"),
            func.min(w.days).filter(w.below > func.ceil(position)).label(f"{name}_high"),
        ]
    group = [w[column.name] for column in histogram.c if column.name not in ("days", "referrals")]
    return select(*group, func.max(w.total).label("referrals"), *ranks).group_by(*group)


def by_partner_month(query: ReportQuery, groupings: Iterable[Sequence[GroupBy]]) -> bool:
    """Whether what is kept by partner and month (``report_partner_months``, ``report_duration_series``) can
    answer: groupings and filters by partner, partner kind and month only."""
    filters = query.filters
    narrowed = filters.program_ids or filters.product_codes or filters.tiers or filters.kinds
    return not narrowed and all(set(dimensions) <= SERIES_DIMENSIONS for dimensions in groupings)


def cohorts_for(query: ReportQuery, *groupings: Sequence[GroupBy]) -> Source:
    """The smallest rollup of cohort sums that answers the query."""
    return PARTNER_MONTHS if by_partner_month(query, groupings) else COHORTS


def unpack(packed: bytes) -> tuple[Sequence[int], Sequence[int]]:
    """(days, referrals) of a packed histogram: big-endian 32-bit integers, pairs in a row."""
    values = array("i")
    values.frombytes(packed)
    if sys.byteorder == "little":
        values.byteswap()
    return values[0::2], values[1::2]


@dataclass(slots=True)  # thousands are made per report: slots, and no frozen-instance setattr per field
class Histogram:
    """Referrals of one partner-month (or of the alliance's month) that reached ``stage``, by whole days: a series
    row (packed, with its own figures) or a correction (one day, a signed count)."""

    month: date
    partner_id: str
    stage: str
    packed: bytes | None = None
    days: Sequence[int] = ()
    referrals: Sequence[int] = ()
    figures: tuple[int, float, float] | None = None  # a series row's referrals, median and p90

    def counts(self) -> tuple[Sequence[int], Sequence[int]]:
        """(days ascending, referrals of each)."""
        return unpack(self.packed) if self.packed is not None else (self.days, self.referrals)


async def anything_queued(session: AsyncSession) -> bool:
    """Whether writers queued changes the summary has not folded yet (then reports correct for them)."""
    return bool(await session.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM report_changes)")))


def _series_conditions(query: ReportQuery, alliance: bool) -> list[sa.ColumnElement[bool]]:
    """The series rows of the alliance (partner id ``""``), or of the partners under the query's filters."""
    if alliance:
        return [SERIES.c.partner_id == summary.ALLIANCE]
    conditions = [SERIES.c.partner_id != summary.ALLIANCE]
    if query.filters.partner_ids:
        conditions.append(SERIES.c.partner_id.in_(query.filters.partner_ids))
    if query.filters.partner_kinds:
        kinds = [kind.value for kind in query.filters.partner_kinds]
        conditions.append(SERIES.c.partner_id.in_(select(PARTNERS.c.id).where(PARTNERS.c.kind.in_(kinds))))
    return conditions


def partner_month_figures(query: ReportQuery, tenant: Tenant, stages: Iterable[str]) -> Select[Any]:
    """One row per partner-month of the whole months (named, with the partner's kind): the series' own referrals,
    median and p90 of each stage (``{stage}_referrals``, ``{stage}_median_days``, ``{stage}_p90_days``; null where
    none reached it). Answers a report grouped by partner and month that nothing corrects, without unpacking a
    histogram."""
    split = Split.of(query.start, query.end)
    if split.whole is None or split.partial:
        raise ValueError("partner_month_figures answers whole months only")
    figures = [
        func.max(SERIES.c[column]).filter(SERIES.c.stage == stage).label(f"{stage}_{column}")
        for stage in stages
        for column in ("referrals", "median_days", "p90_days")
    ]
    statement = (
        select(
            SERIES.c.partner_id,
            PARTNERS.c.display_name.label("partner_name"),
            PARTNERS.c.kind.label("partner_kind"),
            SERIES.c.cohort_month.label("month"),
            *figures,
        )
        .select_from(SERIES.join(PARTNERS, PARTNERS.c.id == SERIES.c.partner_id))
        .where(SERIES.c.cohort_month.between(*split.whole), *_series_conditions(query, alliance=False))
        .group_by(SERIES.c.partner_id, PARTNERS.c.display_name, PARTNERS.c.kind, SERIES.c.cohort_month)
    )
    return scoped(statement, tenant, SERIES.c.partner_id)


async def series(
    session: AsyncSession,
    tenant: Tenant,
    query: ReportQuery,
    *,
    queued: bool = True,
    alliance: bool = False,
    packed: bool = True,
) -> list[Histogram]:
    """The partner-month series of the whole months, and the histograms that correct them (the days outside
    whole months, the queue), for the partner filters and the caller's tenant. With ``alliance``, the
    alliance-wide series instead (partner id ``""``; for staff, without partner filters), corrections summed
    over partners. Without ``packed``, the series rows carry their own figures only (enough when each group of
    the report is one partner-month and nothing corrects it)."""
    split = Split.of(query.start, query.end)
    histograms = []
    conditions = _series_conditions(query, alliance)
    if split.whole is not None:
        columns = [c for c in SERIES.c if packed or c.name != "histogram"]
        whole = select(*columns).where(SERIES.c.cohort_month.between(*split.whole), *conditions)
        for row in (await session.execute(scoped(whole, tenant, SERIES.c.partner_id))).all():
            figures = (row.referrals, row.median_days, row.p90_days)
            bytes_ = row.histogram if packed else None
            histograms.append(Histogram(row.cohort_month, row.partner_id, row.stage, bytes_, figures=figures))
    if not corrects(query, queued):
        return histograms
    c = contributions(DURATIONS, query, tenant, rollup=False, queued=queued).c
    keys = [c.cohort_month, c.stage, c.days, *([] if alliance else [c.partner_id])]
    partner = [sa.literal(summary.ALLIANCE).label("partner_id")] if alliance else []
    statement = select(*keys, *partner, func.sum(c.referrals).label("referrals")).group_by(*keys)
    for row in (await session.execute(scoped(statement, tenant, c.partner_id))).all():
        histograms.append(
            Histogram(row.cohort_month, row.partner_id, row.stage, days=[row.days], referrals=[int(row.referrals)])
        )
    return histograms


async def partners_named(session: AsyncSession, partner_ids: Iterable[str]) -> dict[str, Row]:
    statement = select(PARTNERS.c.id, PARTNERS.c.display_name, PARTNERS.c.kind).where(
        PARTNERS.c.id.in_(sorted(set(partner_ids)))
    )
    rows: Sequence[Row] = (await session.execute(statement)).mappings().all()  # type: ignore[assignment]
    return {row["id"]: row for row in rows}
