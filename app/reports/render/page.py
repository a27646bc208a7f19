"""A report as a self-contained HTML page: its styles and SVG charts inline, no script, declared UTF-8."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.reports.render.charts import NOTHING
from app.reports.render.report_tables import Column, Table

HTML_MEDIA_TYPE = "text/html; charset=utf-8"


_CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",
"Source Han Sans SC",sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px}p.sub{color:#52606d;margin:0 0 12px}
table{border-collapse:collapse;font-size:12px;margin:8px 0 16px}th,td{border:1px solid #d9e2ec;padding:3px 6px}
th{background:#f0f4f8;text-align:left;vertical-align:bottom}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;background:#f7f9fb}.target{background:#fff2cc}figure{margin:8px 0 16px}
figcaption{font-size:12px;color:#52606d}svg text{font-size:11px;fill:#1f2933}
"""


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def _html_value(column: Column, value: Any) -> str:
    if value is None:
        return NOTHING
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
