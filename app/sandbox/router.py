"""HTTP for partners' sandbox test clocks; mounted only where the sandbox is enabled (``app.main``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import SecurityScopes

from app.auth.deps import InsufficientScope, Principal, authenticate
from app.auth.scopes import PrincipalKind
from app.core.database import SessionDep
from app.core.problems import NotFound, Unprocessable, problem_responses
from app.fees.schemas import LinesUnderReview
from app.sandbox import service
from app.sandbox.schemas import AdvanceIn, AdvanceOut, ClockOut, JobRunOut, MonthCloseOut

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"], responses=problem_responses(401, 403, 404, 429))

# Reading a clock: a partner with referrals:read (its own), any staff role (catalog:read). Moving one: a partner
# with referrals:write (the advance expires and erases its referrals), an alliance manager (catalog:write: they
# onboard partners) or finance (finance:write: the advance closes the partner's months).
READ: dict[str, tuple[str, ...]] = {"partner": ("referrals:read",), "staff": ("catalog:read",)}
ADVANCE: dict[str, tuple[str, ...]] = {"partner": ("referrals:write",), "staff": ("catalog:write", "finance:write")}


def _openapi_security(needs: dict[str, tuple[str, ...]]) -> dict[str, object]:
    return {"security": [{"oauth2": [scope]} for scopes in needs.values() for scope in scopes]}


def _caller(needs: dict[str, tuple[str, ...]]):  # type: ignore[no-untyped-def]
    async def dependency(request: Request, session: SessionDep) -> Principal:
        principal = await authenticate(SecurityScopes([]), request, session, request.headers.get("Authorization"))
        kind = "partner" if principal.is_partner else "staff" if principal.kind is PrincipalKind.staff else None
        if kind is not None and any(scope in principal.scopes for scope in needs[kind]):
            return principal
        wanted = " or ".join(f"{scope} ({who})" for who, scopes in needs.items() for scope in scopes)
        raise InsufficientScope(
            f"This call needs {wanted}.",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(sum(needs.values(), ()))}"'
            },
        )

    return dependency


Reader = Annotated[Principal, Depends(_caller(READ))]
Advancer = Annotated[Principal, Depends(_caller(ADVANCE))]


class PartnerRequired(Unprocessable):
    slug, title = "partner-required", "Name the partner"


def _partner_of(principal: Principal, named: str | None) -> str:
    """Whose clock: a partner's own (naming another partner is not found), or the one staff name."""
    if principal.is_partner:
        if named is not None and named != principal.partner_id:
            raise NotFound("No such partner.")
        return principal.partner_id or ""
    if named is None:
        raise PartnerRequired("Staff name the partner: `partner_id`.")
    return named


def _clock_out(view: service.ClockView) -> ClockOut:
    return ClockOut(partner_id=view.partner_id, now=view.now, advanced_by_s=view.advanced_by_s, frozen=view.frozen)


@router.get(
    "/clock",
    response_model=ClockOut,
    responses=problem_responses(422),
    openapi_extra=_openapi_security(READ),
    summary="The caller's test clock",
    description=(
        "The partner's sandbox test clock: the time every rule reads in the partner's requests and batches. A "
        "partner that never advanced it follows real time (`frozen` false); once advanced, its time stands at "
        "`now` until the next advance. Staff read any partner's with `?partner_id=`; a partner naming another "
        "partner gets 404. Exists only in a sandbox or development deployment (404 in production)."
    ),
)
async def get_clock(
    session: SessionDep,
    principal: Reader,
    partner_id: Annotated[str | None, Query(max_length=40, description="Staff: whose clock.")] = None,
) -> ClockOut:
    return _clock_out(await service.read_clock(session, _partner_of(principal, partner_id)))


@router.post(
    "/clock/advance",
    response_model=AdvanceOut,
    responses=problem_responses(409, 422),
    openapi_extra=_openapi_security(ADVANCE),
    summary="Advance the test clock, running every job due in between",
    description=(
        "Moves the partner's test clock forward, `to` an instant (RFC 3339) or `by_days`, at most "
        f"{service.MAX_ADVANCE.days} days per call; a `to` not after the clock's `now` is refused (409, "
        "`clock-moves-forward-only`). Every job that falls due in between runs for this partner only, in time "
        "order, at its own instant: referral expiry (window ends), fee hold release (`hold_until`), erasure of "
        "unconverted referrals' personal data after the retention period, and a month close (draft statement) "
        "at each business month's end, which leaves out the lines of referrals under review (counted in its "
        "`under_review`). Advancing in small steps or in one step gives the same ledger, statements, "
        "timelines and webhook notices (dated on the partner's clock; they are delivered at once). Concurrent "
        "advances of one partner wait for each other. Staff name the partner in `partner_id`. Audited."
    ),
)
async def advance_clock(body: AdvanceIn, request: Request, session: SessionDep, principal: Advancer) -> AdvanceOut:
    partner_id = _partner_of(principal, body.partner_id)
    by = timedelta(days=body.by_days) if body.by_days is not None else None
    result = await service.advance(
        session, principal.actor(request), request.app.state.settings, partner_id, to=body.to, by=by
    )
    # The clock is read with the token's standing, which this process may cache: the partner's next call must see
    # the new time (other processes forget it on the database's notice, sent when this commits).
    await session.commit()
    request.app.state.token_standings.changed(f"partner:{partner_id}")
    return AdvanceOut(
        partner_id=result.partner_id,
        previous_now=result.previous_now,
        clock=_clock_out(result.clock),
        jobs=[JobRunOut(job=run.job, at=run.at, rows=run.rows) for run in result.jobs],
        months_closed=[
            MonthCloseOut(
                period=close.period,
                at=close.at,
                released_lines=close.released_lines,
                statemented_lines=close.statemented_lines,
                created_statements=close.created_statements,
                statement_ids=close.statement_ids,
                under_review=LinesUnderReview.of(close.under_review),
            )
            for close in result.months_closed
        ],
    )
