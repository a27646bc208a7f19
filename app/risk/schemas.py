"""Risk shapes: the ``Signal`` the risk detectors raise (the contract with ``app.risk.signals``), and the staff
API's request and response bodies."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SignalKind(StrEnum):
    """What a detector saw (DESIGN.md, "Risk")."""

    shared_mobile = "shared_mobile"  # one mobile number on several identities
    referral_burst = "referral_burst"  # referrals far above the partner's normal rate
    reused_consent = "reused_consent"  # the same consent evidence across many clients
    funded_then_emptied = "funded_then_emptied"  # funded and emptied or closed inside the hold
    bundle_churn = "bundle_churn"  # bundles bought and cancelled in the cooling-off period again and again
    outlier_rates = "outlier_rates"  # rejection or existing-client rate far above the partner's peers


class Signal(BaseModel):
    """One signal for one partner, as a detector raises it with ``app.risk.service.raise_signal``.

    ``evidence`` is JSON, shown to alliance managers as it is: by convention ``thresholds`` (what the detector
    allows), ``observed`` (what it measured) and ``items`` (the rows concerned) — never personal data in clear,
    only blind-index hashes, masked values and ids. ``fingerprint`` names the finding: raising the same
    fingerprint again adds nothing (a detector run twice over the same data is harmless).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SignalKind
    partner_id: str = Field(min_length=1, max_length=40)
    referral_ids: tuple[str, ...] = Field(default=(), max_length=10_000)
    evidence: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str = Field(min_length=1, max_length=160)

    @field_validator("referral_ids")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("evidence")
    @classmethod
    def _json_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"evidence must be plain JSON: {exc}") from exc
        return value


class CaseStatus(StrEnum):
    open = "open"
    closed = "closed"


class CaseOutcome(StrEnum):
    cleared = "cleared"  # nothing wrong: the held lines go into the next close
    confirmed = "confirmed"  # fraud or abuse: the lines are reversed and the referrals rejected


class CaseEventKind(StrEnum):
    opened = "opened"
    signal_added = "signal_added"
    assigned = "assigned"
    note = "note"
    closed = "closed"


# How many referral ids and fee lines a case's page carries inline (and a signal on it); the rest are paged: a case
# on a large partner can name thousands.
INLINED = 100


class SignalOut(BaseModel):
    id: str
    kind: SignalKind
    fingerprint: str
    referral_ids: list[str] = Field(
        description=f"The first referrals the signal names (at most {INLINED}); `referral_count` counts them all, and "
        "the case's `/referrals` pages through every referral of the case."
    )
    referral_count: int
    evidence: dict[str, Any]
    raised_at: datetime


class CaseEventOut(BaseModel):
    id: str
    kind: CaseEventKind
    actor_id: str | None
    details: dict[str, Any]
    at: datetime


class CaseLineOut(BaseModel):
    id: str
    referral_id: str | None
    external_ref: str | None
    rule: str
    amount_fen: int
    currency: str
    status: str
    hold_until: datetime
    statement_id: str | None


class RiskCaseOut(BaseModel):
    id: str
    partner_id: str
    status: CaseStatus
    outcome: CaseOutcome | None
    assignee_id: str | None
    reason: str | None
    signal_kinds: list[SignalKind]
    referral_count: int
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None


class CaseReferralOut(BaseModel):
    referral_id: str
    added_at: datetime = Field(description="When a signal added the referral to the case.")


class RiskCaseDetail(RiskCaseOut):
    referral_ids: list[str] = Field(
        description=f"The first referrals the case names (at most {INLINED}, oldest first); `referral_count` "
        "counts all."
    )
    signals: list[SignalOut]
    lines: list[CaseLineOut] = Field(
        description=f"The first fee lines of those referrals (at most {INLINED}, in the order written); `line_count` "
        "counts all."
    )
    line_count: int
    truncated: bool = Field(
        description="True when `referral_ids` or `lines` hold fewer than `referral_count` or `line_count`: page "
        "them all from `/referrals` and `/lines`."
    )
    lines_held_fen: int = Field(description="Over every line of the case, not only those shown.")
    timeline: list[CaseEventOut]


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee_id: str | None = Field(
        default=None,
        max_length=80,
        description="`person:<username>` of an active person whose role acts on risk cases (an alliance manager); "
        "null unassigns.",
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CaseOutcome
    reason: str = Field(min_length=3, max_length=500, description="Why; kept on the case and in the audit log.")
