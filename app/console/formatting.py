"""How the console writes numbers, money and times for people (CONSOLE.md, "Numbers"): CNY from integer fen with
thousands separators and two decimals, rates as percentages with one decimal, counts with separators, instants in
the business timezone."""

from __future__ import annotations

from datetime import date, datetime

from app.core.business_time import local

NOT_APPLICABLE = "—"


def yuan(fen: int | None, *, sign: bool = False) -> str:
    """``123456`` fen → ``1,234.56``; ``None`` → ``—``. Exact: integer arithmetic only."""
    if fen is None:
        return NOT_APPLICABLE
    negative = fen < 0
    whole, cents = divmod(abs(fen), 100)
    text = f"{whole:,}.{cents:02d}"
    if negative:
        return "-" + text
    return ("+" + text) if sign and fen > 0 else text


def count(value: int | None) -> str:
    return NOT_APPLICABLE if value is None else f"{value:,}"


def percent(ratio: float | None, *, digits: int = 1) -> str:
    """``0.1234`` → ``12.3%``; ``None`` (nothing to divide by) → ``—``."""
    if ratio is None:
        return NOT_APPLICABLE
    return f"{ratio * 100:.{digits}f}%"


def moment(value: datetime | None, *, seconds: bool = False) -> str:
    """An instant in business time, ``2026-12-03 09:30``."""
    if value is None:
        return NOT_APPLICABLE
    return local(value).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def day(value: date | datetime | None) -> str:
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, datetime):
        value = local(value).date()
    return value.isoformat()
