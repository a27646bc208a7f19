"""The one clock every business rule reads (DESIGN.md, "Time"): attribution windows and expiry, qualification,
hold release, clawback windows, retention, month close, idempotency expiry.

Rules call ``clock.now()`` (or ``business_time.today()``), never ``datetime.now``: in production that is the real
time and nothing can move it (no setting, no route; ``install`` and ``scoped`` refuse). Outside production a test
may ``install`` another clock for a while, and a partner's sandbox test clock (``app.sandbox``) is ``scoped`` to
the work done for that partner: its requests (``enter_for_request``, inside ``request_scope``), its batches and the
jobs its clock's advance runs. A scoped clock wins over the installed one, in its context only.

Infrastructure keeps system or monotonic time on purpose: rate-limit buckets, cache lifetimes, worker pacing and
delivery leases, and credentials (token ``iat``/``exp``, client assertions, webhook signature timestamps), which
others verify against their own real clocks and which a test clock must never lengthen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


class FrozenClock:
    """A clock standing at one instant: a partner's test clock between two advances."""

    def __init__(self, moment: datetime) -> None:
        self._now = _aware(moment)

    def now(self) -> datetime:
        return self._now


class ClockLocked(RuntimeError):
    """Raised when something tries to replace the real clock in production."""


Installed = TypeVar("Installed", bound=Clock)
_SYSTEM = SystemClock()
_current: Clock = _SYSTEM
_scoped: ContextVar[Clock | None] = ContextVar("alliance_scoped_clock", default=None)


def now() -> datetime:
    """The current instant as the clock of this context (a partner's test clock) or the installed one tells it."""
    return (_scoped.get() or _current).now()


def real_now() -> datetime:
    """The real time, whatever clock is installed: for credentials and infrastructure only (the modules allowed
    to call it are listed, with their reasons, in tests/core/test_clock.py)."""
    return _SYSTEM.now()


def current() -> Clock:
    return _scoped.get() or _current


@contextmanager
def install(clock: Installed, settings: Settings | None = None) -> Iterator[Installed]:
    """Makes every rule read ``clock`` until the block ends; refused in production."""
    global _current
    _refuse_in_production(settings)
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous


@contextmanager
def scoped(clock: Installed, settings: Settings | None = None) -> Iterator[Installed]:
    """Makes every rule read ``clock`` in this context (this task and the tasks it starts) until the block ends;
    refused in production."""
    _refuse_in_production(settings)
    token = _scoped.set(clock)
    try:
        yield clock
    finally:
        _scoped.reset(token)


@contextmanager
def request_scope() -> Iterator[None]:
    """One HTTP request: it starts on the installed clock, and whatever clock ``enter_for_request`` sets during it
    ends with it (the ASGI middleware wraps every request in this)."""
    token = _scoped.set(None)
    try:
        yield
    finally:
        _scoped.reset(token)


def enter_for_request(clock: Clock, settings: Settings | None = None) -> None:
    """The rest of this request reads ``clock`` (a partner's test clock, once its principal is known); refused in
    production. Only inside ``request_scope``, which ends it."""
    _refuse_in_production(settings)
    _scoped.set(clock)


def _refuse_in_production(settings: Settings | None) -> None:
    if (settings or get_settings()).environment == "production":
        raise ClockLocked("the production clock is the real one and cannot be replaced")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a clock's instant must be timezone-aware")
    return moment.astimezone(UTC)
