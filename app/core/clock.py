"""The one clock every business rule reads (DESIGN.md, "Time"): attribution windows and expiry, qualification,
hold release, clawback windows, retention, month close, idempotency expiry.

Rules call ``clock.now()`` (or ``business_time.today()``), never ``datetime.now``: in production that is the real
time and nothing can move it (no setting, no route; ``install`` refuses). Outside production a test, and later a
partner's sandbox test clock, may ``install`` another clock for a while.

Infrastructure keeps system or monotonic time on purpose: rate-limit buckets, cache lifetimes, worker pacing and
delivery leases, and credentials (token ``iat``/``exp``, client assertions, webhook signature timestamps), which
others verify against their own real clocks and which a test clock must never lengthen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from app.core.config import Settings, get_settings


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The real time. The only clock production ever reads."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until told to move; for tests and development only (see ``install``)."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        """Moves forward by ``by`` (never back) and answers the new instant."""
        if by < timedelta(0):
            raise ValueError("a clock only advances")
        self._now += by
        return self._now

    def move_to(self, moment: datetime) -> datetime:
        """Sets the instant, in either direction (a test replaying a story out of order)."""
        self._now = _aware(moment)
        return self._now


class ClockLocked(RuntimeError):
    """Raised when something tries to replace the real clock in production."""


Installed = TypeVar("Installed", bound=Clock)
_SYSTEM = SystemClock()
_current: Clock = _SYSTEM


def now() -> datetime:
    """The current instant as the installed clock tells it."""
    return _current.now()


def real_now() -> datetime:
    """The real time, whatever clock is installed: for credentials and infrastructure only (the modules allowed
    to call it are listed, with their reasons, in tests/core/test_clock.py)."""
    return _SYSTEM.now()


def current() -> Clock:
    return _current


@contextmanager
def install(clock: Installed, settings: Settings | None = None) -> Iterator[Installed]:
    """Makes every rule read ``clock`` until the block ends; refused in production."""
    global _current
    if (settings or get_settings()).environment == "production":
        raise ClockLocked("the production clock is the real one and cannot be replaced")
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a clock's instant must be timezone-aware")
    return moment.astimezone(UTC)
