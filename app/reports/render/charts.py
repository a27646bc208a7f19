"""The reports' charts for the HTML page, as inline SVG (no script, no external asset)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from app.reports.schemas import FunnelRow, StructureRow

NOTHING = "\u2013"  # an en dash where there is no figure
_SERIES_COLOURS = ("#2f6fde", "#1b998b", "#f4a259", "#c0392b")


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
        share = f"{counts[stage] / top * 100:.1f}%" if counts["received"] else NOTHING
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
        text = f"{share * 100:.1f}%" if share is not None else NOTHING
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
