"""API shapes of partners' sandbox test clocks."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.fees.schemas import LinesUnderReview
from app.sandbox.service import MAX_ADVANCE

_NOW = "2027-01-31T16:00:00Z"


class ClockOut(BaseModel):
    """A partner's test clock. ``frozen`` false: the partner has never advanced it and follows real time; true:
    its time stands at ``now`` until the next advance."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"partner_id": "ptn_x1", "now": _NOW, "advanced_by_s": 2_592_000, "frozen": True}]
        }
    )

    partner_id: str
    now: datetime = Field(description="The partner's current time: what every rule reads in its requests.")
    advanced_by_s: int = Field(description="How far the clock has been moved ahead in all, in seconds.")
    frozen: bool = Field(description="True once advanced: the clock stands still between advances.")


class AdvanceIn(BaseModel):
    """Exactly one of ``to`` (an instant after the clock's ``now``) and ``by_days``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"by_days": 30}, {"to": "2027-03-01T00:00:00+08:00"}]},
    )

    to: AwareDatetime | None = Field(default=None, description="RFC 3339 instant, with its offset.")
    by_days: int | None = Field(default=None, ge=1, le=MAX_ADVANCE.days, description="Whole days to move ahead.")
    partner_id: str | None = Field(
        default=None, max_length=40, description="Staff: the partner whose clock moves. A partner names only itself."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AdvanceIn:
        if (self.to is None) == (self.by_days is None):
            raise ValueError("give exactly one of `to` and `by_days`")
        return self


class JobRunOut(BaseModel):
    job: str = Field(description="expire_referrals, erase_unconverted or release_held_fees")
    at: datetime = Field(description="The clock's instant when it ran.")
    rows: int = Field(description="Rows the job changed.")


class MonthCloseOut(BaseModel):
    period: str = Field(examples=["2027-01"])
    at: datetime = Field(description="The month's end, when it was closed for the partner.")
    released_lines: int
    statemented_lines: int
    created_statements: int
    statement_ids: list[str]
    under_review: LinesUnderReview = Field(
        description=(
            "The partner's lines due by the month's end that the close left out because they are under review; "
            "they go on a later statement once the review ends."
        )
    )


class AdvanceOut(BaseModel):
    """What an advance did, in time order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "partner_id": "ptn_x1",
                    "previous_now": "2027-01-01T08:00:00Z",
                    "clock": {"partner_id": "ptn_x1", "now": _NOW, "advanced_by_s": 2_649_600, "frozen": True},
                    "jobs": [{"job": "release_held_fees", "at": "2027-01-20T03:12:09Z", "rows": 2}],
                    "months_closed": [
                        {
                            "period": "2027-01",
                            "at": _NOW,
                            "released_lines": 0,
                            "statemented_lines": 2,
                            "created_statements": 1,
                            "statement_ids": ["stm_1"],
                            "under_review": {"lines": 0, "amount_fen": 0, "currency": "CNY", "partners": 0},
                        }
                    ],
                }
            ]
        }
    )

    partner_id: str
    previous_now: datetime
    clock: ClockOut
    jobs: list[JobRunOut]
    months_closed: list[MonthCloseOut]
