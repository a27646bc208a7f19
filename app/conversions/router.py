"""The back office's conversion feed."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Request

from app.auth.deps import Principal, requires
from app.conversions import service
from app.conversions.schemas import EventBatch, EventBatchResult
from app.core.database import SessionDep
from app.core.problems import problem_responses

router = APIRouter(
    prefix="/v1/conversion-events", tags=["back office"], responses=problem_responses(401, 403, 422, 429)
)


@router.post(
    "",
    response_model=EventBatchResult,
    summary="Report conversion events (up to 10,000 per call)",
    description=(
        "Each event is idempotent by `source_event_id`: a repeat is acknowledged as `duplicate` and not applied "
        "twice. A bad event is `rejected` with its reason and never blocks the others. Events of an account whose "
        "`account_opened` has not arrived are `deferred` and applied when it does. A client's events that share "
        "an `occurred_at` are applied in funnel order (opened, funded, assets snapshot, bundle purchased, bundle "
        "cancelled, revenue, closed), whatever their ids or order. Late events are accepted (fee holds run from "
        "when they are recorded); an event dated further in the future than `ALLIANCE_EVENT_CLOCK_SKEW_S` "
        "(default 300 s) is `rejected`. Identities (on `account_opened`) are hashed on arrival and never stored."
    ),
)
async def report_events(
    body: EventBatch,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("conversions:write")],
) -> EventBatchResult:
    results = await service.ingest_events(session, request.app.state.data_keyring.index, body.events)
    return EventBatchResult(results=results, summary=dict(Counter(result.result for result in results)))
