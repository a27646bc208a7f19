"""The six risk signals as set-based queries: each looks at the rows that arrived in its window (after the last
look) to find what they touch (a mobile number, a partner, a consent record, a month), then judges what they touch
over the lookback period, in one statement. What a detector returns is small: the groups past a threshold."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.core.config import Settings
from app.core.partner_filter import PartnerFilter


@dataclass(frozen=True)
class Detected:
    """A signal as found: its kind, the partner, the referrals it names, its evidence (figures, thresholds and
    ids only: no personal data) and its fingerprint (the same finding twice is one signal)."""

    kind: str
    partner_id: str
    referral_ids: tuple[str, ...]
    evidence: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class Window:
    """What a run looks at: rows that arrived in ``(since, now]``, judged over ``(lookback_start, now]``, for
    ``partners``."""

    since: datetime
    now: datetime
    settings: Settings
    partners: PartnerFilter = field(default_factory=PartnerFilter)

    @property
    def lookback_start(self) -> datetime:
        return self.now - timedelta(days=self.settings.risk_lookback_days)

    def params(self, **more: Any) -> dict[str, Any]:
        return {
            "since": self.since,
            "now": self.now,
            "lookback_start": self.lookback_start,
            **self.partners.params,
            **more,
        }


def digest(*parts: object) -> str:
    """A short stable digest for fingerprints (of blind indexes too: never the index itself)."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part if isinstance(part, bytes) else str(part).encode())
        hashed.update(b"\x00")
    return hashed.hexdigest()[:24]


def rate_bp(part: int, whole: int) -> int:
    """``part / whole`` in basis points, rounded down (0 for an empty whole)."""
    return part * 10_000 // whole if whole else 0
