"""CSV and an XLSX workbook with native charts, from report tables.

CSV keeps machine values (integer fen, fractions) under machine names and starts with a byte-order mark so that
spreadsheets read Chinese names as UTF-8. XLSX shows yuan and percentages with number formats (the cells hold the
exact values), one sheet per report, a bar chart of the funnel and a line chart of the monthly trend. Every cell,
headers and titles included, is written through ``app.core.spreadsheets``: a partner's name is never a live
formula.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from app.core import spreadsheets
from app.core.spreadsheets import append_row, csv_document, set_cell
from app.reports.render.report_tables import Column, Kind, Table

CSV_MEDIA_TYPE = spreadsheets.CSV_MEDIA_TYPE
XLSX_MEDIA_TYPE = spreadsheets.XLSX_MEDIA_TYPE


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
