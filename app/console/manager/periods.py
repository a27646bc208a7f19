"""The period picker of the manager's pages: one ``?period=`` in the URL for the whole page.

A period is the last 3, 6 or 12 months (``3m``, ``6m``, ``12m``: from the first day of the month N-1 months back
to today), a month (``2026-01``), a quarter (``2026-Q1``) or a year (``2026``), in business days, never past
today. The period it is compared with (环比) is the one just before it, of the same shape: the month before, the
quarter before, the twelve months before; a period that ends today is compared with the same days of the one
before.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

DEFAULT = "12m"
_ROLLING = re.compile(r"^(3|6|12)m\Z")
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])\Z")
_QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])\Z")
_YEAR = re.compile(r"^([0-9]{4})\Z")
EARLIEST_YEAR = 2000


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def months_back(day: date, months: int) -> date:
    """``day`` ``months`` months earlier; the last day of a month stays the last day (31 March → 28 February)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    at_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return date(year, month + 1, last if at_end else min(day.day, last))


@dataclass(frozen=True)
class Period:
    """What the page covers: ``start`` and ``end`` inclusive, its key in the URL, and its length in months."""

    key: str
    start: date
    end: date
    months: int

    @property
    def month_keys(self) -> list[str]:
        """Every month the period touches, ``YYYY-MM``, oldest first: the charts' categories."""
        keys = []
        year, month = self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            keys.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return keys

    def previous(self) -> Period:
        """The period before, of the same shape (环比)."""
        start = months_back(self.start, self.months)
        end = months_back(self.end, self.months)
        return Period(f"{self.key}:previous", start, end, self.months)

    @property
    def is_rolling(self) -> bool:
        return bool(_ROLLING.match(self.key))


def parse(key: str | None, today: date) -> Period | None:
    """The period ``key`` names, its end cut at today; ``None`` when it names none (or one that has not begun)."""
    key = key or ""
    if rolling := _ROLLING.match(key):
        months = int(rolling.group(1))
        start = months_back(today.replace(day=1), months - 1)
        return Period(key, start, today, months)
    if month := _MONTH.match(key):
        year, number = int(month.group(1)), int(month.group(2))
        return _bounded(key, date(year, number, 1), _month_end(year, number), 1, today)
    if quarter := _QUARTER.match(key):
        year, number = int(quarter.group(1)), int(quarter.group(2))
        first = 3 * number - 2
        return _bounded(key, date(year, first, 1), _month_end(year, first + 2), 3, today)
    if year_only := _YEAR.match(key):
        year = int(year_only.group(1))
        return _bounded(key, date(year, 1, 1), date(year, 12, 31), 12, today)
    return None


def _bounded(key: str, start: date, end: date, months: int, today: date) -> Period | None:
    if start > today or start.year < EARLIEST_YEAR:
        return None
    return Period(key, start, min(end, today), months)


def choices(today: date) -> list[tuple[str, str, dict[str, object]]]:
    """The picker's options: (key, English label, its fields), the rolling ones first, then the years, quarters
    and months up to today (this year and the last)."""
    options: list[tuple[str, str, dict[str, object]]] = [(f"{n}m", "Last {n} months", {"n": n}) for n in (3, 6, 12)]
    for year in (today.year, today.year - 1):
        options.append((str(year), "Year {year}", {"year": year}))
        for quarter in range(4, 0, -1):
            if date(year, 3 * quarter - 2, 1) <= today:
                options.append((f"{year}-Q{quarter}", "{year} Q{quarter}", {"year": year, "quarter": quarter}))
    month = today.replace(day=1)
    for _ in range(24):
        options.append((f"{month:%Y-%m}", "{month}", {"month": f"{month:%Y-%m}"}))
        month = months_back(month, 1)
    return options
