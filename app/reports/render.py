"""Reports for people: CSV, an XLSX workbook with native charts, and a self-contained HTML page.

Every report becomes one ``Table`` (its group columns, then its figures, then a total row); the three formats
render tables. CSV keeps machine values (integer fen, fractions) under machine names and starts with a
byte-order mark so that spreadsheets read Chinese names as UTF-8. XLSX shows yuan and percentages with number
formats (the cells hold the exact values), one sheet per report, a bar chart of the funnel and a line chart of
the monthly trend. HTML carries its styles and SVG charts inline (no script, no external asset) and declares UTF-8.

Every CSV and XLSX cell, headers and titles included, is written through ``app.core.spreadsheets``: a partner's
name is never a live formula.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from pydantic import BaseModel

from app.core import spreadsheets
from app.core.spreadsheets import append_row, csv_document, set_cell
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

CSV_MEDIA_TYPE = spreadsheets.CSV_MEDIA_TYPE
XLSX_MEDIA_TYPE = spreadsheets.XLSX_MEDIA_TYPE
HTML_MEDIA_TYPE = "text/html; charset=utf-8"

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


# --- CSV ------------------------------------------------------------------------------------------------------------


def to_csv(table: Table) -> bytes:
    """The table under its machine column names, the total last; UTF-8 with a byte-order mark."""
    return csv_document(
        [column.key for column in table.columns], [*table.rows, *([table.total] if table.total else [])]
    )


# --- XLSX -----------------------------------------------------------------------------------------------------------

_NUMBER_FORMATS: dict[Kind, str] = {
    "count": "#,##0",
    "fen": "#,##0.00",
    "rate": "0.00%",
    "days": "0.0",
    "ratio": "0.00",
    "points": "0.00",
    "text": "General",
}
_BOLD = Font(bold=True)
_TARGET = PatternFill("solid", fgColor="FFF2CC")


def _xlsx_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "fen" and isinstance(value, int):
        return Decimal(value) / 100  # yuan, exactly
    return value


def _xlsx_label(column: Column) -> str:
    return f"{column.label} (CNY)" if column.kind == "fen" else column.label


@dataclass
class Sheet:
    table: Table
    chart: Literal["funnel", "trend"] | None = None


def _write_table(sheet: Worksheet, table: Table) -> tuple[int, int]:
    """Title, subtitle, header, rows, total; returns the header row and the last data row (total excluded)."""
    append_row(sheet, [table.title], font=Font(bold=True, size=14))
    append_row(sheet, [table.subtitle])
    sheet.append([])
    header_row = 4
    append_row(sheet, [_xlsx_label(column) for column in table.columns])
    for index, column in enumerate(table.columns, start=1):
        cell = sheet.cell(row=header_row, column=index)
        cell.font = _BOLD
        if column.key in table.highlight:
            cell.fill = _TARGET
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(cell.value or "") + 2))
    rows = [*table.rows, *([table.total] if table.total else [])]
    for row in rows:
        append_row(sheet, [_xlsx_value(column, value) for column, value in zip(table.columns, row, strict=True)])
    for row_index in range(header_row + 1, header_row + 1 + len(rows)):
        for index, column in enumerate(table.columns, start=1):
            cell = sheet.cell(row=row_index, column=index)
            cell.number_format = _NUMBER_FORMATS[column.kind]
            if column.key in table.highlight:
                cell.fill = _TARGET
    if table.total:
        for index in range(1, len(table.columns) + 1):
            sheet.cell(row=header_row + len(rows), column=index).font = _BOLD
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    return header_row, header_row + len(table.rows)


def _funnel_chart(sheet: Worksheet, table: Table, anchor_row: int) -> None:
    """The total of each stage, in a small block under the table, drawn as horizontal bars."""
    if not table.total:
        return
    stages = ("received", "eligible", "account_opened", "funded", "converted")
    keys = [column.key for column in table.columns]
    start = anchor_row + 2
    set_cell(sheet, start, 1, "Stage").font = _BOLD
    set_cell(sheet, start, 2, "Referrals").font = _BOLD
    for offset, stage in enumerate(stages, start=1):
        set_cell(sheet, start + offset, 1, stage.replace("_", " "))
        set_cell(sheet, start + offset, 2, table.total[keys.index(stage)])
    chart = BarChart()
    chart.type = "bar"
    chart.title = "Funnel"
    chart.y_axis.title = "Referrals"
    chart.x_axis.scaling.orientation = "maxMin"  # received at the top
    chart.add_data(Reference(sheet, min_col=2, min_row=start, max_row=start + len(stages)), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=start + 1, max_row=start + len(stages)))
    chart.legend = None
    chart.height, chart.width = 8, 16
    sheet.add_chart(chart, f"D{start}")


def _trend_chart(sheet: Worksheet, table: Table, header_row: int, last_row: int) -> None:
    """Received, opened, funded and converted per month, as lines (the table is grouped by month alone)."""
    keys = [column.key for column in table.columns]
    if "month" not in keys or last_row <= header_row:
        return
    chart = LineChart()
    chart.title = "Monthly trend"
    chart.y_axis.title = "Referrals"
    chart.x_axis.title = "Month received"
    for key in ("received", "account_opened", "funded", "converted"):
        column = keys.index(key) + 1
        chart.add_data(Reference(sheet, min_col=column, min_row=header_row, max_row=last_row), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=keys.index("month") + 1, min_row=header_row + 1, max_row=last_row))
    chart.height, chart.width = 9, 20
    sheet.add_chart(chart, f"A{last_row + 4}")


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    """One sheet per table, with the funnel or the trend chart where asked."""
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for spec in sheets:
        sheet = workbook.create_sheet(_sheet_title(spec.table.title, workbook.sheetnames))
        header_row, last_row = _write_table(sheet, spec.table)
        if spec.chart == "funnel":
            _funnel_chart(sheet, spec.table, last_row + (1 if spec.table.total else 0))
        elif spec.chart == "trend":
            _trend_chart(sheet, spec.table, header_row, last_row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet_title(title: str, taken: Sequence[str]) -> str:
    cleaned = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "Report"
    candidate, number = cleaned, 2
    while candidate in taken:
        candidate, number = f"{cleaned[:25]} {number}", number + 1
    return candidate


# --- HTML -----------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",
"Source Han Sans SC",sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px}p.sub{color:#52606d;margin:0 0 12px}
table{border-collapse:collapse;font-size:12px;margin:8px 0 16px}th,td{border:1px solid #d9e2ec;padding:3px 6px}
th{background:#f0f4f8;text-align:left;vertical-align:bottom}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;background:#f7f9fb}.target{background:#fff2cc}figure{margin:8px 0 16px}
figcaption{font-size:12px;color:#52606d}svg text{font-size:11px;fill:#1f2933}
"""
_NOTHING = "\u2013"  # an en dash where there is no figure
_SERIES_COLOURS = ("#2f6fde", "#1b998b", "#f4a259", "#c0392b")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def _html_value(column: Column, value: Any) -> str:
    if value is None:
        return _NOTHING
    if column.kind == "fen" and isinstance(value, int):
        return _yuan(value)
    if column.kind == "rate" and isinstance(value, float):
        return f"{value * 100:.2f}%"
    if column.kind in ("days", "ratio", "points") and isinstance(value, float):
        return f"{value:,.2f}"
    if column.kind == "count" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _html_table(table: Table) -> str:
    def cell(column: Column, value: Any, tag: str = "td") -> str:
        classes = [name for name, on in (("n", column.kind != "text"), ("target", column.key in table.highlight)) if on]
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        return f"<{tag}{attribute}>{html.escape(_html_value(column, value))}</{tag}>"

    head = "".join(
        f"<th{' class=target' if column.key in table.highlight else ''}>{html.escape(column.label)}</th>"
        for column in table.columns
    )
    body = "".join(
        "<tr>" + "".join(cell(column, value) for column, value in zip(table.columns, row, strict=True)) + "</tr>"
        for row in table.rows
    )
    if table.total:
        body += (
            '<tr class="total">'
            + "".join(cell(column, value) for column, value in zip(table.columns, table.total, strict=True))
            + "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def funnel_svg(row: FunnelRow) -> str:
    """Horizontal bars, one per stage, as wide as the stage's share of the referrals received."""
    stages = ("received", "eligible", "account_opened", "funded", "converted")
    counts = row.counts.model_dump()
    width, bar_height, label_width = 560, 26, 130
    top = max(counts["received"], 1)
    bars = []
    for index, stage in enumerate(stages):
        y = index * (bar_height + 8)
        length = round((width - label_width - 120) * counts[stage] / top)
        share = f"{counts[stage] / top * 100:.1f}%" if counts["received"] else _NOTHING
        bars.append(
            f'<text x="0" y="{y + 17}">{html.escape(stage.replace("_", " "))}</text>'
            f'<rect x="{label_width}" y="{y}" width="{max(length, 1)}" height="{bar_height}" fill="#2f6fde"/>'
            f'<text x="{label_width + max(length, 1) + 6}" y="{y + 17}">{counts[stage]:,} ({share})</text>'
        )
    height = len(stages) * (bar_height + 8)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Funnel" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(bars)}</svg>'
    )


