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
    """Your sandbox's test clock: ``now`` is the time every rule reads for you. Until you first advance it, it
    follows real time (``frozen`` false); from then on it stands at ``now`` between advances, ``advanced_by_s``
    seconds ahead in all. It only moves forward."""

    partner_id: str
    now: datetime
    advanced_by_s: int
    frozen: bool


@dataclass(frozen=True)
class ClockJob:
    """One job that fell due while the clock moved: ``expire_referrals``, ``erase_unconverted`` or
    ``release_held_fees``, when it ran and how many rows it changed."""

    job: str
    at: datetime
    rows: int


@dataclass(frozen=True)
class ClosedMonth:
    """A month that ended while the clock moved, closed for you: its draft statement, which finance issues."""

    period: str
    at: datetime
    released_lines: int
    statemented_lines: int
    created_statements: int
    statement_ids: list[str]


@dataclass(frozen=True)
class ClockAdvance:
    """What advancing the clock did, in time order: the jobs that fell due and the months closed on the way."""

    partner_id: str
    previous_now: datetime
    clock: SandboxClock
    jobs: list[ClockJob]
    months_closed: list[ClosedMonth]


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
