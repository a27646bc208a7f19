"""Referral endpoints: the partner's intake and reading, staff oversight, the back office's client registry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.auth.deps import Principal, requires
from app.core.database import SessionDep
from app.core.idempotency import claim, fingerprint
from app.core.pagination import Page, PageParams, page_of, page_params
from app.core.problems import problem_responses
from app.core.tenancy import Tenant
from app.referrals import registry, service
from app.referrals.models import (
    AttributionConflict,
    ConflictStatus,
    Referral,
    ReferralEvent,
    ReferralKind,
    ReferralStatus,
)
from app.referrals.schemas import (
    MaskedSubject,
    ReferralCreate,
    ReferralEventOut,
    ReferralOut,
    UnmaskedSubject,
    Withdrawal,
)

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


@partner_router.post(
    "",
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
async def submit_referral(
    body: ReferralCreate,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires("referrals:write")],
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
) -> Response:
    call = await claim(session, principal.client_id, idempotency_key, fingerprint("POST", request.url.path, body))
    if call.replay:
        return call.replay
    keyring = request.app.state.data_keyring
    submitted = await service.submit_referral(
        session, principal.partner_id or "", body, await keyring.cipher(session), keyring.index
    )
    return await call.remember(201 if submitted.created else 200, referral_out(submitted.referral))


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
    return page_of(await service.list_referrals(session, Tenant.everyone(), params, filters), params, referral_out)


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
    return page_of(await service.list_referrals(session, Tenant.everyone(), params, filters), params, referral_out)


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


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    holding_referral_id: str
    duplicate_referral_id: str
    status: ConflictStatus
    resolution: str | None
    reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ConflictResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["keep_holder", "award_duplicate"]
    reason: str = Field(min_length=3, max_length=500)


@staff_router.get("/conflicts", response_model=Page[ConflictOut], summary="Attribution conflicts")
async def list_conflicts(
    session: SessionDep, principal: AttributionManager, params: Paging, status: ConflictStatus | None = None
) -> Page[ConflictOut]:
    rows: list[AttributionConflict] = await service.list_conflicts(session, params, status)
    return page_of(rows, params, ConflictOut.model_validate)


@staff_router.post(
    "/conflicts/{conflict_id}/resolve",
    response_model=ConflictOut,
    responses=problem_responses(409),
    summary="Resolve a conflict, possibly overriding the attribution (audited)",
)
async def resolve_conflict(
    conflict_id: str, body: ConflictResolution, request: Request, session: SessionDep, principal: AttributionManager
) -> ConflictOut:
    conflict = await service.resolve_conflict(
        session, principal.actor(request), conflict_id, body.resolution, body.reason
    )
    return ConflictOut.model_validate(conflict)


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
