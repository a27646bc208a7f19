"""The in-memory failure throttle stays small whatever callers send."""

from __future__ import annotations

import pytest

from app.auth import limits
from app.auth.limits import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limits.time, "monotonic", clock)
    return clock


def test_a_key_waits_after_limit_failures_then_recovers(clock: Clock) -> None:
    throttle = FailureThrottle(limit=3, window_s=60)
    for _ in range(3):
        assert throttle.retry_after("cli_a") == 0
        throttle.record("cli_a")
        clock.now += 1
    assert throttle.retry_after("cli_a") == 57  # the first failure leaves the window in 57 s
    assert throttle.retry_after("cli_b") == 0
    clock.now += 57
    assert throttle.retry_after("cli_a") == 0


def test_lookups_never_create_entries(clock: Clock) -> None:
    throttle = FailureThrottle(limit=3, window_s=60)
    for number in range(1000):
        assert throttle.retry_after(f"cli_{number}") == 0
        assert throttle.retry_after(("cli", f"10.0.0.{number}")) == 0
    assert len(throttle) == 0


def test_keys_whose_failures_left_the_window_are_dropped(clock: Clock) -> None:
    throttle = FailureThrottle(limit=3, window_s=60)
    for number in range(100):
        throttle.record(f"cli_{number}")
    assert len(throttle) == 100
    clock.now += 61
    assert throttle.retry_after("cli_5") == 0
    throttle.record("cli_new")
    assert len(throttle) == 1


def test_the_number_of_keys_is_bounded_forgetting_the_oldest(clock: Clock) -> None:
    throttle = FailureThrottle(limit=2, window_s=60, max_keys=10)
    throttle.record("first")
    throttle.record("first")
    for number in range(20):
        clock.now += 0.1
        throttle.record(f"key_{number}")
    assert len(throttle) == 10
    assert throttle.retry_after("first") == 0  # forgotten, the oldest
    throttle.record("key_19")
    assert throttle.retry_after("key_19") > 0


def test_each_key_is_small(clock: Clock) -> None:
    throttle = FailureThrottle(limit=3, window_s=60)
    for _ in range(1000):
        throttle.record("k" * 1_000_000)
    [(key, failures)] = throttle._failures.items()
    assert len(key) <= limits.MAX_KEY_PART_CHARS
    assert len(failures) == 3
    assert throttle.retry_after("k" * 2_000_000) > 0  # the same (truncated) key
    throttle.record(("c" * 1000, "a" * 1000))
    assert all(len(part) <= limits.MAX_KEY_PART_CHARS for part in list(throttle._failures)[-1])
