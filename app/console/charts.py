"""Charts drawn on the server as inline SVG (CONSOLE.md, "Numbers"): bars and lines by month and series, and the
funnel as horizontal bars. No script, no library: the page prints and works without JavaScript.

Callers pass words already in the reader's language (legends, titles) and how to write a value
(``money_ticks`` / ``count_ticks``, or their own); every bar and point carries its exact value in a tooltip
(``<title>``). A chart with one month still draws that month: its bar, or its point on the line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from app.console import formatting

WIDTH, HEIGHT = 560, 260  # about the width a half-page card draws it at: text stays its own size
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 16, 56  # room for the value axis, the month labels and the legend
PALETTE = ("#1d4ed8", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#be123c")
TARGET_COLOUR = "#ea580c"
MUTED_COLOUR = "#94a3b8"

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One line or one colour of bars: a value per category (month), in the categories' order."""

    label: str
    values: Sequence[float]
    colour: str | None = None


@dataclass(frozen=True)
class Bar:
    """One bar of a single-series bar chart (age bands): ``marked`` bars are drawn in the accent colour."""

    label: str
    value: float
    marked: bool = False


@dataclass(frozen=True)
class FunnelStep:
    label: str
    count: int
    rate: float | None  # of the step before it (the first step has none)


def count_ticks(value: float) -> str:
    return formatting.count(round(value))


def money_ticks(fen: float) -> str:
    """An axis tick in whole yuan (ticks fall on whole yuan): ``¥12,000``."""
    return "¥" + formatting.count(round(fen / 100))


def money_value(fen: float) -> str:
    return "¥" + formatting.yuan(int(fen))


def nice_ticks(top: float, *, money: bool = False, most: int = 5) -> list[float]:
    """Evenly spaced ticks from 0 to at least ``top``, on 1, 2 or 5 times a power of ten (whole yuan for money)."""
    unit = 100 if money else 1
    top = max(top, unit)
    raw = top / (most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * factor for factor in (1, 2, 5, 10) if power * factor >= raw)
    step = max(step, unit)
    steps = math.ceil(top / step)
    return [step * i for i in range(steps + 1)]


def _colour(series: Series, index: int) -> str:
    return series.colour or PALETTE[index % len(PALETTE)]


def _frame(title: str, body: list[str], legend: Sequence[tuple[str, str]], width: int, height: int = HEIGHT) -> Markup:
    items = []
    x = LEFT
    for label, colour in legend:
        items.append(
            f'<rect x="{x}" y="{height - 16}" width="10" height="10" rx="2" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{height - 7}" class="legend">{escape(label)}</text>'
        )
        x += 28 + 13 * len(label)
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="11"><title>{escape(title)}</title>'
        + "".join(body)
        + "".join(items)
        + "</svg>"
    )


def _value_axis(
    ticks: list[float], label: Formatter, plot_bottom: float, width: int
) -> tuple[list[str], Callable[[float], float]]:
    top = ticks[-1] or 1
    span = plot_bottom - TOP

    def y_of(value: float) -> float:
        return plot_bottom - span * (value / top)

    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid" stroke="#e4e7ec"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(label(tick))}</text>'
        )
    return parts, y_of


