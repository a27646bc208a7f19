"""The period picker: what each key covers, the period it is compared with, and the keys it refuses."""

from __future__ import annotations

from datetime import date

import pytest

from app.console.manager import periods

TODAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("key", "start", "end", "previous"),
    [
        ("12m", date(2026, 1, 1), TODAY, (date(2025, 1, 1), date(2025, 12, 3))),
        ("3m", date(2026, 10, 1), TODAY, (date(2026, 7, 1), date(2026, 9, 3))),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28), (date(2026, 1, 1), date(2026, 1, 31))),
        ("2026-03", date(2026, 3, 1), date(2026, 3, 31), (date(2026, 2, 1), date(2026, 2, 28))),
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31), (date(2025, 10, 1), date(2025, 12, 31))),
        ("2026-12", date(2026, 12, 1), TODAY, (date(2026, 11, 1), date(2026, 11, 3))),
        ("2025", date(2025, 1, 1), date(2025, 12, 31), (date(2024, 1, 1), date(2024, 12, 31))),
    ],
)
def test_each_key_and_its_previous_period(key: str, start: date, end: date, previous: tuple[date, date]) -> None:
    period = periods.parse(key, TODAY)
    assert period is not None
    assert (period.start, period.end) == (start, end)
    before = period.previous()
    assert (before.start, before.end) == previous


@pytest.mark.parametrize(
    "key", ["", "13m", "2026-13", "2027-01", "2026-Q5", "1999", "12m;drop", "2026\n", "\uff12\uff10\uff12\uff16"]
)
def test_keys_naming_no_period_are_refused(key: str) -> None:
    assert periods.parse(key, TODAY) is None


def test_a_single_month_has_one_month_to_draw() -> None:
    period = periods.parse("2026-02", TODAY)
    assert period is not None and period.month_keys == ["2026-02"]
    year = periods.parse("12m", TODAY)
    assert year is not None and len(year.month_keys) == 12


def test_every_choice_is_a_period() -> None:
    assert all(periods.parse(key, TODAY) is not None for key, _, _ in periods.choices(TODAY))
