"""Referral endpoints: the partner's intake and reading, staff oversight, the back office's client registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.auth.deps import Principal, requires
from app.core import clock
from app.core.business_time import business_day
from app.core.database import SessionDep
from app.core.idempotency import Answer, IdempotentCall, IdempotentCreateKeyRequired, fingerprint, stored_answer
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.referrals import overrides, oversight, registry, service, submission
from app.referrals.models import (
    ConflictStatus,
    Referral,
    ReferralEvent,
    ReferralKind,
    ReferralStatus,
)
from app.referrals.schemas import (
    AttributionAward,
    AttributionMoveOut,
    ConflictOut,
    ConflictResolution,
    ConflictSide,
    LedgerChangeOut,
    MaskedSubject,
    PartnerRef,
    ProgramRef,
    ReferralCreate,
    ReferralEventOut,
    ReferralOut,
    StaffReferralOut,
    UnmaskedSubject,
    Withdrawal,
)
from app.referrals.submission_router import SubmissionRoute

partner_router = APIRouter(prefix="/v1/referrals", tags=["referrals"], responses=problem_responses(401, 403, 404, 429))
staff_router = APIRouter(prefix="/v1/admin", tags=["attribution"], responses=problem_responses(401, 403, 404, 429))
back_office_router = APIRouter(
    prefix="/v1/client-registry", tags=["back office"], responses=problem_responses(401, 403, 413, 429)
)

Paging = Annotated[PageParams, Depends(page_params)]


def referral_out(referral: Referral) -> ReferralOut:
    return ReferralOut(
        id=referral.id,
        program_id=referral.program_id,
        external_ref=referral.external_ref,
        kind=referral.kind,
        status=referral.status,
        subject=MaskedSubject(
            name=referral.name_masked,
            mobile=referral.mobile_masked,
            identifier=referral.identifier_masked,
            erased=referral.erased_at is not None,
        ),
        age_band=referral.age_band,
        declared_assets_band=referral.declared_assets_band,
        window_ends_at=referral.window_ends_at,
        outcome_at=referral.outcome_at,
        created_at=referral.created_at,
        updated_at=referral.updated_at,
    )


def event_out(event: ReferralEvent) -> ReferralEventOut:
    return ReferralEventOut(
        id=event.id,
        from_status=event.from_status,
        to_status=event.to_status,
        cause=event.cause,
        details=event.details,
        created_at=event.created_at,
    )


# --- partner ----------------------------------------------------------------------------------------------------


async def submit_referral(
    body: ReferralCreate,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:write")],
    once: IdempotentCreateKeyRequired,
) -> Response:
    keyring = request.app.state.data_keyring
    cipher = await keyring.cipher(session)

    async def submit() -> Answer:
        submitted = await service.submit_referral(session, principal.tenant, body, cipher, keyring.index)
        return Answer(201 if submitted.created else 200, referral_out(submitted.referral))

    # The common cases in one statement; the others (see app.referrals.submission) by the general path.
    assert once.key is not None  # the header is required
    now = clock.now()
    candidate = service.encrypted_candidate(0, body, body.program_id, 0, cipher, keyring.index, business_day(now))
    done = await submission.submit_in_one_statement(
        session,
        owner=principal.client_id,
        key=once.key,
        request_hash=fingerprint(request.method, request.url.path, body),
        partner_id=principal.tenant.own_partner_id,
        candidate=candidate,
        now=now,
    )
    if done.answer is not None:
        return stored_answer(done.answer.status_code, done.answer.body, replayed=done.answer.replayed)
    if done.claimed:
        answer = await submit()
        return await IdempotentCall(session, principal.client_id, once.key).remember(answer.status_code, answer.body)
    return await once.create(principal.client_id, body, submit)


partner_router.add_api_route(
    "",
    submit_referral,
    methods=["POST"],
    route_class_override=SubmissionRoute,  # the usual request without FastAPI's dependency solving
    status_code=201,
    response_model=ReferralOut,
    responses={
        200: {"model": ReferralOut, "description": "You already referred this person: your existing referral"},
        **problem_responses(409, 422),
    },
    summary="Submit one referral",
    description=(
        "Validates, encrypts and attributes at once: the answer's `status` is the attribution outcome "
        "(`eligible`, `existing_client`, `duplicate`). Sending the same person again returns your existing "
        "referral with 200. `Idempotency-Key` is required: the same key and body return the first answer."
    ),
)


@partner_router.get("", response_model=Page[ReferralOut], summary="Your referrals, newest first")
async def list_referrals(
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:read")],
    params: Paging,
    status: ReferralStatus | None = None,
    program_id: Annotated[str | None, Query(max_length=40)] = None,
    kind: ReferralKind | None = None,
    external_ref: Annotated[str | None, Query(max_length=100)] = None,
    created_from: AwareDatetime | None = None,
    created_to: AwareDatetime | None = None,
) -> Page[ReferralOut]:
    filters = service.ReferralFilters(
        status=status,
        program_id=program_id,
        kind=kind,
        external_ref=external_ref,
        created_from=created_from,
        created_to=created_to,
    )
    rows = await service.list_referrals(session, principal.tenant, params, filters)
    return page_of(rows, params, referral_out)


@partner_router.get("/{referral_id}", response_model=ReferralOut, summary="One of your referrals")
async def get_referral(
    referral_id: str, session: SessionDep, principal: Annotated[Principal, requires("referrals:read")]
) -> ReferralOut:
    return referral_out(await service.get_referral(session, principal.tenant, referral_id))


@partner_router.get("/{referral_id}/events", response_model=list[ReferralEventOut], summary="A referral's timeline")
async def get_referral_events(
    referral_id: str, session: SessionDep, principal: Annotated[Principal, requires("referrals:read")]
) -> list[ReferralEventOut]:
    return [event_out(event) for event in await service.referral_events(session, principal.tenant, referral_id)]


@partner_router.post(
    "/{referral_id}/withdraw",
    response_model=ReferralOut,
    summary="Withdraw a referral and erase its personal data",
    description="The row, its timeline and its money history are kept; name, mobile and ID number are erased.",
)
async def withdraw_referral(
    referral_id: str,
    body: Withdrawal,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:write")],
) -> ReferralOut:
    referral = await service.withdraw_referral(
        session, principal.tenant, principal.actor(request), referral_id, body.reason, body.note
    )
    return referral_out(referral)


# --- staff ------------------------------------------------------------------------------------------------------

AttributionManager = Annotated[Principal, requires("attribution:manage")]


class ReferralSearch(BaseModel):
    """Search across partners. Identifiers are matched through the blind index, never stored or logged."""

    model_config = ConfigDict(extra="forbid")

    national_id: str | None = Field(default=None, max_length=18)
    credit_code: str | None = Field(default=None, max_length=18)
    mobile: str | None = Field(default=None, max_length=20)
    partner_id: str | None = Field(default=None, max_length=40)
    status: ReferralStatus | None = None


@staff_router.get("/referrals", response_model=Page[ReferralOut], summary="Referrals of every partner")
async def staff_list_referrals(
    session: SessionDep,
    principal: AttributionManager,
    params: Paging,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
    status: ReferralStatus | None = None,
    program_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[ReferralOut]:
    filters = service.ReferralFilters(partner_id=partner_id, status=status, program_id=program_id)
    return page_of(await service.list_referrals(session, principal.tenant, params, filters), params, referral_out)


@staff_router.post(
    "/referrals/search",
    response_model=Page[ReferralOut],
    responses=problem_responses(422),
    summary="Find referrals by ID number, credit code or mobile",
)
async def staff_search_referrals(
    body: ReferralSearch, request: Request, session: SessionDep, principal: AttributionManager, params: Paging
) -> Page[ReferralOut]:
    index = request.app.state.data_keyring.index
    filters = service.ReferralFilters(
        partner_id=body.partner_id,
        status=body.status,
        identity_hash=registry.search_identity_hash(index, body.national_id, body.credit_code),
        mobile_hash=registry.search_mobile_hash(index, body.mobile),
    )
    return page_of(await service.list_referrals(session, principal.tenant, params, filters), params, referral_out)


class UnmaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(min_length=3, max_length=300, description="Why the data is needed; kept in the audit log.")


@staff_router.post(
    "/referrals/{referral_id}/unmask",
    response_model=UnmaskedSubject,
    summary="Read one referral's personal data in clear (audited)",
)
async def unmask_referral(
    referral_id: str,
    body: UnmaskRequest,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("pii:unmask")],
) -> UnmaskedSubject:
    cipher = await request.app.state.data_keyring.cipher(session)
    clear = await service.unmask_referral(session, principal.actor(request), referral_id, cipher, body.purpose)
    return UnmaskedSubject(**clear)


def staff_referral_out(found: oversight.StaffReferral) -> StaffReferralOut:
    return StaffReferralOut(
        **referral_out(found.referral).model_dump(),
        partner=PartnerRef(id=found.partner.id, name=found.partner.name),
        program=ProgramRef(id=found.program.id, name=found.program.name),
        client_ref=found.referral.client_ref,
        timeline=[event_out(event) for event in found.timeline],
    )


@staff_router.get(
    "/referrals/{referral_id}",
    response_model=StaffReferralOut,
    summary="One referral of any partner, with its partner, program and timeline",
    description="The subject stays masked; `POST /v1/admin/referrals/{id}/unmask` reads it in clear (audited).",
)
async def staff_get_referral(referral_id: str, session: SessionDep, principal: AttributionManager) -> StaffReferralOut:
    return staff_referral_out(await oversight.staff_referral(session, referral_id))


@staff_router.post(
    "/referrals/{referral_id}/award",
    response_model=AttributionMoveOut,
    responses=problem_responses(409, 422),
    summary="Move the attribution of this referral's person to this referral (override, audited)",
    description=(
        "At any stage of the funnel: the referral holding the person now becomes `duplicate`, this one (a "
        "`duplicate`) takes its client account over and its status follows the account's events. Fees follow: "
        "the old holder's lines are reversed by `attribution_moved` lines, this referral accrues from the same "
        "events under its own program's fee schedule; both partners see it on their next statement, and their "
        "timelines and webhooks carry the cause `attribution_moved`. Awarding a referral that already holds the "
        "person changes nothing (`moved` false); an open conflict naming this referral as the duplicate is "
        "resolved. Conflicts are resolved the same way by `POST /v1/admin/conflicts/{id}/resolve`."
    ),
)
async def award_attribution(
    referral_id: str, body: AttributionAward, request: Request, session: SessionDep, principal: AttributionManager
) -> AttributionMoveOut:
    move = await overrides.move_attribution(session, principal.actor(request), referral_id, body.reason)
    return AttributionMoveOut(
        moved=move.moved,
        move_id=move.move_id,
        referral=staff_referral_out(await oversight.staff_referral(session, move.referral.id)),
        previous_holder_id=move.previous_holder.id if move.previous_holder else None,
        reversed=LedgerChangeOut(lines=move.reversed.lines, net_fen=move.reversed.net_fen),
        accrued=LedgerChangeOut(lines=move.accrued.lines, net_fen=move.accrued.net_fen),
    )


def _conflict_side(side: oversight.ConflictSide) -> ConflictSide:
    return ConflictSide(
        referral_id=side.referral_id,
        external_ref=side.external_ref,
        status=side.status,
        partner=PartnerRef(id=side.partner.id, name=side.partner.name),
        program=ProgramRef(id=side.program.id, name=side.program.name),
        received_at=side.received_at,
    )


def conflict_out(view: oversight.ConflictView) -> ConflictOut:
    conflict = view.conflict
    return ConflictOut(
        id=conflict.id,
        holding_referral_id=conflict.holding_referral_id,
        duplicate_referral_id=conflict.duplicate_referral_id,
        holding=_conflict_side(view.holding),
        duplicate=_conflict_side(view.duplicate),
        status=conflict.status,
        resolution=conflict.resolution,
        reason=conflict.reason,
        resolved_by=conflict.resolved_by,
        resolved_at=conflict.resolved_at,
        created_at=conflict.created_at,
    )


@staff_router.get(
    "/conflicts",
    response_model=Page[ConflictOut],
    summary="Attribution conflicts, with both referrals' partners, programs, references and times",
)
async def list_conflicts(
    session: SessionDep, principal: AttributionManager, params: Paging, status: ConflictStatus | None = None
) -> Page[ConflictOut]:
    return page_of(await oversight.list_conflicts(session, params, status), params, conflict_out)


@staff_router.post(
    "/conflicts/{conflict_id}/resolve",
    response_model=ConflictOut,
    responses=problem_responses(409, 422),
    summary="Resolve a conflict, possibly overriding the attribution (audited)",
    description=(
        "`keep_holder` leaves the attribution where it is. `award_duplicate` moves it to the later referral at "
        "any stage of the funnel, fees included, as `POST /v1/admin/referrals/{id}/award` does."
    ),
)
async def resolve_conflict(
    conflict_id: str, body: ConflictResolution, request: Request, session: SessionDep, principal: AttributionManager
) -> ConflictOut:
    view = await oversight.resolve_conflict(
        session, principal.actor(request), conflict_id, body.resolution, body.reason
    )
    return conflict_out(view)


# --- back office ----------------------------------------------------------------------------------------------------


@back_office_router.post(
    "",
    response_model=registry.RegistryResult,
    responses=problem_responses(422),
    summary="Upsert existing clients (up to 100,000 per call)",
    description="Identifiers are hashed on arrival and never stored; a client keeps its earliest opening date.",
)
async def upsert_registry(
    body: registry.RegistryUpload,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("registry:write")],
) -> registry.RegistryResult:
    result = await registry.upsert_existing_clients(session, request.app.state.data_keyring.index, body.clients)
    return result
