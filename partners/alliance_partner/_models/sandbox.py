"""The sandbox: your test clock, and what the simulated back office did with an event you asked it to report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from alliance_partner._models.common import ReferralStatus
from alliance_partner._models.statements import StatementLine

#: What the simulated back office can report about your referral's client.
SimulatedEventType = Literal[
    "account_opened",
    "account_funded",
    "assets_snapshot",
    "bundle_purchased",
    "bundle_cancelled",
    "revenue_recorded",
    "account_closed",
]


@dataclass(frozen=True)
class SandboxClock:
    """Your sandbox's test clock: the time every rule reads for you, and how far it was moved from real time.

    It moves only forward, and only when you (or the firm's staff) advance it."""

    now: datetime
    advanced_by_s: float


@dataclass(frozen=True)
class ClockAdvance:
    """What advancing the clock did: where it stands now, and every job that fell due on the way (expiry, hold
    release, retention, month close), in the order they ran, as the API describes each."""

    now: datetime
    advanced_by_s: float
    ran: list[dict[str, Any]]


@dataclass(frozen=True)
class SimulatedEvent:
    """A conversion event as the feed stored and applied it (``effects``: assets, tier, attribution...)."""

    id: str
    source_event_id: str
    type: SimulatedEventType
    occurred_at: datetime
    client_ref: str
    amount: int | None
    currency: str | None
    product_code: str | None
    result: str
    effects: dict[str, Any]


@dataclass(frozen=True)
class Simulation:
    """What a simulated event did: the event(s) applied, the referral's status after them, and the fee lines
    they created (``pending`` through the program's hold period)."""

    referral_id: str
    referral_status: ReferralStatus
    events: list[SimulatedEvent]
    fee_lines: list[StatementLine]
