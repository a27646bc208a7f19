"""The simulated back office's route (sandbox and development only: ``app.main`` leaves it out of production)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from app.auth.deps import Principal, requires
from app.conversions.models import EventStatus
from app.core.database import SessionDep
from app.core.idempotency import IdempotentCreate
from app.core.problems import problem_responses
from app.fees.schemas import line_out
from app.sandbox import simulation
from app.sandbox.simulation_schemas import SimulatedEventOut, SimulationIn, SimulationOut

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"], responses=problem_responses(401, 403, 404, 429))

_DESCRIPTION = """
Reports one back-office event about your referral's client, dated now (your sandbox clock), through the very
conversion feed the firm's back office uses (`POST /v1/conversion-events`): the referral moves down the funnel,
tiers and fees are computed under your program's schedule, clawbacks follow, and your webhooks are notified, as
in production.

The simulated back office keeps one client account per referral (`client_ref` `sbx-<referral id>`) and opens it
with the referral's own identity. `account_opened` needs an `eligible` referral; every other event needs its
account opened first (otherwise 409 `simulation-not-possible`). Money events carry `amount` in integer fen;
bundle events a `product_code` of the referral's program.

The answer is the event as applied (with its `effects`), the referral's status after it, and the fee lines it
created (`pending` through the hold period). Send an `Idempotency-Key` to make a retry safe.
"""


@router.post(
    "/referrals/{referral_id}/simulate",
    status_code=201,
    response_model=SimulationOut,
    responses=problem_responses(409, 422),
    summary="Simulate a back-office event for one of your referrals",
    description=_DESCRIPTION,
)
async def simulate(
    referral_id: str,
    body: SimulationIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:write")],
    once: IdempotentCreate,
) -> Response:
    async def run() -> SimulationOut:
        keyring = request.app.state.data_keyring
        done = await simulation.simulate(
            session,
            principal.tenant,
            principal.actor(request),
            referral_id,
            body,
            await keyring.cipher(session),
            keyring.index,
        )
        return SimulationOut(
            referral_id=done.referral.id,
            referral_status=done.referral.status,
            events=[
                SimulatedEventOut(
                    id=event.id,
                    source_event_id=event.source_event_id,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    client_ref=event.client_ref,
                    amount=event.amount_fen,
                    currency=event.currency,
                    product_code=event.product_code,
                    result="applied" if event.status is EventStatus.applied else "deferred",
                    effects=event.effects,
                )
                for event in done.events
            ],
            fee_lines=[line_out(line) for line in done.fee_lines],
        )

    return await once.create(principal.client_id, body, run)