def _category_axis(
    categories: Sequence[str], plot_bottom: float, width: int
) -> tuple[list[str], float, Callable[[int], float]]:
    slot = (width - LEFT - RIGHT) / max(len(categories), 1)

    def centre(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    parts = [f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="#98a2b3"/>']
    widest = max((len(category) for category in categories), default=1) * 7 + 8  # about 7 units a character
    every = max(1, math.ceil(widest / slot))  # labels never overlap: every n-th month when they would
    for index, category in enumerate(categories):
        if index % every == 0:
            parts.append(
                f'<text x="{centre(index):.1f}" y="{plot_bottom + 16}" text-anchor="middle" class="tick">'
                f"{escape(category)}</text>"
            )
    return parts, slot, centre


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    ticks: Formatter = count_ticks,
    value: Formatter = count_ticks,
    money: bool = False,
    width: int = WIDTH,
) -> Markup:
    """Stacked bars, one per category, a colour per series; each segment's tooltip names series, month, value."""
    plot_bottom = HEIGHT - BOTTOM
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    scale = nice_ticks(max(totals, default=0), money=money)
    body, y_of = _value_axis(scale, ticks, plot_bottom, width)
    axis, slot, centre = _category_axis(categories, plot_bottom, width)
    body += axis
    bar = min(slot * 0.6, 48)
    for index, category in enumerate(categories):
        base = 0.0
        for number, item in enumerate(series):
            amount = item.values[index]
            if amount <= 0:
                continue
            top, bottom = y_of(base + amount), y_of(base)
            body.append(
                f'<rect x="{centre(index) - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                f'height="{max(bottom - top, 1):.1f}" fill="{_colour(item, number)}">'
                f"<title>{escape(item.label)} · {escape(category)}: {escape(value(amount))}</title></rect>"
            )
            base += amount
    return _frame(title, body, [(s.label, _colour(s, i)) for i, s in enumerate(series)], width)


def line_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    ticks: Formatter = count_ticks,
    value: Formatter = count_ticks,
    money: bool = False,
    width: int = WIDTH,
) -> Markup:
    """A line per series over the categories, with a dot on every value (one month is one dot)."""
    plot_bottom = HEIGHT - BOTTOM
    scale = nice_ticks(max((v for s in series for v in s.values), default=0), money=money)
    body, y_of = _value_axis(scale, ticks, plot_bottom, width)
    axis, _, centre = _category_axis(categories, plot_bottom, width)
    body += axis
    for number, item in enumerate(series):
        colour = _colour(item, number)
        points = [(centre(i), y_of(v)) for i, v in enumerate(item.values)]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), category, amount in zip(points, categories, item.values, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(item.label)} · {escape(category)}: {escape(value(amount))}</title></circle>"
            )
    return _frame(title, body, [(s.label, _colour(s, i)) for i, s in enumerate(series)], width)


def band_chart(
    title: str, bars: Sequence[Bar], *, marked_label: str, value: Formatter = count_ticks, width: int = WIDTH
) -> Markup:
    """One bar per band (age bands), the marked ones in the accent colour and named in the legend."""
    plot_bottom = HEIGHT - BOTTOM
    scale = nice_ticks(max((b.value for b in bars), default=0))
    body, y_of = _value_axis(scale, count_ticks, plot_bottom, width)
    axis, slot, centre = _category_axis([b.label for b in bars], plot_bottom, width)
    body += axis
    size = min(slot * 0.6, 56)
    for index, item in enumerate(bars):
        top = y_of(item.value)
        colour = TARGET_COLOUR if item.marked else PALETTE[0]
        body.append(
            f'<rect x="{centre(index) - size / 2:.1f}" y="{top:.1f}" width="{size:.1f}" '
            f'height="{max(plot_bottom - top, 0):.1f}" fill="{colour}"><title>{escape(item.label)}: '
            f"{escape(value(item.value))}</title></rect>"
            f'<text x="{centre(index):.1f}" y="{top - 4:.1f}" text-anchor="middle" class="value">'
            f"{escape(value(item.value))}</text>"
        )
    return _frame(title, body, [(marked_label, TARGET_COLOUR)], width)


def funnel_chart(title: str, steps: Sequence[FunnelStep], *, rate_of: str = "", width: int = WIDTH) -> Markup:
    """Horizontal bars, widest first: each step's count, and its rate of the step before it."""
    row, label_width, right = 34, 110, 150
    height = TOP + row * len(steps) + 8
    widest = max((s.count for s in steps), default=0) or 1
    span = width - label_width - right
    body = []
    for index, step in enumerate(steps):
        y = TOP + row * index
        size = span * step.count / widest
        rate = "" if step.rate is None and index == 0 else f"{rate_of}{formatting.percent(step.rate)}"
        body.append(
            f'<text x="{label_width - 8}" y="{y + 17}" text-anchor="end" class="tick">{escape(step.label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{max(size, 1):.1f}" height="20" rx="3" '
            f'fill="{PALETTE[0] if step.count else MUTED_COLOUR}" opacity="{1 - index * 0.12:.2f}">'
            f"<title>{escape(step.label)}: {formatting.count(step.count)}</title></rect>"
            f'<text x="{label_width + max(size, 1) + 6:.1f}" y="{y + 18}" class="value">'
            f"{formatting.count(step.count)}</text>"
            f'<text x="{width - RIGHT}" y="{y + 18}" text-anchor="end" class="rate">{escape(rate)}</text>'
        )
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )
