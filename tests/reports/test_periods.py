"""How a period of days splits into whole months (read from the rollups) and days around them (from the facts)."""

from __future__ import annotations

from datetime import date

import pytest

from app.reports.queries import InvalidReportQuery, ReportQuery, Split, default_period


@pytest.mark.parametrize(
    ("start", "end", "whole", "partial"),
    [
        (date(2026, 1, 1), date(2026, 12, 31), (date(2026, 1, 1), date(2026, 12, 1)), False),
        (date(2026, 1, 1), date(2026, 1, 31), (date(2026, 1, 1), date(2026, 1, 1)), False),
        (date(2026, 1, 1), date(2026, 2, 5), (date(2026, 1, 1), date(2026, 1, 1)), True),
        (date(2026, 1, 10), date(2026, 3, 31), (date(2026, 2, 1), date(2026, 3, 1)), True),
        (date(2026, 1, 10), date(2026, 2, 15), None, True),
        (date(2026, 2, 1), date(2026, 2, 28), (date(2026, 2, 1), date(2026, 2, 1)), False),
        (date(2024, 2, 1), date(2024, 2, 28), None, True),  # a leap year's February ends on the 29th
        (date(2026, 1, 5), date(2026, 1, 5), None, True),
        (date(2025, 12, 31), date(2026, 1, 1), None, True),
    ],
)
def test_split(start: date, end: date, whole: tuple[date, date] | None, partial: bool) -> None:
    assert Split.of(start, end) == Split(whole, partial)


def test_default_period_is_twelve_months_to_the_day() -> None:
    assert default_period(date(2026, 3, 15)) == (date(2025, 4, 1), date(2026, 3, 15))
    assert default_period(date(2026, 12, 31)) == (date(2026, 1, 1), date(2026, 12, 31))
    assert default_period(date(2026, 1, 1)) == (date(2025, 2, 1), date(2026, 1, 1))
    assert default_period(date(1, 3, 1)) == (date(1, 1, 1), date(1, 3, 1))  # no year 0 (found by fuzzing: a 500)


def test_a_period_runs_forward_and_at_most_three_years() -> None:
    with pytest.raises(InvalidReportQuery):
        ReportQuery(date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(InvalidReportQuery):
        ReportQuery(date(2020, 1, 1), date(2023, 12, 31))
    assert ReportQuery(date(2021, 1, 1), date(2023, 12, 31)).period.end == date(2023, 12, 31)
