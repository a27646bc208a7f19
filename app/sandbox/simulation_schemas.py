"""API shapes of the simulated back office: what a partner asks it to report, and what applying it did."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic.config import JsonDict

from app.conversions.models import BUNDLE_EVENTS, MONEY_EVENTS, EventType
from app.fees.schemas import StatementLineOut
from app.referrals.models import ReferralStatus

_EXAMPLES: list[JsonDict] = [
    {"type": "account_opened"},
    {"type": "account_funded", "amount": 200_000_000},
    {"type": "bundle_purchased", "amount": 5_000_000, "product_code": "BANK_WM_PLUS_EQUITY"},
    {"type": "account_closed"},
]


class SimulationIn(BaseModel):
    """One back-office event about the referral's client, reported now (by the caller's clock)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": list(_EXAMPLES)})

    type: EventType = Field(description="What the back office reports about the referral's client.")
    amount: StrictInt | None = Field(
        default=None,
        ge=0,
        le=10**15,
        description="Integer fen (CNY), required on money events (`account_funded`, `assets_snapshot`, "
        "`bundle_purchased`, `bundle_cancelled`, `revenue_recorded`), absent on the others.",
    )
    product_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="On `bundle_purchased` and `bundle_cancelled` only: a bundled product of the referral's program.",
    )

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> Self:
        if self.type in MONEY_EVENTS and self.amount is None:
            raise ValueError(f"{self.type.value} needs amount (integer fen)")
        if self.type not in MONEY_EVENTS and self.amount is not None:
            raise ValueError(f"{self.type.value} carries no amount")
        if self.type in BUNDLE_EVENTS and self.product_code is None:
            raise ValueError(f"{self.type.value} needs product_code")
        if self.type not in BUNDLE_EVENTS and self.product_code is not None:
            raise ValueError(f"{self.type.value} carries no product_code")
        return self


class SimulatedEventOut(BaseModel):
    """The conversion event as the feed stored and applied it."""

    id: str
    source_event_id: str = Field(description="The simulated back office's id for the event (`sbx-…`).")
    type: EventType
    occurred_at: datetime = Field(description="The caller's clock when it was reported (its test clock).")
    client_ref: str = Field(description="The simulated client account of the referral.")
    amount: int | None = Field(description="Integer fen, on money events.")
    currency: str | None
    product_code: str | None
    result: Literal["applied", "deferred"] = Field(
        description="`deferred`: the account is not open, so the feed keeps it until it is (never for a simulation "
        "the platform accepted)."
    )
    effects: dict[str, Any] = Field(description="What applying it changed (assets, tier, attribution, conversion).")


class SimulationOut(BaseModel):
    """What the simulated event did: the event(s) applied, where the referral stands, the fee lines it created."""

    referral_id: str
    referral_status: ReferralStatus = Field(description="The referral's status after the event.")
    events: list[SimulatedEventOut]
    fee_lines: list[StatementLineOut] = Field(
        description="Ledger lines the event created (bounty, top-up, bundle fee, revenue share, caps, clawbacks). "
        "They are `pending` through the program's hold period."
    )
