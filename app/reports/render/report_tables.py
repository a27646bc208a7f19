"""Every report as one ``Table``: its group columns, then its figures, then a total row. The formats
(``app.reports.render.sheets`` for CSV and XLSX, ``app.reports.render.page`` for HTML) render tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from app.reports.schemas import (
    AGE_BANDS,
    TARGET_AGE_BAND,
    ClientStructureReport,
    FeesReport,
    FeesRow,
    FunnelReport,
    FunnelRow,
    GroupBy,
    ReportGroup,
    ReportHeader,
    Scorecard,
    StructureRow,
    TimeToConvertReport,
    TimingRow,
)

Kind = Literal["text", "count", "fen", "rate", "days", "ratio", "points"]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind = "count"


@dataclass
class Table:
    title: str
    subtitle: str
    columns: list[Column]
    rows: list[list[Any]]
    total: list[Any] | None = None
    highlight: set[str] = field(default_factory=set)  # column keys to mark (the 25-35 target band)


# --- reports as tables ----------------------------------------------------------------------------------------------

_GROUP_COLUMNS: dict[GroupBy, tuple[Column, ...]] = {
    GroupBy.partner: (Column("partner_id", "Partner id", "text"), Column("partner_name", "Partner", "text")),
    GroupBy.partner_kind: (Column("partner_kind", "Partner kind", "text"),),
    GroupBy.program: (Column("program_id", "Program id", "text"), Column("program_name", "Program", "text")),
    GroupBy.product: (Column("product_code", "Product", "text"), Column("product_name", "Product name", "text")),
    GroupBy.tier: (Column("tier", "Tier", "text"),),
    GroupBy.kind: (Column("kind", "Referral kind", "text"),),
    GroupBy.month: (Column("month", "Month", "text"),),
}


def _group_columns(group_by: Sequence[GroupBy]) -> list[Column]:
    return [column for dimension in group_by for column in _GROUP_COLUMNS[dimension]]


def _group_values(group: ReportGroup, columns: Sequence[Column], total: bool) -> list[Any]:
    if total:
        return ["Total"] + [None] * (len(columns) - 1) if columns else []
    values = []
    for column in columns:
        value = getattr(group, column.key)
        values.append(value.value if hasattr(value, "value") else value)
    return values


def _subtitle(report: ReportHeader) -> str:
    filters = {name: values for name, values in report.filters.model_dump(mode="json").items() if values}
    text = f"{report.period.start} to {report.period.end} ({report.period.timezone}), referrals received in the period"
    if filters:
        text += "; " + "; ".join(f"{name}: {', '.join(map(str, values))}" for name, values in filters.items())
    return text


def _table(
    title: str,
    report: ReportHeader,
    figures: list[Column],
    rows: Iterable[Any],
    total: Any,
    values: Callable[[Any], list[Any]],
    group_by: Sequence[GroupBy] | None = None,
) -> Table:
    groups = _group_columns(report.group_by if group_by is None else group_by)
    return Table(
        title=title,
        subtitle=_subtitle(report),
        columns=groups + figures,
        rows=[_group_values(row.group, groups, False) + values(row) for row in rows],
        total=(_group_values(total.group, groups, True) + values(total)) if total is not None else None,
    )


_STAGES = ("eligible", "account_opened", "funded", "converted")
_FUNNEL_FIGURES = [
    Column("received", "Received"),
    Column("eligible", "Eligible"),
    Column("existing_client", "Existing client"),
    Column("duplicate", "Duplicate"),
    Column("expired", "Expired"),
    Column("withdrawn", "Withdrawn"),
    Column("rejected", "Rejected"),
    Column("account_opened", "Account opened"),
    Column("funded", "Funded"),
    Column("converted", "Converted"),
    *(Column(f"{stage}_stage_rate", f"{stage.replace('_', ' ').capitalize()} / previous", "rate") for stage in _STAGES),
    *(
        Column(f"{stage}_overall_rate", f"{stage.replace('_', ' ').capitalize()} / received", "rate")
        for stage in _STAGES
    ),
]


def _funnel_values(row: FunnelRow) -> list[Any]:
    counts = list(row.counts.model_dump().values())
    return counts + [getattr(row.stage_rates, s) for s in _STAGES] + [getattr(row.overall_rates, s) for s in _STAGES]


def funnel_table(report: FunnelReport) -> Table:
    return _table("Funnel", report, _FUNNEL_FIGURES, report.rows, report.total, _funnel_values)


_TIMING_STAGES = ("account_opened", "funded", "converted")
_TIMING_FIGURES = [
    column
    for stage in _TIMING_STAGES
    for column in (
        Column(f"{stage}_referrals", f"{stage.replace('_', ' ').capitalize()}: referrals"),
        Column(f"{stage}_median_days", f"{stage.replace('_', ' ').capitalize()}: median days", "days"),
        Column(f"{stage}_p90_days", f"{stage.replace('_', ' ').capitalize()}: p90 days", "days"),
    )
]


def _timing_values(row: TimingRow) -> list[Any]:
    values: list[Any] = []
    for stage in _TIMING_STAGES:
        timing = getattr(row, stage)
        values += [timing.referrals, timing.median_days, timing.p90_days]
    return values


def timing_table(report: TimeToConvertReport) -> Table:
    return _table("Time to convert", report, _TIMING_FIGURES, report.rows, report.total, _timing_values)


_FEES_FIGURES = [
    Column("funded_accounts", "Funded accounts"),
    Column("converted", "Converted"),
    Column("assets_fen", "Assets brought in", "fen"),
    Column("revenue_fen", "Revenue recorded", "fen"),
    Column("fees_accrued_fen", "Fees accrued", "fen"),
    Column("fees_pending_fen", "Fees pending (hold)", "fen"),
    Column("fees_payable_fen", "Fees payable", "fen"),
    Column("fees_statemented_fen", "Fees on statements", "fen"),
    Column("fees_paid_fen", "Fees paid", "fen"),
    Column("cost_per_funded_account_fen", "Cost per funded account", "fen"),
    Column("revenue_to_fee_ratio", "Revenue / fees", "ratio"),
]


def _fees_values(row: FeesRow) -> list[Any]:
    return [getattr(row, column.key) for column in _FEES_FIGURES]


def fees_table(report: FeesReport) -> Table:
    return _table("Fees and value", report, _FEES_FIGURES, report.rows, report.total, _fees_values)


_TIER_NAMES = ("retail", "hnw", "institutional")
AGE_SUFFIXES = tuple(band or "none" for band in AGE_BANDS)
_STRUCTURE_FIGURES = [
    *(Column(f"converted_{tier}", f"Converted: {tier}") for tier in (*_TIER_NAMES, "unknown")),
    Column("converted_share_hnw_institutional", "Converted: HNW + institutional", "rate"),
    *(Column(f"funded_{tier}", f"Funded: {tier}") for tier in (*_TIER_NAMES, "unknown")),
    Column("funded_share_hnw_institutional", "Funded: HNW + institutional", "rate"),
    *(Column(f"assets_{tier}_fen", f"Assets: {tier}", "fen") for tier in _TIER_NAMES),
    *(Column(f"organic_{tier}", f"Organic: {tier}") for tier in (*_TIER_NAMES, "unknown")),
    Column("organic_share_hnw_institutional", "Organic: HNW + institutional", "rate"),
    Column("share_difference_points", "Referred - organic (points)", "points"),
    *(
        column
        for band, label in AGE_BANDS.items()
        for column in (
            Column(f"age_{band or 'none'}_received", f"Age {label}: received"),
            Column(f"age_{band or 'none'}_converted", f"Age {label}: converted"),
        )
    ),
    Column("converted_share_25_35", "25-35 among converted", "rate"),
]


def _structure_values(row: StructureRow) -> list[Any]:
    values: list[Any] = []
    for counts in (row.converted, row.funded):
        values += [counts.retail, counts.hnw, counts.institutional, counts.unknown, counts.share_hnw_institutional]
    values += [row.assets_by_tier.retail_fen, row.assets_by_tier.hnw_fen, row.assets_by_tier.institutional_fen]
    organic = row.organic
    values += [organic.retail, organic.hnw, organic.institutional, organic.unknown, organic.share_hnw_institutional]
    values.append(row.share_difference_points)
    for suffix in AGE_SUFFIXES:
        values += [row.received_by_age.get(suffix, 0), row.converted_by_age.get(suffix, 0)]
    values.append(row.converted_share_25_35)
    return values


def structure_table(report: ClientStructureReport) -> Table:
    table = _table("Client structure", report, _STRUCTURE_FIGURES, report.rows, report.total, _structure_values)
    table.highlight = {f"age_{TARGET_AGE_BAND}_received", f"age_{TARGET_AGE_BAND}_converted", "converted_share_25_35"}
    return table


_UNIT_KINDS: dict[str, Kind] = {"count": "count", "rate": "rate", "days": "days", "fen": "fen", "ratio": "ratio"}


def scorecard_table(report: Scorecard) -> Table:
    rows = []
    for metric in report.metrics:
        rows.append(
            [metric.name, metric.label, metric.unit, metric.basis, metric.partner, metric.alliance, metric.peers]
        )
    return Table(
        title=f"Scorecard: {report.partner.name}",
        subtitle=f"{_subtitle(report)}; {report.partners_in_alliance} partners in the alliance, "
        f"{report.partners_in_peers} of kind {report.partner.kind}",
        columns=[
            Column("metric", "Metric id", "text"),
            Column("label", "Metric", "text"),
            Column("unit", "Unit", "text"),
            Column("basis", "Alliance basis", "text"),
            Column("partner", report.partner.name, "text"),
            Column("alliance", "Alliance", "text"),
            Column("peers", f"Peers ({report.partner.kind})", "text"),
        ],
        rows=rows,
    )


def table_of(report: BaseModel) -> Table:
    if isinstance(report, FunnelReport):
        return funnel_table(report)
    if isinstance(report, TimeToConvertReport):
        return timing_table(report)
    if isinstance(report, FeesReport):
        return fees_table(report)
    if isinstance(report, ClientStructureReport):
        return structure_table(report)
    if isinstance(report, Scorecard):
        return scorecard_table(report)
    raise TypeError(f"no table for {type(report).__name__}")
