"""The fuzz runs report how many cases they sent, and how long they took, at the end of the pytest run."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

_RUNS: list[FuzzRun] = []


@dataclass
class FuzzRun:
    profile: str
    cases: int
    seconds: float
    statuses: dict[int, int]
    unnegatable: int  # negative runs where nothing invalid could reach the wire


@pytest.fixture
def fuzz_runs() -> list[FuzzRun]:
    return _RUNS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for run in _RUNS:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses.items()))
        terminalreporter.write_line(
            f"schema fuzzing ({run.profile}): {run.cases} cases in {run.seconds:.0f} s; statuses {statuses}; "
            f"{run.unnegatable} negative run(s) found nothing invalid to send"
        )