def trend_svg(rows: Sequence[FunnelRow]) -> str:
    """Lines of received, opened, funded and converted per month."""
    series = ("received", "account_opened", "funded", "converted")
    width, height, left, bottom, top_pad = 640, 260, 48, 40, 12
    months = [row.group.month or "" for row in rows]
    peak = max([getattr(row.counts, name) for row in rows for name in series] + [1])
    step = (width - left - 16) / max(len(rows) - 1, 1)

    def point(index: int, value: int) -> str:
        x = left + index * step
        y = height - bottom - (height - bottom - top_pad) * value / peak
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" stroke="#9aa5b1"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{height - bottom}" stroke="#9aa5b1"/>',
        f'<text x="4" y="{top_pad + 8}">{peak:,}</text><text x="4" y="{height - bottom}">0</text>',
    ]
    for index, month in enumerate(months):
        x = left + index * step
        parts.append(f'<text x="{x - 18:.1f}" y="{height - bottom + 16}">{html.escape(month)}</text>')
    for colour, name in zip(_SERIES_COLOURS, series, strict=True):
        points = " ".join(point(index, getattr(row.counts, name)) for index, row in enumerate(rows))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    for index, (colour, name) in enumerate(zip(_SERIES_COLOURS, series, strict=True)):
        x = left + index * 130
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{height - 5}">{html.escape(name.replace("_", " "))}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Monthly trend" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
    )


