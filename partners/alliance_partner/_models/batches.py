"""Batches of referrals and the result of each line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from alliance_partner._models.common import BatchFormat, BatchStatus, LineOutcome, ReferralStatus


@dataclass(frozen=True)
class BatchCounts:
    total: int
    processed: int
    eligible: int
    existing_client: int
    duplicate: int
    returned_existing: int
    error: int


@dataclass(frozen=True)
class Batch:
    """An uploaded batch and its progress."""

    id: str
    status: BatchStatus
    format: BatchFormat
    counts: BatchCounts
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    links: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    @property
    def progress(self) -> float:
        """Share of the lines processed, from 0.0 to 1.0."""
        return self.counts.processed / self.counts.total if self.counts.total else 1.0


@dataclass(frozen=True)
class LineError:
    field: str | None
    message: str


@dataclass(frozen=True)
class BatchLine:
    """What became of one line of a batch: its referral, or each field at fault."""

    line: int
    external_ref: str | None
    outcome: LineOutcome
    referral_id: str | None
    referral_status: ReferralStatus | None
    errors: list[LineError]


@dataclass(frozen=True)
class BatchReport:
    """A finished batch and the result of each of its lines, in line order.

    Line numbers are the file's own: a CSV header is line 1, so the first data row is line 2. For a batch
    uploaded from rows (sent as JSON Lines), line ``n`` is ``rows[n - 1]``.
    """

    batch: Batch
    results: list[BatchLine]

    def __iter__(self) -> Iterator[BatchLine]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def errors(self) -> list[BatchLine]:
        return [line for line in self.results if line.outcome == "error"]

    def by_outcome(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in self.results:
            counts[line.outcome] = counts.get(line.outcome, 0) + 1
        return counts
