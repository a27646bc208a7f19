"""API shapes of the conversion feed. Each event is validated on its own: a bad event never blocks the others."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from app.conversions.models import BUNDLE_EVENTS, MONEY_EVENTS, EventType
from app.privacy.identity import one_identity

MAX_EVENTS = 10_000


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_event_id: str = Field(min_length=1, max_length=100)
    type: EventType
    occurred_at: AwareDatetime
    client_ref: str = Field(min_length=1, max_length=80)
    national_id: str | None = Field(default=None, max_length=18, description="On account_opened, for individuals.")
    credit_code: str | None = Field(default=None, max_length=18, description="On account_opened, for enterprises.")
    amount: StrictInt | None = Field(default=None, ge=0, le=10**15, description="Integer fen, on money events.")
    currency: Literal["CNY"] | None = None
    product_code: str | None = Field(default=None, max_length=40, description="On bundle events.")

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> Self:
        if self.type is EventType.account_opened:
            self.national_id, self.credit_code = one_identity(
                self.national_id,
                self.credit_code,
                missing="account_opened needs exactly one of national_id or credit_code",
            )
        elif self.national_id is not None or self.credit_code is not None:
            raise ValueError("identity is only sent on account_opened")
        if self.type in MONEY_EVENTS:
            if self.amount is None or self.currency is None:
                raise ValueError(f"{self.type.value} needs amount (integer fen) and currency")
        elif self.amount is not None:
            raise ValueError(f"{self.type.value} carries no amount")
        if self.type in BUNDLE_EVENTS and not self.product_code:
            raise ValueError(f"{self.type.value} needs product_code")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Objects, not ``EventIn``: each event is validated on its own, so that a bad one is rejected in the results
    # without refusing the batch. The document still lists ``EventIn`` (see ``app.main.DOCUMENTED_SCHEMAS``).
    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description="Up to 10,000 events, each an `EventIn` object; an invalid one is `rejected` in the results "
        "without refusing the others.",
    )


class EventResult(BaseModel):
    index: int
    source_event_id: str | None
    result: Literal["applied", "deferred", "duplicate", "rejected"] = Field(
        description="`deferred`: kept, and applied once the account's `account_opened` arrives."
    )
    reason: str | None = None
    referral_id: str | None = None


class EventBatchResult(BaseModel):
    results: list[EventResult]
    summary: dict[str, int]
