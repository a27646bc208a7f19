"""Business time (DESIGN.md, "Time"): which business day and month an instant falls in, and where a month begins
and ends, in the one business timezone (``ALLIANCE_BUSINESS_TIMEZONE``, ``Asia/Shanghai`` by default).

Statement periods, period closes, the monthly fee cap, the fee schedule in force on a day, report days and months,
and the dates in exports all ask here (Python) or use ``sql_day`` / ``sql_month`` (SQL): a fee earned at 00:30
Beijing time on the 1st belongs to that month everywhere. Instants are stored and compared in UTC; only the
calendar is the business's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.core import clock
from app.core.config import get_settings

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def timezone_name() -> str:
    return get_settings().business_timezone


@lru_cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def business_zone() -> ZoneInfo:
    return _zone(timezone_name())


def local(moment: datetime) -> datetime:
    """The instant as the business's wall clock shows it (with its offset)."""
    return moment.astimezone(business_zone())


def business_day(moment: datetime) -> date:
    """The business day an instant falls on."""
    return _day_in(timezone_name(), moment)


# Remembered by zone and instant: the fee engine asks the day and month of the same instants again and again
# (schedule in force, cap month, cap usage), and a timezone conversion costs more than the lookup.
@lru_cache(maxsize=1 << 16)
def _day_in(zone: str, moment: datetime) -> date:
    return moment.astimezone(_zone(zone)).date()


@lru_cache(maxsize=1 << 16)
def _month_in(zone: str, moment: datetime) -> str:
    day = _day_in(zone, moment)
    return f"{day.year:04d}-{day.month:02d}"


def today() -> date:
    """The business day it is now (read from ``app.core.clock``)."""
    return business_day(clock.now())


def business_month(moment: datetime) -> str:
    """The business month an instant falls in, ``YYYY-MM``."""
    return _month_in(timezone_name(), moment)


@dataclass(frozen=True)
class Month:
    """A business month: ``start`` inclusive and ``end`` exclusive, as UTC instants."""

    name: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=business_zone()).astimezone(UTC)


def month_named(name: str) -> Month | None:
    """The business month written ``YYYY-MM``; None for anything else."""
    match = _MONTH.match(name)
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Month(name, first, following - timedelta(days=1), _midnight(first), _midnight(following))


def month_of(moment: datetime) -> Month:
    """The business month an instant falls in."""
    month = month_named(business_month(moment))
    assert month is not None
    return month


def sql_day(column: str) -> str:
    """SQL for the business day of a ``timestamptz`` expression."""
    return f"CAST(({column}) AT TIME ZONE '{timezone_name()}' AS date)"


def sql_month(column: str) -> str:
    """SQL for the first day of the business month of a ``timestamptz`` expression."""
    return f"CAST(date_trunc('month', ({column}) AT TIME ZONE '{timezone_name()}') AS date)"
