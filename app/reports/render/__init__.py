"""Reports for people: CSV, an XLSX workbook with native charts, and a self-contained HTML page, each rendering the
report's ``Table`` (``report_tables``): ``sheets`` writes CSV and XLSX, ``page`` writes HTML with the ``charts``."""

from app.reports.render.charts import funnel_svg, share_svg, trend_svg
from app.reports.render.page import HTML_MEDIA_TYPE, Section, to_html
from app.reports.render.report_tables import (
    Column,
    Table,
    fees_table,
    funnel_table,
    scorecard_table,
    structure_table,
    table_of,
    timing_table,
)
from app.reports.render.sheets import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, Sheet, to_csv, to_xlsx

__all__ = [
    "CSV_MEDIA_TYPE",
    "HTML_MEDIA_TYPE",
    "XLSX_MEDIA_TYPE",
    "Column",
    "Section",
    "Sheet",
    "Table",
    "fees_table",
    "funnel_svg",
    "funnel_table",
    "scorecard_table",
    "share_svg",
    "structure_table",
    "table_of",
    "timing_table",
    "to_csv",
    "to_html",
    "to_xlsx",
    "trend_svg",
]