def share_svg(row: StructureRow) -> str:
    """HNW + institutional among converted referrals against organic clients, as two bars."""
    width, label_width, bar_height = 520, 190, 24
    bars = []
    for index, (label, share) in enumerate(
        (
            ("Converted referrals", row.converted.share_hnw_institutional),
            ("Organic clients", row.organic.share_hnw_institutional),
        )
    ):
        y = index * (bar_height + 10)
        length = round((width - label_width - 70) * (share or 0))
        text = f"{share * 100:.1f}%" if share is not None else _NOTHING
        bars.append(
            f'<text x="0" y="{y + 16}">{html.escape(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{max(length, 1)}" height="{bar_height}" fill="#1b998b"/>'
            f'<text x="{label_width + max(length, 1) + 6}" y="{y + 16}">{text}</text>'
        )
    height = 2 * (bar_height + 10)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="HNW and institutional share" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(bars)}</svg>'
    )


@dataclass
class Section:
    table: Table
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, svg)


def to_html(title: str, sections: Sequence[Section], generated_at: str) -> bytes:
    """One page: a heading per section, its charts, its table. Nothing is loaded from anywhere."""
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="sub">Generated {html.escape(generated_at)}</p>']
    for section in sections:
        body.append(f"<h2>{html.escape(section.table.title)}</h2>")
        body.append(f'<p class="sub">{html.escape(section.table.subtitle)}</p>')
        for caption, svg in section.figures:
            body.append(f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>")
        body.append(_html_table(section.table))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    return page.encode("utf-8")
