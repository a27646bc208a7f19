"""The server-drawn charts: every month drawn (one month too), the values in the tooltips adding up to what was
given, readable axes in CNY, escaped text."""

from __future__ import annotations

import itertools
import re

from app.console import charts


def _titles(svg: str) -> list[str]:
    return re.findall(r"<title>([^<]*)</title>", svg)[1:]  # the first is the chart's own


def test_one_month_still_draws_its_bar_and_its_point() -> None:
    bars = charts.bar_chart("推荐数", ["2026-01"], [charts.Series("银证合作", [7])])
    assert bars.count("<rect") == 2  # the bar, and the legend's swatch
    assert "2026-01" in bars and "银证合作 · 2026-01: 7" in bars
    line = charts.line_chart("转化数", ["2026-01"], [charts.Series("保证合作", [3])])
    assert line.count("<circle") == 1 and "<polyline" not in line


def test_stacked_segments_add_up_to_each_month() -> None:
    months = ["2026-01", "2026-02", "2026-03"]
    series = [
        charts.Series("银证合作", [4, 2, 0]),
        charts.Series("保证合作", [2, 1, 0]),
        charts.Series("产业联盟", [1, 0, 0]),
    ]
    svg = charts.bar_chart("推荐数", months, series)
    per_month = {month: 0 for month in months}
    for title in _titles(svg):
        label, value = title.rsplit(": ", 1)
        per_month[label.split(" · ")[1]] += int(value.replace(",", ""))
    assert per_month == {"2026-01": 7, "2026-02": 3, "2026-03": 0}
    assert all(name in svg for name in ("银证合作", "保证合作", "产业联盟"))  # the legend


def test_money_axes_are_whole_yuan_and_tooltips_exact() -> None:
    svg = charts.line_chart(
        "计提推荐费",
        ["2026-01", "2026-02"],
        [charts.Series("银证合作", [123_456, 1_000_000_01])],
        ticks=charts.money_ticks,
        value=charts.money_value,
        money=True,
    )
    assert "¥1,234.56" in svg and "¥1,000,000.01" in svg
    ticks = re.findall(r'class="tick">(¥[^<]*)<', svg)
    assert ticks[0] == "¥0" and all(re.fullmatch(r"¥[\d,]+", tick) for tick in ticks)
    top = int(ticks[-1][1:].replace(",", ""))
    assert top * 100 >= 1_000_000_01  # the axis reaches the largest value


def test_nice_ticks_cover_the_top_on_round_steps() -> None:
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(10) == [0, 5, 10]
    money = charts.nice_ticks(1_230_000, money=True)
    assert money[-1] >= 1_230_000 and all(tick % 100 == 0 for tick in money)


def test_the_funnel_writes_counts_and_step_rates() -> None:
    steps = [
        charts.FunnelStep("已接收", 10, None),
        charts.FunnelStep("有效推荐", 8, 0.8),
        charts.FunnelStep("开户", 0, 0),
    ]
    svg = charts.funnel_chart("转化漏斗", steps)
    assert ">10<" in svg and ">8<" in svg and "80.0%" in svg and "0.0%" in svg


def test_text_is_escaped() -> None:
    svg = charts.bar_chart("<script>", ["<b>"], [charts.Series("a&b", [1])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


def test_age_bands_mark_the_target() -> None:
    svg = charts.band_chart(
        "年龄",
        [charts.Bar("25 岁以下", 1), charts.Bar("25-35 岁", 2, marked=True)],
        marked_label="25-35 岁：年轻客户目标",
    )
    assert svg.count(charts.TARGET_COLOUR) == 2  # the marked bar and the legend


def test_twelve_months_on_a_narrow_chart_keep_their_labels_apart() -> None:
    months = [f"2026-{month:02d}" for month in range(1, 13)]
    label = r'<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle" class="tick">'
    svg = charts.bar_chart("推荐数", months, [charts.Series("银证合作", [1] * 12)])
    positions = [float(x) for x in re.findall(label, svg)]
    assert 4 <= len(positions) < 12
    assert all(b - a >= 7 * 7 for a, b in itertools.pairwise(positions))
    wide = charts.bar_chart("推荐数", months, [charts.Series("银证合作", [1] * 12)], width=1100)
    assert len(re.findall(label, wide)) == 12
